// The map's two passes on warpgroup MMAs (sm_90a; issue 13): pass 1 computes the row logsumexp
// alone (S = Q·Kᵀ and the online max / sum, no P·V: half the MMAs of the attention forward kernel,
// which the map used before and whose output it threw away), pass 2 pools p = 2^(s2 - L2) into the
// cells of an aligned grid whose cells hold whole multiples of 128 keys (mapSm90PoolTakes: the
// overview at T >= 65,536 with 512 columns, block mass at 128), from the wgmma accumulators: each
// 128-key tile lies in one cell column, so a warp adds a whole tile to one run (map_mma.cu, which
// takes the other aligned grids, changes cell between n8 tiles).
//
// One CTA owns 128 query rows of the rect (two warpgroups of 64) and sweeps the key tiles of 128
// it may visit (causal / window bounds), K in a ring of cp.async stages shared by both warpgroups:
//   S = Q Kᵀ   wgmma m64n128k16, A = Q and B = K from 128-byte-swizzled shared memory
//   pass 1     mask (partial warp tiles only), softmaxRows (flex_common.cuh), lse at the end
//   pass 2     p = 2^(s·scale2 - L2) added to the warp's run of the tile's cell (CellRun below)
// The accumulator layout is the mma.sync one (flex_common.cuh): a warp owns 16 rows, a thread rows
// lane/4 and lane/4 + 8, columns 8j + 2(lane%4) + {0, 1} of n8 tile j. Masks and score mods are
// the analysis passes' (analysis_device.cuh: allows, score2Of), so every AnalysisSpec is taken;
// the host runs these kernels for head dims 64 and 128 on compute capability 9.0.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "analysis_device.cuh"
#include "analysis_fragments.cuh"
#include "analysis_tc.h"
#include "cuda_check.h"
#include "flex_forward_sm90.cuh"

namespace attnscope::gpu {
namespace {

constexpr int kBlock = 128;                             ///< query rows per CTA and keys per step
constexpr int kThreads = flex::HopperConfig::kThreads;  ///< two warpgroups (loadSwizzledTile strides by it)
constexpr int kNT = kBlock / 8;                         ///< n8 score tiles of a warp's 16 × 128 strip
constexpr unsigned kPanel = kBlock * 128;               ///< one 64-column panel of a 128-row tile, bytes
static_assert(kThreads == 256 && flex::HopperConfig::kBlockM == kBlock, "two warpgroups of 64 rows");

/// K stages in flight: three at D = 64 (Q + 3 K tiles = 65 KiB: registers, not shared memory,
/// cap a SM at 2 CTAs), two at D = 128 (97 KiB).
template <int D>
constexpr int stagesOf() {
    return D <= 64 ? 3 : 2;
}
template <int D>
constexpr int tileBytes() {
    return kBlock * D * 2;
}
template <int D>
constexpr int sharedBytes() {
    return (1 + stagesOf<D>()) * tileBytes<D>() + 1024;  // + 1 KiB to align the swizzle atoms
}

enum class Mode { Lse, Pool };

/// Cell extents of an aligned grid (mapFragmentsTake): rows and keys per cell.
struct CellSize {
    int rows = 0, keys = 0;
};

struct Sm90MapArgs {
    MapArgs m;
    float* lse = nullptr;  ///< Mode::Lse: written for the rect's rows
    CellSize cell;
};

/// Whether the block of rows [q0, q1] × keys [k0, k1] (inclusive) holds no pair the spec allows
/// by its bounds (causal, window); pass::tileSkippable for any extent.
__device__ __forceinline__ bool blockSkippable(const AnalysisSpec& s, int q0, int q1, int k0, int k1) {
    if (s.prefix > k0) return false;
    if (s.causal && k0 > q1) return true;
    if (s.window > 0 && (q0 - k1 >= s.window || k0 - q1 >= s.window)) return true;
    return false;
}

/// Whether every pair of the block is allowed (no per-element mask); pass::tileFull for any extent.
__device__ __forceinline__ bool blockFull(const AnalysisSpec& s, int q0, int q1, int k0, int k1, int rowEnd,
                                          int keyEnd) {
    if (q1 >= rowEnd || k1 >= keyEnd || s.documents || s.blocks) return false;
    if (k1 >= s.prefix) {
        if (k0 < s.prefix || s.dilation > 1) return false;
        if (s.causal && k1 > q0) return false;
        if (s.window > 0 && (q1 - k0 >= s.window || k1 - q0 >= s.window)) return false;
    }
    if (s.excludedCount > 0) {  // any excluded key in [k0, k1]?
        int lo = 0, hi = s.excludedCount;
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (s.excluded[mid] < k0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < s.excludedCount && s.excluded[lo] <= k1) return false;
    }
    return true;
}

/// The run of one cell a warp is adding to (map_mma.cu's): the thread's partial sum, max, count.
struct CellRun {
    int cx = -1;
    float sum = 0.0f, max = 0.0f;
    unsigned count = 0;

    /// Reduces the run over the warp and adds it to cell (cy, cx); every lane calls it.
    __device__ __forceinline__ void flush(const MapArgs& a, int cy, int lane) {
        float s = sum, m = max;
        unsigned n = count;
#pragma unroll
        for (int sft = 16; sft > 0; sft /= 2) {
            s += __shfl_xor_sync(0xffffffffu, s, sft);
            m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, sft));
            n += __shfl_xor_sync(0xffffffffu, n, sft);
        }
        if (lane == 0 && n > 0) {
            const long long cell = (long long)cy * a.grid.cols + cx;
            atomicAdd(&a.sums[cell], double(s));
            atomicMax(reinterpret_cast<int*>(&a.maxima[cell]), __float_as_int(m));  // p >= 0: int order
            atomicAdd(&a.allowed[cell], (unsigned long long)n);
        }
        sum = 0.0f, max = 0.0f, count = 0;
    }
};

template <typename Elem, int D, Mode MODE>
__global__ void __launch_bounds__(kThreads, 2) mapSm90Kernel(const __grid_constant__ Sm90MapArgs args) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    constexpr int kStages = stagesOf<D>();
    constexpr int kTile = tileBytes<D>();
    const MapArgs& a = args.m;
    const CellGrid& g = a.grid;
    const AnalysisSpec& spec = a.spec;
    extern __shared__ unsigned char sharedRaw[];
    const unsigned misalign = static_cast<unsigned>(__cvta_generic_to_shared(sharedRaw)) & 1023u;
    unsigned char* sQ = sharedRaw + ((1024u - misalign) & 1023u);
    unsigned char* sK = sQ + kTile;  // kStages tiles

    const int T = a.tokens, rowEnd = int(g.q1);
    // Pass 1 runs over every key; pass 2 over the rect's.
    const int keyBase = MODE == Mode::Lse ? 0 : int(g.k0);
    const int keyEnd = MODE == Mode::Lse ? T : int(min(g.k1, (long long)T));
    // Causal maps: the last row tiles hold the most keys; start them first.
    const int rowTile = spec.causal ? int(gridDim.x) - 1 - int(blockIdx.x) : int(blockIdx.x);
    const int q0 = int(g.q0) + rowTile * kBlock, qLast = min(q0 + kBlock, rowEnd) - 1;
    const int group = threadIdx.x / 128, warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int w0 = q0 + group * 64 + warp * 16;  // the warp's first row
    const bool scoreMods = pass::hasScoreMod(spec);
    const float scale2 = spec.scale * pass::kLog2e;

    // This CTA's strip of key tiles (grid.y), narrowed to the causal / window bounds of its rows.
    const int keyTiles = (keyEnd - keyBase + kBlock - 1) / kBlock;
    const int perStrip = (keyTiles + int(gridDim.y) - 1) / int(gridDim.y);
    int tBegin = int(blockIdx.y) * perStrip, tEnd = min(keyTiles, int(blockIdx.y + 1) * perStrip);
    if (spec.prefix == 0) {
        if (spec.causal) tEnd = min(tEnd, qLast < keyBase ? 0 : (qLast - keyBase) / kBlock + 1);
        if (spec.window > 0) {
            const long long lo = (long long)q0 - spec.window + 1 - keyBase;  // first key in the window
            if (lo > 0) tBegin = max(tBegin, int(min(lo / kBlock, (long long)keyTiles)));
            if (!spec.causal) {
                const long long hi = (long long)qLast + spec.window - 1 - keyBase;  // last key in it
                tEnd = min(tEnd, hi < 0 ? 0 : int(min(hi / kBlock + 1, (long long)keyTiles)));
            }
        }
    }
    auto next = [&](int t) {  // the first tile >= t that holds an allowed pair, or -1
        for (; t < tEnd; ++t)
            if (!blockSkippable(spec, q0, qLast, keyBase + t * kBlock, keyBase + t * kBlock + kBlock - 1)) return t;
        return -1;
    };
    const Elem* gK = static_cast<const Elem*>(a.k);
    auto loadK = [&](int t, int stage) {
        flex::loadSwizzledTile<Elem, D, kBlock>(sK + stage * kTile, gK, keyBase + t * kBlock, T);
    };

    flex::loadSwizzledTile<Elem, D, kBlock>(sQ, static_cast<const Elem*>(a.q), q0, T);
    int ahead[kStages - 1];  // tiles loading for the next steps
    ahead[0] = next(tBegin);
#pragma unroll
    for (int x = 1; x < kStages - 1; ++x) ahead[x] = ahead[x - 1] >= 0 ? next(ahead[x - 1] + 1) : -1;
#pragma unroll
    for (int x = 0; x < kStages - 1; ++x) {
        if (ahead[x] >= 0) loadK(ahead[x], x);
        flex::cpAsyncCommit();  // group 0 holds Q too
    }

    // Pass 1: the running max (log2 units) and the thread's partial sums of its two rows.
    float rowMax[2] = {-INFINITY, -INFINITY}, rowSum[2] = {0.0f, 0.0f};
    // Pass 2: the warp's cell row and the thread's rows.
    frag::Rows rows;
    CellRun run;
    int cy = 0;
    if constexpr (MODE == Mode::Pool) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            rows.i[r] = w0 + lane / 4 + 8 * r;
            const bool in = rows.i[r] < rowEnd;
            rows.lse2[r] = in ? a.lse[rows.i[r]] * pass::kLog2e : -INFINITY;
            rows.live[r] = in && rows.lse2[r] != -INFINITY;
        }
        cy = (w0 - int(g.q0)) / args.cell.rows;  // a warp's 16 rows lie in one cell row
    }

    for (int step = 0; ahead[0] >= 0; ++step) {
        const int tile = ahead[0], stage = step % kStages;
        flex::cpAsyncWait<kStages - 2>();  // this tile's K (and Q); later ones may be in flight
        flex::fenceProxyAsync();
        __syncthreads();  // ... landed for every thread; every warpgroup is done with the stage reloaded next
        const int newest = ahead[kStages - 2];  // the last tile loading (this one with two stages)
#pragma unroll
        for (int x = 0; x + 1 < kStages - 1; ++x) ahead[x] = ahead[x + 1];
        const int last = newest >= 0 ? next(newest + 1) : -1;
        ahead[kStages - 2] = last;
        if (last >= 0) loadK(last, (step + kStages - 1) % kStages);
        flex::cpAsyncCommit();

        // S = Q Kᵀ (64 × 128 per warpgroup); k16 steps walk 32 bytes inside a 128-byte row.
        const unsigned char* tK = sK + stage * kTile;
        float s[kNT * 4];
        flex::wgmmaFence();
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            const unsigned offset = (kk / 4) * kPanel + (kk % 4) * 32;
            flex::WgmmaSS<Elem, kBlock>::run(s, flex::smemDescriptor(sQ + offset + group * 64 * 128, 16, 1024),
                                             flex::smemDescriptor(tK + offset, 16, 1024), kk > 0);
        }
        flex::wgmmaCommit();
        flex::wgmmaWait<0>();
        flex::fenceRegisters(s);

        const int k0 = keyBase + tile * kBlock;
        if (w0 >= rowEnd || blockSkippable(spec, w0, w0 + 15, k0, k0 + kBlock - 1)) continue;  // nothing for this warp
        const bool full = blockFull(spec, w0, w0 + 15, k0, k0 + kBlock - 1, rowEnd, keyEnd);

        if constexpr (MODE == Mode::Lse) {
            if (!full || scoreMods) {
#pragma unroll
                for (int x = 0; x < kNT * 4; ++x) {
                    const int i = w0 + lane / 4 + 8 * ((x >> 1) & 1), j = k0 + 8 * (x >> 2) + 2 * (lane % 4) + (x & 1);
                    if (!full && !(j < keyEnd && pass::allows(spec, i, j, T)))
                        s[x] = -INFINITY;
                    else if (scoreMods)
                        s[x] = pass::score2Of(spec, s[x], i, j);
                }
            }
            float alpha[2];
            flex::softmaxRows<kNT>(s, rowMax, rowSum, alpha, scoreMods ? 1.0f : scale2);
        } else {
            // Cells hold whole multiples of 128 keys (mapSm90PoolTakes), so the tile lies in one
            // cell column: at most one flush a tile, none inside the element loop.
            const int cx = (k0 - int(g.k0)) / args.cell.keys;
            if (cx != run.cx) {
                if (run.cx >= 0) run.flush(a, cy, lane);
                run.cx = cx;
            }
            if (full && !scoreMods) {  // every pair allowed: no test, one count for the tile
                // Four partial sums and two maxima: short dependency chains between the ex2s.
                float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f}, mx[2] = {run.max, 0.0f};
#pragma unroll
                for (int x = 0; x < kNT * 4; ++x) {
                    const float p = flex::fastExp2(fmaf(s[x], scale2, -rows.lse2[(x >> 1) & 1]));
                    sum[x & 3] += p;
                    mx[x & 1] = fmaxf(mx[x & 1], p);
                }
                run.sum += (sum[0] + sum[1]) + (sum[2] + sum[3]);
                run.max = fmaxf(mx[0], mx[1]);
                run.count += kNT * 4;
            } else {
                const int qd = lane % 4;
#pragma unroll
                for (int x = 0; x < kNT * 4; ++x) {
                    const int r = (x >> 1) & 1, j = k0 + 8 * (x >> 2) + 2 * qd + (x & 1);
                    if (!(rows.live[r] && j < keyEnd && pass::allows(spec, rows.i[r], j, T))) continue;
                    const float p = flex::fastExp2(pass::score2Of(spec, s[x], rows.i[r], j) - rows.lse2[r]);
                    run.sum += p;
                    run.max = fmaxf(run.max, p);
                    ++run.count;
                }
            }
        }
    }
    flex::cpAsyncWait<0>();

    if constexpr (MODE == Mode::Lse) {
        if (w0 < rowEnd) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float l = rowSum[r];
                l += __shfl_xor_sync(0xffffffffu, l, 1);
                l += __shfl_xor_sync(0xffffffffu, l, 2);
                const int i = w0 + lane / 4 + 8 * r;
                if (lane % 4 == 0 && i < rowEnd)
                    args.lse[i] =
                        pass::foldSink(l > 0.0f ? (rowMax[r] + log2f(l)) * flex::kLn2 : -INFINITY, spec.sinkLogit);
            }
        }
    } else {
        if (run.cx >= 0) run.flush(a, cy, lane);
    }
#else
    __trap();  // built for another architecture: the host launches it on compute capability 9.0 only
#endif
}

CellSize cellSizeOf(const CellGrid& g) {
    if (g.blockSize > 0) return {int(g.blockSize), int(g.blockSize)};
    return {int((g.q1 - g.q0) / g.rows), int((g.k1 - g.k0) / g.cols)};
}

template <typename Elem, int D, Mode MODE>
Status launchT(const MapArgs& m, float* lse, cudaStream_t stream) {
    auto kernel = mapSm90Kernel<Elem, D, MODE>;
    constexpr int kShared = sharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    Sm90MapArgs args;
    args.m = m, args.lse = lse;
    long long strips = 1;
    const long long rowTiles = (m.grid.q1 - m.grid.q0 + kBlock - 1) / kBlock;
    if (MODE == Mode::Pool) {
        args.cell = cellSizeOf(m.grid);
        // Enough CTAs to fill the GPU a few times over: short rects split their key tiles into
        // strips (each adds its runs to the cells atomically). Pass 1 keeps a row's keys in one CTA.
        const long long keyTiles = (std::min<long long>(m.grid.k1, m.tokens) - m.grid.k0 + kBlock - 1) / kBlock;
        constexpr long long kTargetCtas = 132 * 4;
        strips = std::max(1LL, std::min(keyTiles, (kTargetCtas + rowTiles - 1) / rowTiles));
    }
    kernel<<<dim3(unsigned(rowTiles), unsigned(strips)), kThreads, kShared, stream>>>(
        args);  // rows in x: up to 2^31 - 1
    if constexpr (MODE == Mode::Lse)
        ATTNSCOPE_CUDA_TRY_LAUNCH("mapSm90Kernel<lse>");
    else
        ATTNSCOPE_CUDA_TRY_LAUNCH("mapSm90Kernel<pool>");
    return {};
}

template <Mode MODE>
Status launchMode(const MapArgs& m, float* lse, cudaStream_t stream) {
    if (!mapSm90Takes(m.dim))
        return {ErrorCode::Unsupported, "GPU map (wgmma): head dim " + std::to_string(m.dim) + ", expected 64 or 128"};
    if (m.grid.q0 < 0 || m.grid.q1 > m.tokens || m.grid.q0 >= m.grid.q1 || m.grid.k0 < 0 || m.grid.k0 >= m.grid.k1)
        return {ErrorCode::InvalidArgument, "GPU map (wgmma): empty or out-of-range rect"};
    if (m.elem == ElemType::BF16)
        return m.dim == 64 ? launchT<__nv_bfloat16, 64, MODE>(m, lse, stream)
                           : launchT<__nv_bfloat16, 128, MODE>(m, lse, stream);
    return m.dim == 64 ? launchT<__half, 64, MODE>(m, lse, stream) : launchT<__half, 128, MODE>(m, lse, stream);
}

}  // namespace

bool mapSm90Takes(int dim) { return dim == 64 || dim == 128; }

Status launchMapLseSm90(const MapArgs& m, float* lse, cudaStream_t stream) {
    if (!lse) return {ErrorCode::InvalidArgument, "GPU map (wgmma): no lse buffer"};
    return launchMode<Mode::Lse>(m, lse, stream);
}

bool mapSm90PoolTakes(const CellGrid& g) {
    if (!mapFragmentsTake(g)) return false;
    return cellSizeOf(g).keys % kBlock == 0;
}

Status launchMapPoolSm90(const MapArgs& m, cudaStream_t stream) {
    if (!mapSm90PoolTakes(m.grid))
        return {ErrorCode::InvalidArgument,
                "GPU map (wgmma): the pooling needs an aligned cell grid of cells "
                "of whole multiples of 128 keys"};
    return launchMode<Mode::Pool>(m, nullptr, stream);
}

}  // namespace attnscope::gpu
