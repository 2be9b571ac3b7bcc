// The map's pooling (pass 2) on mma.sync register fragments: a CTA owns 64 query rows of the
// rect (4 warps of 16 rows) and sweeps the rect's 64-key tiles, K double-buffered through
// cp.async. S stays in the accumulators: each thread turns its 32 scores into p = 2^(s2 - L2)
// and adds them to a run of the cell they fall in. The grid is aligned (mapFragmentsTake): a
// warp's 16 rows lie in one cell row and each n8 tile's 8 keys in one cell column, so a run
// changes cell only between n8 tiles, at the same point for the whole warp; a finished run is
// reduced over the warp (15 shuffles) and added to its cell with one atomic per quantity. At
// 128k tokens and 512 cells a run spans 4 key tiles; at 8k, 2 n8 tiles.
// (The wmma kernel in analysis_tc.cu stores S in shared memory and pools per element; it
// stays for grids this one does not take.)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "analysis_device.cuh"
#include "analysis_fragments.cuh"
#include "analysis_tc.h"
#include "cuda_check.h"

namespace attnscope::gpu {
namespace {

using flex::fastExp2;
using frag::kNT;
using frag::Rows;
using frag::scoreFragments;
using frag::TileList;
using pass::allows;
using pass::hasScoreMod;
using pass::kKeys;
using pass::kLog2e;
using pass::kRows;
using pass::kThreads;
using pass::kWarps;
using pass::score2Of;

/// Cell extents of an aligned grid (mapFragmentsTake): rows and keys per cell.
struct CellSize {
    int rows = 0, keys = 0;
};

CellSize cellSizeOf(const CellGrid& g) {
    if (g.blockSize > 0) return {int(g.blockSize), int(g.blockSize)};
    return {int((g.q1 - g.q0) / g.rows), int((g.k1 - g.k0) / g.cols)};
}

constexpr int kStages = 3;  ///< K tiles in flight: the loads of two tiles ahead cover L2's latency

template <int D>
struct MapLayout {
    static constexpr int ld = D + 8;
    static constexpr size_t tile = size_t(kKeys) * ld * 2;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + size_t(kRows) * ld * 2;  ///< kStages K tiles
    static constexpr size_t list = k + kStages * tile;       ///< the tile list and per-warp counts
    static constexpr size_t bytes = list + (kThreads + kWarps) * 4;
};

/// The run of one cell a warp is adding to: the thread's partial sum, max and count.
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

template <typename Elem, int D>
__global__ void __launch_bounds__(kThreads, 2) mapFragmentKernel(const __grid_constant__ MapArgs a, CellSize cell) {
    using L = MapLayout<D>;
    extern __shared__ __align__(128) unsigned char smem[];
    const Elem* sQ = reinterpret_cast<const Elem*>(smem + L::q);
    const CellGrid& g = a.grid;
    const AnalysisSpec& spec = a.spec;
    const int T = a.tokens, rowEnd = int(g.q1), keyEnd = int(min(g.k1, (long long)T));
    // Causal maps: the last row tiles hold the most keys; start them first.
    const int rowTile = spec.causal ? int(gridDim.y) - 1 - int(blockIdx.y) : int(blockIdx.y);
    const int q0 = int(g.q0) + rowTile * kRows;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, qd = lane % 4;
    const bool scoreMods = hasScoreMod(spec);
    const float scale2 = spec.scale * kLog2e;
    Rows rows;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        rows.i[r] = q0 + warp * 16 + lane / 4 + 8 * r;
        const bool in = rows.i[r] < rowEnd;
        rows.lse2[r] = in ? a.lse[rows.i[r]] * kLog2e : -INFINITY;
        rows.live[r] = in && rows.lse2[r] != -INFINITY;
    }
    const int cy = (q0 + warp * 16 - int(g.q0)) / cell.rows;  // the warp's cell row

    // This CTA's strip of the rect's key tiles (grid.x strips spread wide rects over the SMs).
    const int keyTiles = int((g.k1 - g.k0 + kKeys - 1) / kKeys);
    const int perStrip = (keyTiles + int(gridDim.x) - 1) / int(gridDim.x);
    TileList tiles{reinterpret_cast<int*>(smem + L::list), reinterpret_cast<int*>(smem + L::list) + kThreads,
                   int(blockIdx.x) * perStrip, min(keyTiles, int(blockIdx.x + 1) * perStrip)};
    auto visit = [&](int t) { return !pass::tileSkippable(spec, q0, int(g.k0) + t * kKeys); };
    const uint16_t* gK = static_cast<const uint16_t*>(a.k);
    auto loadK = [&](int t, int buffer) {
        pass::loadTile<D>(reinterpret_cast<uint16_t*>(smem + L::k + buffer * L::tile), gK, int(g.k0) + t * kKeys, T,
                          a.dim);
    };
    pass::loadTile<D>(reinterpret_cast<uint16_t*>(smem + L::q), static_cast<const uint16_t*>(a.q), q0, rowEnd, a.dim);
    // A ring of kStages K buffers: tile n+kStages-1 loads while tile n computes.
    int ahead[kStages - 1];
#pragma unroll
    for (int x = 0; x < kStages - 1; ++x) {
        ahead[x] = tiles.take(visit);
        if (ahead[x] >= 0) loadK(ahead[x], x);
        flex::cpAsyncCommit();
    }
    CellRun run;
    for (int step = 0; ahead[0] >= 0; ++step) {
        const int k0 = int(g.k0) + ahead[0] * kKeys;
        const int buffer = step % kStages;
        flex::cpAsyncWait<kStages - 2>();  // this tile's K; the later ones may be in flight
        __syncthreads();                   // ... and every warp is done with the tile before
#pragma unroll
        for (int x = 0; x + 1 < kStages - 1; ++x) ahead[x] = ahead[x + 1];
        ahead[kStages - 2] = tiles.take(visit);
        if (ahead[kStages - 2] >= 0)
            loadK(ahead[kStages - 2], (step + kStages - 1) % kStages);  // the buffer read last step
        flex::cpAsyncCommit();
        const Elem* sK = reinterpret_cast<const Elem*>(smem + L::k + buffer * L::tile);
        float s[kNT * 4];
        scoreFragments<Elem, D>(s, sQ, sK, warp, lane);
        const bool plain = !scoreMods && pass::tileFull(spec, q0, k0, rowEnd, keyEnd);
        // The cell column of n8 tile jt, the same for the whole warp: one division a tile, then
        // a step every cell.keys / 8 n8 tiles.
        const int rel = k0 - int(g.k0), keys8 = cell.keys / 8;
        int cx = rel / cell.keys, at8 = (rel - cx * cell.keys) / 8;
#pragma unroll
        for (int jt = 0; jt < kNT; ++jt, ++at8) {
            if (at8 == keys8) ++cx, at8 = 0;
            if (cx != run.cx) {
                if (run.cx >= 0) run.flush(a, cy, lane);
                run.cx = cx;
            }
            if (plain) {  // every pair allowed: no test, one count for the four
                float p[4];
#pragma unroll
                for (int e = 0; e < 4; ++e) p[e] = fastExp2(fmaf(s[4 * jt + e], scale2, -rows.lse2[e >> 1]));
                run.sum += (p[0] + p[1]) + (p[2] + p[3]);  // a tree: a short dependency chain
                run.max = fmaxf(run.max, fmaxf(fmaxf(p[0], p[1]), fmaxf(p[2], p[3])));
                run.count += 4;
                continue;
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int r = e >> 1, j = k0 + 8 * jt + 2 * qd + (e & 1);
                if (!(rows.live[r] && j < keyEnd && allows(spec, rows.i[r], j, T))) continue;
                const float p = fastExp2(score2Of(spec, s[4 * jt + e], rows.i[r], j) - rows.lse2[r]);
                run.sum += p;
                run.max = fmaxf(run.max, p);
                ++run.count;
            }
        }
    }
    if (run.cx >= 0) run.flush(a, cy, lane);
    flex::cpAsyncWait<0>();
}

template <typename Elem, int D>
Status launchMapFragmentsT(const MapArgs& a, cudaStream_t stream) {
    auto kernel = mapFragmentKernel<Elem, D>;
    const size_t shared = MapLayout<D>::bytes;
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    const long long rowTiles = (a.grid.q1 - a.grid.q0 + kRows - 1) / kRows;
    const long long keyTiles = (a.grid.k1 - a.grid.k0 + kKeys - 1) / kKeys;
    // Enough CTAs to fill the GPU several times over: short rects split their key tiles into strips.
    constexpr long long kTargetCtas = 132 * 8;
    const long long strips = std::max(1LL, std::min(keyTiles, (kTargetCtas + rowTiles - 1) / rowTiles));
    kernel<<<dim3(unsigned(strips), unsigned(rowTiles)), kThreads, shared, stream>>>(a, cellSizeOf(a.grid));
    ATTNSCOPE_CUDA_TRY_LAUNCH("mapFragmentKernel");
    return {};
}

template <typename Elem>
Status launchMapFragmentsE(const MapArgs& a, cudaStream_t stream) {
    if (a.dim <= 64) return launchMapFragmentsT<Elem, 64>(a, stream);
    if (a.dim <= 128) return launchMapFragmentsT<Elem, 128>(a, stream);
    return launchMapFragmentsT<Elem, 256>(a, stream);
}

}  // namespace

bool mapFragmentsTake(const CellGrid& g) {
    if (g.rows <= 0 || g.cols <= 0) return false;
    if (g.blockSize > 0) return g.blockSize % 16 == 0;
    const long long hq = g.q1 - g.q0, hk = g.k1 - g.k0;
    return hq % g.rows == 0 && (hq / g.rows) % 16 == 0 && hk % g.cols == 0 && (hk / g.cols) % 8 == 0;
}

Status launchMapFragments(const MapArgs& a, cudaStream_t stream) {
    if (a.dim <= 0 || a.dim > kMaxPassDim)
        return {ErrorCode::Unsupported,
                "GPU map: head dim " + std::to_string(a.dim) + ", expected 1.." + std::to_string(kMaxPassDim)};
    if (!mapFragmentsTake(a.grid))
        return {ErrorCode::InvalidArgument, "GPU map: the register-fragment pooling needs an aligned cell grid"};
    return a.elem == ElemType::BF16 ? launchMapFragmentsE<__nv_bfloat16>(a, stream)
                                    : launchMapFragmentsE<__half>(a, stream);
}

}  // namespace attnscope::gpu
