// The wmma passes of analysis_tc.h: the row logsumexp over any spec (the map's pass 1, and the
// analysis's pass 1 where the forward kernel does not take the mask) and the map's pooling. A
// CTA owns 64 query rows of one head (4 warps of 16 rows) and sweeps 64-key tiles: S = Q·Kᵀ on
// wmma (16-bit inputs, fp32 accumulation) into shared memory, then an epilogue per element with
// one lane per (row, half of the tile's columns). The analysis's other passes (stats, estimate,
// masked) keep S and P in registers: analysis_mma.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "analysis_device.cuh"
#include "analysis_tc.h"
#include "mma.cuh"
#include "cuda_check.h"

namespace attnscope::gpu {
namespace {

using namespace nvcuda;
using pass::allows;
using pass::foldSink;
using pass::hasScoreMod;
using pass::kKeys;
using pass::kRows;
using pass::kThreads;
using pass::kWarps;
using pass::loadTileAsync;
using pass::score2Of;
using pass::tileFull;
using pass::tileSkippable;

constexpr int kSLd = kKeys + 4;  ///< float S tile row stride (wmma needs a multiple of 4)
constexpr int kHalfCols = kKeys / 2;

template <typename Elem>
struct ElemOf;
template <>
struct ElemOf<__nv_bfloat16> {
    static __device__ __forceinline__ __nv_bfloat16 from(float x) { return __float2bfloat16(x); }
};
template <>
struct ElemOf<__half> {
    static __device__ __forceinline__ __half from(float x) { return __float2half(x); }
};

/// Loads `kRows` rows [r0, r0 + 64) of a [tokens, dim] matrix into shared [64][D + 8], zero past
/// the end of the rows and past `dim` (so any dim ≤ D gives the same dot products).
template <typename Elem, int D>
__device__ void loadTile(Elem* dst, const Elem* src, long long r0, long long rowsEnd, int dim) {
    constexpr int ld = D + 8;
    if (dim == D) {
        constexpr int perRow = D / 8;  // 16-byte chunks
        for (int e = threadIdx.x; e < kRows * perRow; e += kThreads) {
            const int r = e / perRow, c = (e % perRow) * 8;
            uint4 val = make_uint4(0, 0, 0, 0);
            if (r0 + r < rowsEnd) val = *reinterpret_cast<const uint4*>(src + (r0 + r) * D + c);
            *reinterpret_cast<uint4*>(dst + r * ld + c) = val;
        }
    } else {
        for (int e = threadIdx.x; e < kRows * D; e += kThreads) {
            const int r = e / D, c = e % D;
            Elem val = ElemOf<Elem>::from(0.0f);
            if (r0 + r < rowsEnd && c < dim) val = src[(r0 + r) * dim + c];
            dst[r * ld + c] = val;
        }
    }
}

/// Issues cp.async for the 64 rows [r0, r0 + 64) of a [tokens, dim] 16-bit matrix into shared
/// [64][D + 8], zero-filled past the rows and past `dim`; dims that are not a multiple of 8 load

/// S rows [16·warp, +16) × 64 keys = Q·Kᵀ into shared float [64][kSLd].
template <typename Elem, int D>
__device__ void scoreTile(const Elem* sQ, const Elem* sK, float* sS, int warp) {
    constexpr int ld = D + 8;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKeys / 16];
#pragma unroll
    for (int n = 0; n < kKeys / 16; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, Elem, wmma::row_major> a;
        wmma::load_matrix_sync(a, sQ + warp * 16 * ld + kk * 16, ld);
#pragma unroll
        for (int n = 0; n < kKeys / 16; ++n) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, Elem, wmma::col_major> b;  // Kᵀ: K rows are its columns
            wmma::load_matrix_sync(b, sK + n * 16 * ld + kk * 16, ld);
            wmma::mma_sync(acc[n], a, b, acc[n]);
        }
    }
#pragma unroll
    for (int n = 0; n < kKeys / 16; ++n)
        wmma::store_matrix_sync(sS + warp * 16 * kSLd + n * 16, acc[n], kSLd, wmma::mem_row_major);
}

/// Shared memory of the wmma kernels: the Q tile, two K tiles (double-buffered), the float S tile
/// and per-key context (the map's cell columns).
template <int D>
struct PassLayout {
    static constexpr int ld = D + 8;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + size_t(kRows) * ld * 2;  ///< two K tiles (double-buffered)
    static constexpr size_t kBuffer = size_t(kKeys) * ld * 2;
    static constexpr size_t s = k + 2 * kBuffer;
    static constexpr size_t keyCtx = s + size_t(kRows) * kSLd * 4;  ///< kKeys ints
    static constexpr size_t bytes = keyCtx + kKeys * 4;
};

/// Pass 1 (the row logsumexp) over the rows [rowBegin, rowEnd) of every head (grid.y = head).
template <typename Elem, int D>
__global__ void __launch_bounds__(kThreads) lsePassKernel(const __grid_constant__ LayerPassArgs a) {
    using L = PassLayout<D>;
    extern __shared__ __align__(128) unsigned char smem[];
    Elem* sQ = reinterpret_cast<Elem*>(smem + L::q);
    float* sS = reinterpret_cast<float*>(smem + L::s);

    const HeadPassArgs& h = a.heads[blockIdx.y];
    const int T = a.tokens;
    const int rowBegin = int(a.rowBegin), rowEnd = int(a.rowEnd);
    const int tiles = (rowEnd - rowBegin + kRows - 1) / kRows;
    // Causal heads: the last row tiles hold the most keys; start them first.
    const int tile = h.spec.causal ? tiles - 1 - int(blockIdx.x) : int(blockIdx.x);
    const int q0 = rowBegin + tile * kRows;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = warp * 16 + lane / 2, half = lane % 2;
    const int i = q0 + r;
    const bool rowIn = i < rowEnd;
    const bool scoreMods = hasScoreMod(h.spec);
    const float scale2 = h.spec.scale * 1.4426950408889634f;
    loadTile<Elem, D>(sQ, static_cast<const Elem*>(h.q), q0, rowEnd, a.dim);
    float m = -INFINITY, l = 0.0f;  // log2 units

    const int kEnd = h.spec.causal && h.spec.prefix == 0 ? min(T, q0 + kRows) : T;
    auto nextTile = [&](int k0) {
        while (k0 < kEnd && tileSkippable(h.spec, q0, k0)) k0 += kKeys;
        return k0;
    };
    const uint16_t* kSrc = static_cast<const uint16_t*>(h.k);
    // K tiles are double-buffered through cp.async: tile t+1 loads while tile t computes.
    int k0 = nextTile(0);
    int buffer = 0;
    if (k0 < kEnd) loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k), kSrc, k0, T, a.dim);
    flex::cpAsyncCommit();
    for (; k0 < kEnd; buffer ^= 1) {
        const int kNext = nextTile(k0 + kKeys);
        const bool full = tileFull(h.spec, q0, k0, rowEnd, T);
        Elem* sK = reinterpret_cast<Elem*>(smem + L::k + buffer * L::kBuffer);
        __syncthreads();  // the previous tile's readers are done (its K buffer, S)
        if (kNext < kEnd)
            loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k + (buffer ^ 1) * L::kBuffer), kSrc, kNext, T,
                             a.dim);
        flex::cpAsyncCommit();
        flex::cpAsyncWait<1>();  // this tile's K
        __syncthreads();
        scoreTile<Elem, D>(sQ, sK, sS, warp);
        __syncwarp();
        const float* srow = sS + r * kSLd;
        const int cBase = half * kHalfCols;
        // Two steps per tile: the lane's max, then one rescale and the sum.
        float x2[kHalfCols];
        float tileMax = -INFINITY;
#pragma unroll
        for (int cc = 0; cc < kHalfCols; ++cc) {
            const int c = cBase + cc, j = k0 + c;
            const bool ok = rowIn && (full || allows(h.spec, i, j, T));
            x2[cc] = ok ? (scoreMods ? score2Of(h.spec, srow[c], i, j) : srow[c] * scale2) : -INFINITY;
            tileMax = fmaxf(tileMax, x2[cc]);
        }
        if (tileMax != -INFINITY) {
            const float mn = fmaxf(m, tileMax);
            float sum = 0.0f;
#pragma unroll
            for (int cc = 0; cc < kHalfCols; ++cc) sum += exp2f(x2[cc] - mn);
            l = (m == -INFINITY ? 0.0f : l * exp2f(m - mn)) + sum;
            m = mn;
        }
        k0 = kNext;
    }
    flex::cpAsyncWait<0>();
    // The two lanes of a row combine their halves.
    const float mo = __shfl_xor_sync(0xffffffffu, m, 1), lo = __shfl_xor_sync(0xffffffffu, l, 1);
    const float mn = fmaxf(m, mo);
    const float lt = (m == -INFINITY ? 0.0f : l * exp2f(m - mn)) + (mo == -INFINITY ? 0.0f : lo * exp2f(mo - mn));
    if (half == 0 && rowIn)
        h.lse[i] = foldSink(lt > 0.0f ? (mn + log2f(lt)) * 0.6931471805599453f : -INFINITY, h.spec.sinkLogit);
}

template <typename Elem, int D>
Status launchLseT(const LayerPassArgs& a, cudaStream_t stream) {
    auto kernel = lsePassKernel<Elem, D>;
    const size_t shared = PassLayout<D>::bytes;
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    const dim3 grid(unsigned((a.rowEnd - a.rowBegin + kRows - 1) / kRows), unsigned(a.heads_));
    kernel<<<grid, kThreads, shared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("lsePassKernel");
    return {};
}

template <typename Elem>
Status launchLseE(const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 64) return launchLseT<Elem, 64>(a, stream);
    if (a.dim <= 128) return launchLseT<Elem, 128>(a, stream);
    return launchLseT<Elem, 256>(a, stream);
}

// ---------------------------------------------------------------------------------------------
// The map: pooled mean / max / allowed count per cell of a rectangle.
// ---------------------------------------------------------------------------------------------

__device__ __forceinline__ int cellOf(long long x, long long origin, long long extent, int cells, long long blockSize) {
    const long long r = x - origin;
    if (blockSize > 0) return static_cast<int>(r / blockSize);
    // Largest c with floor(c·extent / cells) <= r.
    return static_cast<int>(((r + 1) * cells - 1) / extent);
}

template <typename Elem, int D>
__global__ void __launch_bounds__(kThreads) mapPoolKernel(const __grid_constant__ MapArgs a) {
    using L = PassLayout<D>;
    extern __shared__ __align__(128) unsigned char smem[];
    Elem* sQ = reinterpret_cast<Elem*>(smem + L::q);
    float* sS = reinterpret_cast<float*>(smem + L::s);
    int* keyCell = reinterpret_cast<int*>(smem + L::keyCtx);  // cell column of each key of the tile
    __shared__ float redSum[kWarps], redMax[kWarps];
    __shared__ unsigned redCount[kWarps];
    const CellGrid& g = a.grid;
    const int q0 = int(g.q0) + int(blockIdx.y) * kRows;
    const int T = a.tokens, qEnd = int(g.q1);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = warp * 16 + lane / 2, half = lane % 2;
    const int i = q0 + r;
    const bool rowIn = i < qEnd;
    const float rowLse2 = rowIn ? a.lse[i] * 1.4426950408889634f : -INFINITY;
    const bool rowLive = rowIn && rowLse2 != -INFINITY;
    const bool scoreMods = hasScoreMod(a.spec);
    const float scale2 = a.spec.scale * 1.4426950408889634f;
    const int qLast = min(q0 + kRows, qEnd) - 1;
    // Each CTA takes a strip of key tiles (grid.x strips), so wide rectangles spread over SMs.
    const int keyTiles = int((g.k1 - g.k0 + kKeys - 1) / kKeys);
    const int perStrip = (keyTiles + int(gridDim.x) - 1) / int(gridDim.x);
    loadTile<Elem, D>(sQ, static_cast<const Elem*>(a.q), q0, qEnd, a.dim);
    const int cy0 = cellOf(q0, g.q0, g.q1 - g.q0, g.rows, g.blockSize);
    const int cy1 = cellOf(qLast, g.q0, g.q1 - g.q0, g.rows, g.blockSize);
    const int cyMine = rowIn ? cellOf(i, g.q0, g.q1 - g.q0, g.rows, g.blockSize) : -1;
    const int tEnd = min(keyTiles, int(blockIdx.x + 1) * perStrip);
    auto nextTile = [&](int t) {
        while (t < tEnd && tileSkippable(a.spec, q0, int(g.k0) + t * kKeys)) ++t;
        return t;
    };
    const uint16_t* kSrc = static_cast<const uint16_t*>(a.k);
    int t = nextTile(int(blockIdx.x) * perStrip);
    int buffer = 0;
    if (t < tEnd) loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k), kSrc, int(g.k0) + t * kKeys, T, a.dim);
    flex::cpAsyncCommit();
    for (; t < tEnd; buffer ^= 1) {
        const int tNext = nextTile(t + 1);
        const int k0 = int(g.k0) + t * kKeys;
        t = tNext;
        const int kLast = min(k0 + kKeys, int(g.k1)) - 1;
        const int cx0 = cellOf(k0, g.k0, g.k1 - g.k0, g.cols, g.blockSize);
        const int cx1 = cellOf(kLast, g.k0, g.k1 - g.k0, g.cols, g.blockSize);
        const bool oneCell = cy0 == cy1 && cx0 == cx1;
        const bool full = tileFull(a.spec, q0, k0, qEnd, min(T, int(g.k1)));
        const Elem* sK = reinterpret_cast<const Elem*>(smem + L::k + buffer * L::kBuffer);
        __syncthreads();  // the previous tile's readers are done
        if (tNext < tEnd)
            loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k + (buffer ^ 1) * L::kBuffer), kSrc,
                             int(g.k0) + tNext * kKeys, T, a.dim);
        flex::cpAsyncCommit();
        for (int c = threadIdx.x; c < kKeys; c += kThreads)
            keyCell[c] = k0 + c <= kLast ? cellOf(k0 + c, g.k0, g.k1 - g.k0, g.cols, g.blockSize) - cx0 : -1;
        flex::cpAsyncWait<1>();  // this tile's K
        __syncthreads();
        scoreTile<Elem, D>(sQ, sK, sS, warp);
        __syncwarp();
        const float* srow = sS + r * kSLd;
        const int cBase = half * kHalfCols;
        if (oneCell) {
            // The whole tile is one cell: sums in registers, one reduction over the CTA.
            float sum = 0.0f, mx = 0.0f;
            unsigned count = 0;
            if (rowLive) {
                if (full && !scoreMods) {
#pragma unroll 8
                    for (int cc = 0; cc < kHalfCols; ++cc) {
                        const float p = exp2f(srow[cBase + cc] * scale2 - rowLse2);
                        sum += p;
                        mx = fmaxf(mx, p);
                    }
                    count = kHalfCols;
                } else {
                    for (int cc = 0; cc < kHalfCols; ++cc) {
                        const int c = cBase + cc, j = k0 + c;
                        if (j > kLast || !(full || allows(a.spec, i, j, T))) continue;
                        const float p =
                            exp2f((scoreMods ? score2Of(a.spec, srow[c], i, j) : srow[c] * scale2) - rowLse2);
                        sum += p;
                        mx = fmaxf(mx, p);
                        ++count;
                    }
                }
            }
            for (int sft = 16; sft > 0; sft /= 2) {
                sum += __shfl_xor_sync(0xffffffffu, sum, sft);
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, sft));
                count += __shfl_xor_sync(0xffffffffu, count, sft);
            }
            if (lane == 0) redSum[warp] = sum, redMax[warp] = mx, redCount[warp] = count;
            __syncthreads();
            if (threadIdx.x == 0) {
                float s2 = 0.0f, m2 = 0.0f;
                unsigned n = 0;
                for (int w = 0; w < kWarps; ++w) s2 += redSum[w], m2 = fmaxf(m2, redMax[w]), n += redCount[w];
                if (n > 0) {
                    const long long gc = (long long)cy0 * g.cols + cx0;
                    atomicAdd(&a.sums[gc], double(s2));
                    atomicMax(reinterpret_cast<int*>(&a.maxima[gc]), __float_as_int(m2));
                    atomicAdd(&a.allowed[gc], (unsigned long long)n);
                }
            }
            continue;
        }
        // Several cells: per lane, runs of consecutive keys in one cell, one atomic each.
        const int ncx = cx1 - cx0 + 1;
        float runSum = 0.0f, runMax = 0.0f;
        unsigned runCount = 0;
        int runCell = -1;
        auto flush = [&]() {
            if (runCell >= 0 && runCount > 0) {
                const long long gc = (long long)(cy0 + runCell / ncx) * g.cols + cx0 + runCell % ncx;
                atomicAdd(&a.sums[gc], double(runSum));
                atomicMax(reinterpret_cast<int*>(&a.maxima[gc]), __float_as_int(runMax));
                atomicAdd(&a.allowed[gc], (unsigned long long)runCount);
            }
            runSum = 0.0f, runMax = 0.0f, runCount = 0;
        };
        if (rowIn) {
            for (int cc = 0; cc < kHalfCols; ++cc) {
                const int c = cBase + cc, j = k0 + c;
                if (keyCell[c] < 0) break;
                const int cell = (cyMine - cy0) * ncx + keyCell[c];
                if (cell != runCell) {
                    flush();
                    runCell = cell;
                }
                if (!rowLive || !(full || allows(a.spec, i, j, T))) continue;
                const float p = exp2f((scoreMods ? score2Of(a.spec, srow[c], i, j) : srow[c] * scale2) - rowLse2);
                runSum += p;
                runMax = fmaxf(runMax, p);
                ++runCount;
            }
            flush();
        }
    }
    flex::cpAsyncWait<0>();
}

template <typename Elem, int D>
Status launchMapD(const MapArgs& m, float* lse, void* headScratch, MapLse pass1, bool wgmmaPool, cudaStream_t stream) {
    // Pass 1 over the rectangle's rows (one head, grid.y = 1).
    HeadPassArgs head;
    head.q = m.q, head.k = m.k, head.spec = m.spec, head.lse = lse;
    HeadPassArgs* dHead = static_cast<HeadPassArgs*>(headScratch);
    // From pageable memory (a staged copy): only when a pass-kernel pass 1 reads it.
    if (pass1 != MapLse::Ready)
        ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(dHead, &head, sizeof head, cudaMemcpyHostToDevice, stream));
    LayerPassArgs a;
    a.heads = dHead, a.heads_ = 1, a.tokens = m.tokens, a.dim = m.dim;
    a.rowBegin = m.grid.q0, a.rowEnd = m.grid.q1;
    a.elem = std::is_same_v<Elem, __half> ? ElemType::F16 : ElemType::BF16;
    if (pass1 == MapLse::Wmma) ATTNSCOPE_TRY_STATUS((launchLseT<Elem, D>(a, stream)));
    if (pass1 == MapLse::Fragments) ATTNSCOPE_TRY_STATUS(launchMmaPass(PassKind::LseFragments, a, stream));
    if (mapFragmentsTake(m.grid)) {
        MapArgs f = m;
        f.elem = a.elem;
        return wgmmaPool && mapSm90PoolTakes(f.grid) ? launchMapPoolSm90(f, stream) : launchMapFragments(f, stream);
    }
    auto kernel = mapPoolKernel<Elem, D>;
    const size_t shared = PassLayout<D>::bytes;
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    const long long rowTiles = (m.grid.q1 - m.grid.q0 + kRows - 1) / kRows;
    const long long keyTiles = (m.grid.k1 - m.grid.k0 + kKeys - 1) / kKeys;
    // Enough CTAs to fill the GPU several times over: split the key tiles into strips.
    constexpr long long kTargetCtas = 132 * 8;
    const long long strips = std::max(1LL, std::min(keyTiles, (kTargetCtas + rowTiles - 1) / rowTiles));
    kernel<<<dim3(unsigned(strips), unsigned(rowTiles)), kThreads, shared, stream>>>(m);
    ATTNSCOPE_CUDA_TRY_LAUNCH("mapPoolKernel");
    return {};
}

template <typename Elem>
Status launchMapE(const MapArgs& m, float* lse, void* headScratch, MapLse pass1, bool wgmmaPool, cudaStream_t stream) {
    if (m.dim <= 64) return launchMapD<Elem, 64>(m, lse, headScratch, pass1, wgmmaPool, stream);
    if (m.dim <= 128) return launchMapD<Elem, 128>(m, lse, headScratch, pass1, wgmmaPool, stream);
    return launchMapD<Elem, 256>(m, lse, headScratch, pass1, wgmmaPool, stream);
}

__global__ void mapFinalizeKernel(CellGrid g, const double* sums, const float* maxima,
                                  const unsigned long long* allowed, float* out) {
    const long long cells = (long long)g.rows * g.cols;
    const long long hq = g.q1 - g.q0, hk = g.k1 - g.k0;
    for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cells;
         c += (long long)gridDim.x * blockDim.x) {
        const long long y = c / g.cols, x = c % g.cols;
        const long long rows = (y + 1) * hq / g.rows - y * hq / g.rows;
        const long long cols = (x + 1) * hk / g.cols - x * hk / g.cols;
        const double area = double(rows) * double(cols);
        out[c] = float(sums[c] / area);
        out[cells + c] = maxima[c];
        out[2 * cells + c] = float(double(allowed[c]) / area);
    }
}

__global__ void toBf16Kernel(const __half* x, __nv_bfloat16* y, long long n) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x)
        y[e] = __float2bfloat16(__half2float(x[e]));
}

template <typename Elem>
__global__ void countNonFiniteKernel(const Elem* x, long long n, unsigned long long* result) {
    unsigned long long count = 0;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const float f = float(x[e]);
        count += isfinite(f) ? 0 : 1;
    }
    for (int s = 16; s > 0; s /= 2) count += __shfl_xor_sync(0xffffffffu, count, s);
    if (threadIdx.x % 32 == 0 && count > 0) atomicAdd(result, count);
}

}  // namespace

Status launchAnalysisPass(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 0 || a.dim > kMaxPassDim)
        return {ErrorCode::Unsupported,
                "analysis pass: head dim " + std::to_string(a.dim) + ", expected 1.." + std::to_string(kMaxPassDim)};
    if (a.rowEnd <= a.rowBegin || a.heads_ <= 0) return {};
    if (kind != PassKind::Lse) return launchMmaPass(kind, a, stream);
    return a.elem == ElemType::BF16 ? launchLseE<__nv_bfloat16>(a, stream) : launchLseE<__half>(a, stream);
}

Status launchMapPasses(const void* q, const void* k, ElemType elem, int tokens, int dim, const AnalysisSpec& spec,
                       float* lse, const CellGrid& grid, double* sums, float* maxima, unsigned long long* allowed,
                       void* headScratch, MapLse pass1, bool wgmmaPool, cudaStream_t stream) {
    if (dim <= 0 || dim > kMaxPassDim)
        return {ErrorCode::Unsupported,
                "GPU map: head dim " + std::to_string(dim) + ", expected 1.." + std::to_string(kMaxPassDim)};
    MapArgs m;
    m.q = q, m.k = k, m.tokens = tokens, m.dim = dim, m.spec = spec, m.lse = lse, m.grid = grid;
    m.sums = sums, m.maxima = maxima, m.allowed = allowed;
    if (wgmmaPool && !mapSm90Takes(dim))
        return {ErrorCode::Unsupported, "GPU map: the wgmma pooling takes head dims 64 and 128"};
    return elem == ElemType::BF16 ? launchMapE<__nv_bfloat16>(m, lse, headScratch, pass1, wgmmaPool, stream)
                                  : launchMapE<__half>(m, lse, headScratch, pass1, wgmmaPool, stream);
}

Status launchMapFinalize(const CellGrid& g, const double* sums, const float* maxima, const unsigned long long* allowed,
                         float* out, cudaStream_t stream) {
    const long long cells = (long long)g.rows * g.cols;
    if (cells <= 0) return {};
    constexpr int kBlock = 256;
    mapFinalizeKernel<<<unsigned(std::min<long long>((cells + kBlock - 1) / kBlock, 4096)), kBlock, 0, stream>>>(
        g, sums, maxima, allowed, out);
    ATTNSCOPE_CUDA_TRY_LAUNCH("mapFinalizeKernel");
    return {};
}

Status launchF16ToBf16(const void* f16, void* bf16, long long count, cudaStream_t stream) {
    if (count <= 0) return {};
    constexpr int kBlock = 256;
    const unsigned blocks = unsigned(std::min<long long>((count + kBlock - 1) / kBlock, 132 * 16));
    toBf16Kernel<<<blocks, kBlock, 0, stream>>>(static_cast<const __half*>(f16), static_cast<__nv_bfloat16*>(bf16),
                                                count);
    ATTNSCOPE_CUDA_TRY_LAUNCH("toBf16Kernel");
    return {};
}

Status launchCountNonFinite(const void* data, long long count, ElemType elem, unsigned long long* result,
                            cudaStream_t stream) {
    if (count <= 0) return {};
    constexpr int kBlock = 256;
    const unsigned blocks = unsigned(std::min<long long>((count + kBlock - 1) / kBlock, 132 * 8));
    if (elem == ElemType::BF16)
        countNonFiniteKernel<<<blocks, kBlock, 0, stream>>>(static_cast<const __nv_bfloat16*>(data), count, result);
    else
        countNonFiniteKernel<<<blocks, kBlock, 0, stream>>>(static_cast<const __half*>(data), count, result);
    ATTNSCOPE_CUDA_TRY_LAUNCH("countNonFiniteKernel");
    return {};
}

}  // namespace attnscope::gpu
