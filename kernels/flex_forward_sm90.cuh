#pragma once
// Hopper (sm_90a) FlexAttention forward kernel: the same mask_mod / score_mod functors, BlockMask
// walk and online softmax as the mma.sync kernel (flex_forward.cuh), with the two GEMMs on
// warpgroup MMAs (wgmma) reading Q, K and V straight from swizzled shared memory.
//
// One CTA owns 128 query rows (one mask block) of one (batch, head): two warpgroups of 64 rows.
// Each step takes one key block of 128 (partial blocks with mask_mod, then full ones):
//   S = Q Kᵀ          wgmma m64n128k16, A = Q and B = K from shared memory (K-major)
//   softmax           registers (flex_common.cuh), log2 domain
//   O += P V          wgmma m64nDk16, A = P from registers, B = V from shared memory (transposed)
// K and V are double-buffered through cp.async; the next block loads while this one computes.
// The two warpgroups take turns issuing S = Q Kᵀ (ping-pong through two named barriers), so one
// warpgroup's softmax runs while the other's MMAs occupy the tensor cores.
// Header only, like the mma.sync kernel, so NVRTC can compile user mods against it.
#include "flex_common.cuh"
#include "wgmma.cuh"

namespace attnscope::flex {

struct HopperConfig {
    static constexpr int kBlockM = kMaskBlock;  ///< query rows per CTA
    static constexpr int kBlockN = kMaskBlock;  ///< keys per step: one mask block
    static constexpr int kWarpgroups = 2;       ///< 64 query rows each
    static constexpr int kThreads = kWarpgroups * 128;
    /// Two CTAs per SM at D = 64 (80 KiB of shared memory each) for the built-in full and causal
    /// masks without a score mod, whose registers fit 128; mask or score programs need more
    /// (capped at 128, ptxas serialises the wgmmas), so they run one CTA per SM, as D = 128 does.
    template <int D, typename Mask, typename Score>
    static constexpr int kMinBlocks = D <= 64 && Score::kIdentity && !MaskTraits<Mask>::kProgram ? 2 : 1;
    static_assert(kBlockM == kWarpgroups * 64, "a warpgroup MMA covers 64 rows");
};

/// Bytes of one [128 × D] tile (Q, or one stage of K or V).
template <int D>
constexpr int hopperTileBytes() {
    return kMaskBlock * D * 2;
}

/// Dynamic shared memory: Q + two stages of K and V, plus 1 KiB to align the swizzle atoms.
template <int D>
constexpr int hopperSharedBytes() {
    return 5 * hopperTileBytes<D>() + 1024;
}

/// Issues cp.async for rows [row0, row0 + ROWS) of a [T × D] head into a swizzled tile (zero rows
/// past T).
template <typename Elem, int D, int ROWS>
__device__ __forceinline__ void loadSwizzledTile(unsigned char* tile, const Elem* head, int row0, int tokens) {
    constexpr int kChunks = D / 8;
    for (int c = threadIdx.x; c < ROWS * kChunks; c += HopperConfig::kThreads) {
        const int r = c / kChunks, ch = c % kChunks;
        const bool valid = row0 + r < tokens;
        const Elem* src = head + static_cast<long long>(valid ? row0 + r : 0) * D + ch * 8;
        cpAsync16(tile + swizzledChunkOffset<ROWS>(r, ch), src, valid);
    }
}

template <typename Elem, int D, typename Mask, typename Score>
__global__ void __launch_bounds__(HopperConfig::kThreads, HopperConfig::kMinBlocks<D, Mask, Score>)
    flexForwardSm90Kernel(const __grid_constant__ FlexParams p, const __grid_constant__ Mask mask,
                          const __grid_constant__ Score unboundScore) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    using C = HopperConfig;
    constexpr int kTile = hopperTileBytes<D>();
    constexpr unsigned kPanel = C::kBlockN * 128;  // one 64-column panel of a 128-row tile
    constexpr int kNTiles = C::kBlockN / 8;        // n8 score tiles per row
    constexpr int kDTiles = D / 8;                 // n8 output tiles per row
    extern __shared__ unsigned char sharedRaw[];
    const unsigned misalign = static_cast<unsigned>(__cvta_generic_to_shared(sharedRaw)) & 1023u;
    unsigned char* sQ = sharedRaw + ((1024u - misalign) & 1023u);
    unsigned char* sK = sQ + kTile;      // two stages
    unsigned char* sV = sK + 2 * kTile;  // two stages

    const CtaHeads<Elem, D> heads(p);
    const int qBlock = heads.qBlock, h = heads.h, b = heads.b;
    const Elem *gQ = heads.q, *gK = heads.k, *gV = heads.v;
    const Score score = unboundScore.bind(b, h);

    const KeySchedule<1> schedule(p.mask, qBlock);
    const int nSteps = schedule.steps();

    loadSwizzledTile<Elem, D, C::kBlockM>(sQ, gQ, qBlock * C::kBlockM, p.tokens);
    if (nSteps > 0) {
        const int k0 = schedule.key0(0);
        loadSwizzledTile<Elem, D, C::kBlockN>(sK, gK, k0, p.tokens);
        loadSwizzledTile<Elem, D, C::kBlockN>(sV, gV, k0, p.tokens);
    }
    cpAsyncCommit();

    const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    // This thread's two rows (accumulator layout): lane/4 and lane/4 + 8 of its warp's 16.
    const int row0 = qBlock * C::kBlockM + group * 64 + warp * 16 + lane / 4;
    float o[kDTiles * 4];
#pragma unroll
    for (int i = 0; i < kDTiles * 4; ++i) o[i] = 0.0f;
    float rowMax[2] = {-INFINITY, -INFINITY};
    float rowSum[2] = {0.0f, 0.0f};  // this thread's partial sums; reduced over the quad at the end

    // Ping-pong: warpgroup g issues its S MMAs after barrier 1 + g, then releases the other one.
    // Warpgroup 1 primes barrier 1 so that warpgroup 0 goes first, and skips its last release so
    // arrivals and waits balance.
    constexpr int kPair = C::kThreads;
    if (group == 1 && nSteps > 0) namedBarrierArrive(1, kPair);

    for (int step = 0; step < nSteps; ++step) {
        const int stage = step & 1;
        cpAsyncWait<0>();
        fenceProxyAsync();
        __syncthreads();  // this stage has landed; every warpgroup is done with the other one
        if (step + 1 < nSteps) {
            const int k0 = schedule.key0(step + 1);
            loadSwizzledTile<Elem, D, C::kBlockN>(sK + (stage ^ 1) * kTile, gK, k0, p.tokens);
            loadSwizzledTile<Elem, D, C::kBlockN>(sV + (stage ^ 1) * kTile, gV, k0, p.tokens);
        }
        cpAsyncCommit();
        const unsigned char* tK = sK + stage * kTile;
        const unsigned char* tV = sV + stage * kTile;

        // S = Q Kᵀ (64 × 128 per warpgroup); k16 steps walk 32 bytes inside a 128-byte row.
        float s[kNTiles * 4];                // the first k16 step overwrites (scale-d = 0), so no zeroing
        namedBarrierSync(1 + group, kPair);  // my turn
        wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            const unsigned offset = (kk / 4) * kPanel + (kk % 4) * 32;
            WgmmaSS<Elem, C::kBlockN>::run(s, smemDescriptor(sQ + offset + group * 64 * 128, 16, 1024),
                                           smemDescriptor(tK + offset, 16, 1024), kk > 0);
        }
        wgmmaCommit();
        if (group == 0 || step + 1 < nSteps) namedBarrierArrive(2 - group, kPair);  // the other's turn
        wgmmaWait<0>();
        fenceRegisters(s);

        const int key0 = schedule.key0(step);
        if (schedule.partial(step))
            scoreAndMask<kNTiles, true>(s, mask, score, p, b, h, row0, key0, lane);
        else
            scoreAndMask<kNTiles, false>(s, mask, score, p, b, h, row0, key0, lane);
        onlineSoftmax<kNTiles, kDTiles>(s, o, rowMax, rowSum, softmaxScale<Score>(p));

        // O += P V; k16 steps walk 16 keys = 2 KiB of the V tile. V is read transposed (MN-major):
        // the leading offset steps between 64-column panels, the stride between groups of 8 keys.
        unsigned pa[C::kBlockN / 16][4];
#pragma unroll
        for (int kk = 0; kk < C::kBlockN / 16; ++kk) probabilityFragment<Elem, kNTiles>(pa[kk], s, kk);
        wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < C::kBlockN / 16; ++kk)
            WgmmaRS<Elem, D>::run(o, pa[kk], smemDescriptor(tV + kk * 16 * 128, kPanel, 1024));
        wgmmaCommit();
        wgmmaWait<0>();
        fenceRegisters(o);
    }
    storeRows<Elem, D>(p, o, rowMax, rowSum, b, h, row0, lane);
#else
    __trap();  // built for another architecture: the host dispatch never launches it there
#endif
}

}  // namespace attnscope::flex

#ifndef __CUDACC_RTC__
namespace attnscope::gpu {
/// The wgmma kernel for the host dispatch (flex_dispatch.cuh); sm_90a only.
struct HopperFamily {
    static constexpr const char* kName = "flex_forward_sm90";
    static constexpr int kThreads = flex::HopperConfig::kThreads;
    template <int D>
    static constexpr int sharedBytes() {
        return flex::hopperSharedBytes<D>();
    }
    template <typename Elem, int D, typename Mask, typename Score>
    static auto kernel() {
        return flex::flexForwardSm90Kernel<Elem, D, Mask, Score>;
    }
};
}  // namespace attnscope::gpu
#endif
