#pragma once
// FlexAttention-style forward kernel (FlashAttention-2 structure, mma.sync m16n8k16) and the
// block-mask builder, both templated on the mask_mod / score_mod functors (mods.cuh). Header
// only, so a user-written mod can be JIT-compiled against it with NVRTC.
//
// One CTA owns 128 query rows (one mask block) of one (batch, head); its 8 warps own 16 rows
// each. The CTA walks the partial key blocks (mask_mod evaluated per element) and then the full
// ones (no mask call) from the BlockMask, 64 keys per step, with K/V double-buffered in shared
// memory through cp.async. Scores live in registers in the log2 domain; the online softmax
// keeps a running max m and sum l per row; O is normalised once at the end.
#include "device_types.h"
#include "flex_common.cuh"
#include "mma.cuh"

namespace attnscope::flex {

struct ForwardConfig {
    static constexpr int kBlockM = kMaskBlock;  ///< query rows per CTA
    static constexpr int kBlockN = 64;          ///< keys per inner step
    static constexpr int kWarps = 8;
    /// CTAs per SM the register budget is capped for: two at D = 64 (fits in 128 registers), so
    /// one CTA's softmax overlaps the other's MMAs; one at D = 128.
    template <int D>
    static constexpr int kMinBlocks = D <= 64 ? 2 : 1;
    static constexpr int kThreads = kWarps * 32;
    static constexpr int kRowsPerWarp = kBlockM / kWarps;
    static constexpr int kStepsPerBlock = kMaskBlock / kBlockN;
    static_assert(kRowsPerWarp == 16, "one m16 MMA tile of rows per warp");
};

/// Dynamic shared memory of the forward kernel: Q tile + two stages of K and V.
template <int D>
constexpr int forwardSharedBytes() {
    return (ForwardConfig::kBlockM + 4 * ForwardConfig::kBlockN) * D * 2;
}

/// Element offset of (row, col) in a [rows × D] tile whose 16-byte chunks are XOR-swizzled by
/// row, so the 8 rows an ldmatrix reads at one column fall in different banks.
template <int D>
__device__ __forceinline__ int swizzle(int row, int col) {
    return row * D + ((((col >> 3) ^ (row & 7)) << 3) | (col & 7));
}

/// Issues cp.async for rows [row0, row0 + ROWS) of a [T × D] head (zero rows past T).
template <typename Elem, int D, int ROWS>
__device__ __forceinline__ void loadTile(Elem* smem, const Elem* head, int row0, int tokens) {
    constexpr int kChunks = D / 8;
    for (int c = threadIdx.x; c < ROWS * kChunks; c += ForwardConfig::kThreads) {
        const int r = c / kChunks, ch = c % kChunks;
        const bool valid = row0 + r < tokens;
        const Elem* src = head + static_cast<long long>(valid ? row0 + r : 0) * D + ch * 8;
        cpAsync16(smem + swizzle<D>(r, ch * 8), src, valid);
    }
}

/// Reinterprets four consecutive accumulators as one m16n8 fragment.
__device__ __forceinline__ float (&fragment(float* x, int tile))[4] {
    return *reinterpret_cast<float(*)[4]>(x + 4 * tile);
}

template <typename Elem, int D, typename Mask, typename Score>
__global__ void __launch_bounds__(ForwardConfig::kThreads, ForwardConfig::kMinBlocks<D>)
    flexForwardKernel(const __grid_constant__ FlexParams p, const __grid_constant__ Mask mask,
                      const __grid_constant__ Score unboundScore) {
    using C = ForwardConfig;
    using Ops = ElemOps<Elem>;
    constexpr int kDTiles = D / 8;  // n8 tiles of the output row
    constexpr int kNTiles = C::kBlockN / 8;
    extern __shared__ __align__(128) unsigned char sharedRaw[];
    Elem* sQ = reinterpret_cast<Elem*>(sharedRaw);
    Elem* sK = sQ + C::kBlockM * D;
    Elem* sV = sK + 2 * C::kBlockN * D;

    const CtaHeads<Elem, D> heads(p);
    const int qBlock = heads.qBlock, h = heads.h, b = heads.b;
    const Elem *gQ = heads.q, *gK = heads.k, *gV = heads.v;
    const Score score = unboundScore.bind(b, h);

    const KeySchedule<C::kStepsPerBlock> schedule(p.mask, qBlock);
    const int nSteps = schedule.steps();

    loadTile<Elem, D, C::kBlockM>(sQ, gQ, qBlock * C::kBlockM, p.tokens);
    if (nSteps > 0) {
        const int k0 = schedule.key0(0);
        loadTile<Elem, D, C::kBlockN>(sK, gK, k0, p.tokens);
        loadTile<Elem, D, C::kBlockN>(sV, gV, k0, p.tokens);
    }
    cpAsyncCommit();

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    // This thread's two rows (MMA C-fragment layout): lane/4 and lane/4 + 8 of the warp's 16.
    const int row0 = qBlock * C::kBlockM + warp * C::kRowsPerWarp + lane / 4;
    float acc[kDTiles * 4];
#pragma unroll
    for (int i = 0; i < kDTiles * 4; ++i) acc[i] = 0.0f;
    float rowMax[2] = {-INFINITY, -INFINITY};
    float rowSum[2] = {0.0f, 0.0f};  // this thread's partial sums; reduced over the quad at the end

    for (int step = 0; step < nSteps; ++step) {
        const int stage = step & 1;
        if (step + 1 < nSteps) {
            const int k0 = schedule.key0(step + 1);
            loadTile<Elem, D, C::kBlockN>(sK + (stage ^ 1) * C::kBlockN * D, gK, k0, p.tokens);
            loadTile<Elem, D, C::kBlockN>(sV + (stage ^ 1) * C::kBlockN * D, gV, k0, p.tokens);
        }
        cpAsyncCommit();
        cpAsyncWait<1>();
        __syncthreads();
        const Elem* tK = sK + stage * C::kBlockN * D;
        const Elem* tV = sV + stage * C::kBlockN * D;
        const int key0 = schedule.key0(step);

        // S = Q Kᵀ (16 × 64 per warp)
        float s[kNTiles * 4];
#pragma unroll
        for (int i = 0; i < kNTiles * 4; ++i) s[i] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned a[4];
            ldmatrixX4(a, sQ + swizzle<D>(warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8, kk * 16 + (lane / 16) * 8));
#pragma unroll
            for (int np = 0; np < kNTiles / 2; ++np) {
                unsigned bk[4];
                ldmatrixX4(bk, tK + swizzle<D>(np * 16 + (lane % 8) + (lane / 16) * 8, kk * 16 + ((lane / 8) % 2) * 8));
                Ops::mma(fragment(s, 2 * np), a, bk[0], bk[1]);
                Ops::mma(fragment(s, 2 * np + 1), a, bk[2], bk[3]);
            }
        }

        // score_mod, then mask_mod on partial blocks only (two code paths, so full blocks carry
        // no mask code); then the online softmax.
        if (schedule.partial(step))
            scoreAndMask<kNTiles, true>(s, mask, score, p, b, h, row0, key0, lane);
        else
            scoreAndMask<kNTiles, false>(s, mask, score, p, b, h, row0, key0, lane);
        onlineSoftmax<kNTiles, kDTiles>(s, acc, rowMax, rowSum, softmaxScale<Score>(p));

        // O += P V: the S accumulators of two n8 tiles form one k16 A fragment.
#pragma unroll
        for (int kk = 0; kk < C::kBlockN / 16; ++kk) {
            unsigned a[4];
            probabilityFragment<Elem, kNTiles>(a, s, kk);
#pragma unroll
            for (int dp = 0; dp < D / 16; ++dp) {
                unsigned bv[4];
                ldmatrixX4Trans(
                    bv, tV + swizzle<D>(kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8, dp * 16 + (lane / 16) * 8));
                Ops::mma(fragment(acc, 2 * dp), a, bv[0], bv[1]);
                Ops::mma(fragment(acc, 2 * dp + 1), a, bv[2], bv[3]);
            }
        }
        __syncthreads();  // the next step overwrites this stage
    }
    storeRows<Elem, D>(p, acc, rowMax, rowSum, b, h, row0, lane);
}

// ---- block mask ----------------------------------------------------------------------------------
enum BlockStateCode : unsigned char { kBlockEmpty = 0, kBlockPartial = 1, kBlockFull = 2 };

/// One CTA per (key block, query block): evaluates the mask_mod on every in-range pair. A block
/// is full only if every pair of its valid rows is allowed and no key lies past T.
template <typename Mask>
__global__ void classifyBlocksKernel(Mask mask, int tokens, int numKvBlocks, unsigned char* state) {
    const int kb = blockIdx.x, qb = blockIdx.y;
    bool any = false, all = true;
    for (int i = threadIdx.x; i < kMaskBlock * kMaskBlock; i += blockDim.x) {
        const int q = qb * kMaskBlock + i / kMaskBlock, kv = kb * kMaskBlock + i % kMaskBlock;
        if (q >= tokens) continue;
        const bool ok = kv < tokens && mask(0, 0, q, kv);
        any = any || ok;
        all = all && ok;
    }
    any = __syncthreads_or(any);
    all = __syncthreads_and(all);
    if (threadIdx.x == 0) state[qb * numKvBlocks + kb] = any ? (all ? kBlockFull : kBlockPartial) : kBlockEmpty;
}

/// Packs each query block's partial and full key blocks to the left of its index rows.
template <int kUnused = 0>  // a template so the header stays includable from several units
__global__ void packBlocksKernel(const unsigned char* state, int numQBlocks, int numKvBlocks, int* kvNum, int* kvIdx,
                                 int* fullNum, int* fullIdx) {
    const int qb = blockIdx.x * blockDim.x + threadIdx.x;
    if (qb >= numQBlocks) return;
    int np = 0, nf = 0;
    for (int kb = 0; kb < numKvBlocks; ++kb) {
        const unsigned char s = state[qb * numKvBlocks + kb];
        if (s == kBlockPartial) kvIdx[qb * numKvBlocks + np++] = kb;
        if (s == kBlockFull) fullIdx[qb * numKvBlocks + nf++] = kb;
    }
    kvNum[qb] = np;
    fullNum[qb] = nf;
}

}  // namespace attnscope::flex

#ifndef __CUDACC_RTC__
namespace attnscope::gpu {
/// The mma.sync kernel for the host dispatch (flex_dispatch.cuh).
struct MmaSyncFamily {
    static constexpr const char* kName = "flex_forward";
    static constexpr int kThreads = flex::ForwardConfig::kThreads;
    template <int D>
    static constexpr int sharedBytes() {
        return flex::forwardSharedBytes<D>();
    }
    template <typename Elem, int D, typename Mask, typename Score>
    static auto kernel() {
        return flex::flexForwardKernel<Elem, D, Mask, Score>;
    }
};
}  // namespace attnscope::gpu
#endif
