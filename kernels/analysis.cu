// GPU analysis passes of one head, two-pass from Q/K (never T×T in memory), in fp32 to match
// the CPU reference: pass 1 the row logsumexp, pass 2 pools p = exp(s - lse) into cells (the
// multiscale map) or blocks (the block mass matrix). Mask and score semantics are MaskSpec's
// and AttentionSpec's (attention.h).
#include <algorithm>

#include "cuda_check.h"
#include "launch.h"

namespace attnscope::gpu {
namespace {

constexpr int kTile = 64;          ///< queries and keys per CTA tile
constexpr int kThreads = 256;      ///< 16 × 16 threads, 4 × 4 pairs each
constexpr int kPairs = 4;
constexpr int kDimChunk = 32;      ///< d columns staged per step

__device__ bool allows(const AnalysisSpec& s, long long q, long long k, int tokens) {
    if (q < 0 || k < 0 || q >= tokens || k >= tokens) return false;
    if (k >= s.prefix) {
        const long long d = q - k;
        if (s.causal && d < 0) return false;
        if (s.window > 0 && (d >= s.window || -d >= s.window)) return false;
        if (s.dilation > 1 && d % s.dilation != 0) return false;
    }
    if (s.documents && s.documents[q] != s.documents[k]) return false;
    if (s.blocks) {
        const long long br = q / s.blockSize, bc = k / s.blockSize;
        if (bc >= s.blockCols || br >= s.blockRows || !s.blocks[br * s.blockCols + bc]) return false;
    }
    if (s.excludedCount > 0) {
        int lo = 0, hi = s.excludedCount;
        while (lo < hi) {
            const int mid = (lo + hi) / 2;
            if (s.excluded[mid] < k) lo = mid + 1; else hi = mid;
        }
        if (lo < s.excludedCount && s.excluded[lo] == k) return false;
    }
    return true;
}

__device__ float scoreOf(const AnalysisSpec& s, float dot, long long q, long long k) {
    float x = s.scale * dot;
    if (s.softcap > 0) x = s.softcap * tanhf(x / s.softcap);
    if (s.alibiSlope != 0) x += s.alibiSlope * float(k - q);
    if (s.relativeBias != 0) x += s.relativeBias * float(q - k);
    return x;
}

/// Whether a tile can hold no allowed pair (cheap bounds of causal and window masks).
__device__ bool tileSkippable(const AnalysisSpec& s, long long q0, long long k0) {
    const long long q1 = q0 + kTile - 1, k1 = k0 + kTile - 1;
    if (s.prefix > k0) return false;
    if (s.causal && k0 > q1) return true;
    if (s.window > 0 && (q0 - k1 >= s.window || k0 - q1 >= s.window)) return true;
    return false;
}

/// dot[i][j] = q_{q0+ty·4+i} · k_{k0+tx·4+j} through shared-memory chunks of d.
__device__ void tileDots(const float* q, const float* k, int tokens, int dim, long long q0, long long k0,
                         float (*sQ)[kDimChunk + 1], float (*sK)[kDimChunk + 1], float (&dot)[kPairs][kPairs]) {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int i = 0; i < kPairs; ++i)
        for (int j = 0; j < kPairs; ++j) dot[i][j] = 0.0f;
    for (int c0 = 0; c0 < dim; c0 += kDimChunk) {
        for (int e = threadIdx.x; e < kTile * kDimChunk; e += kThreads) {
            const int r = e / kDimChunk, c = e % kDimChunk;
            const bool inDim = c0 + c < dim;
            sQ[r][c] = (q0 + r < tokens && inDim) ? q[(q0 + r) * dim + c0 + c] : 0.0f;
            sK[r][c] = (k0 + r < tokens && inDim) ? k[(k0 + r) * dim + c0 + c] : 0.0f;
        }
        __syncthreads();
#pragma unroll 4
        for (int c = 0; c < kDimChunk; ++c) {
            float a[kPairs], b[kPairs];
            for (int i = 0; i < kPairs; ++i) a[i] = sQ[ty * kPairs + i][c];
            for (int j = 0; j < kPairs; ++j) b[j] = sK[tx * kPairs + j][c];
            for (int i = 0; i < kPairs; ++i)
                for (int j = 0; j < kPairs; ++j) dot[i][j] = fmaf(a[i], b[j], dot[i][j]);
        }
        __syncthreads();
    }
}

// Pass 1: one CTA per 64 rows, online logsumexp over all key tiles.
__global__ void __launch_bounds__(kThreads) rowLseKernel(const float* q, const float* k, int tokens, int dim,
                                                         AnalysisSpec spec, float* lse) {
    __shared__ float sQ[kTile][kDimChunk + 1], sK[kTile][kDimChunk + 1];
    const long long q0 = static_cast<long long>(blockIdx.x) * kTile;
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    float m[kPairs], l[kPairs];
    for (int i = 0; i < kPairs; ++i) m[i] = -INFINITY, l[i] = 0.0f;
    for (long long k0 = 0; k0 < tokens; k0 += kTile) {
        if (tileSkippable(spec, q0, k0)) continue;  // uniform over the CTA
        float dot[kPairs][kPairs];
        tileDots(q, k, tokens, dim, q0, k0, sQ, sK, dot);
        for (int i = 0; i < kPairs; ++i)
            for (int j = 0; j < kPairs; ++j) {
                const long long qi = q0 + ty * kPairs + i, kj = k0 + tx * kPairs + j;
                if (!allows(spec, qi, kj, tokens)) continue;
                const float s = scoreOf(spec, dot[i][j], qi, kj);
                if (s > m[i]) {
                    l[i] = l[i] * __expf(m[i] - s) + 1.0f;
                    m[i] = s;
                } else {
                    l[i] += __expf(s - m[i]);
                }
            }
    }
    // Combine the 16 threads of each row (consecutive lanes of one half-warp).
    for (int i = 0; i < kPairs; ++i) {
        for (int off = 8; off > 0; off /= 2) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[i], off);
            const float lo = __shfl_xor_sync(0xffffffffu, l[i], off);
            const float mn = fmaxf(m[i], mo);
            l[i] = (m[i] == -INFINITY ? 0.0f : l[i] * __expf(m[i] - mn)) + (mo == -INFINITY ? 0.0f : lo * __expf(mo - mn));
            m[i] = mn;
        }
        const long long qi = q0 + ty * kPairs + i;
        if (tx == 0 && qi < tokens) lse[qi] = l[i] > 0.0f ? m[i] + logf(l[i]) : -INFINITY;
    }
}

__device__ int cellOf(long long x, long long origin, long long extent, int cells, long long blockSize) {
    const long long r = x - origin;
    if (blockSize > 0) return static_cast<int>(r / blockSize);
    // Largest c with floor(c·extent / cells) <= r.
    return static_cast<int>(((r + 1) * cells - 1) / extent);
}

// Pass 2: one CTA per 64×64 tile of the rectangle; p pooled per cell in shared memory first.
__global__ void __launch_bounds__(kThreads) poolKernel(const float* q, const float* k, int tokens, int dim,
                                                       AnalysisSpec spec, const float* lse, CellGrid grid,
                                                       double* sums, float* maxima, unsigned long long* allowedCount,
                                                       int maxCellsPerTile) {
    __shared__ float sQ[kTile][kDimChunk + 1], sK[kTile][kDimChunk + 1];
    extern __shared__ float cellShared[];
    const long long q0 = grid.q0 + static_cast<long long>(blockIdx.y) * kTile;
    const long long k0 = grid.k0 + static_cast<long long>(blockIdx.x) * kTile;
    if (tileSkippable(spec, q0, k0)) return;
    const long long qLast = min(q0 + kTile, grid.q1) - 1, kLast = min(k0 + kTile, grid.k1) - 1;
    const int cy0 = cellOf(q0, grid.q0, grid.q1 - grid.q0, grid.rows, grid.blockSize);
    const int cx0 = cellOf(k0, grid.k0, grid.k1 - grid.k0, grid.cols, grid.blockSize);
    const int ncy = cellOf(qLast, grid.q0, grid.q1 - grid.q0, grid.rows, grid.blockSize) - cy0 + 1;
    const int ncx = cellOf(kLast, grid.k0, grid.k1 - grid.k0, grid.cols, grid.blockSize) - cx0 + 1;
    const int nCells = ncy * ncx;
    float* cSum = cellShared;
    float* cMax = cSum + maxCellsPerTile;
    unsigned* cCount = reinterpret_cast<unsigned*>(cMax + maxCellsPerTile);
    for (int c = threadIdx.x; c < nCells; c += kThreads) cSum[c] = 0.0f, cMax[c] = 0.0f, cCount[c] = 0u;
    float dot[kPairs][kPairs];
    tileDots(q, k, tokens, dim, q0, k0, sQ, sK, dot);  // ends with a barrier: the cells are zeroed
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int i = 0; i < kPairs; ++i) {
        const long long qi = q0 + ty * kPairs + i;
        if (qi > qLast) break;
        const float rowLse = lse[qi];
        const int cy = cellOf(qi, grid.q0, grid.q1 - grid.q0, grid.rows, grid.blockSize) - cy0;
        // Runs of keys in one cell are summed in registers before one shared atomic.
        int runCell = -1;
        float runSum = 0.0f, runMax = 0.0f;
        unsigned runCount = 0;
        for (int j = 0; j < kPairs; ++j) {
            const long long kj = k0 + tx * kPairs + j;
            if (kj > kLast) break;
            const int cell = cy * ncx + cellOf(kj, grid.k0, grid.k1 - grid.k0, grid.cols, grid.blockSize) - cx0;
            if (cell != runCell) {
                if (runCell >= 0 && runCount > 0) {
                    atomicAdd(&cSum[runCell], runSum);
                    atomicMax(reinterpret_cast<int*>(&cMax[runCell]), __float_as_int(runMax));
                    atomicAdd(&cCount[runCell], runCount);
                }
                runCell = cell, runSum = 0.0f, runMax = 0.0f, runCount = 0;
            }
            if (!allows(spec, qi, kj, tokens) || rowLse == -INFINITY) continue;
            const float p = __expf(scoreOf(spec, dot[i][j], qi, kj) - rowLse);
            runSum += p;
            runMax = fmaxf(runMax, p);
            ++runCount;
        }
        if (runCell >= 0 && runCount > 0) {
            atomicAdd(&cSum[runCell], runSum);
            atomicMax(reinterpret_cast<int*>(&cMax[runCell]), __float_as_int(runMax));
            atomicAdd(&cCount[runCell], runCount);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < nCells; c += kThreads) {
        if (cCount[c] == 0) continue;
        const long long cell = static_cast<long long>(cy0 + c / ncx) * grid.cols + cx0 + c % ncx;
        atomicAdd(&sums[cell], static_cast<double>(cSum[c]));
        atomicMax(reinterpret_cast<int*>(&maxima[cell]), __float_as_int(cMax[c]));
        atomicAdd(&allowedCount[cell], static_cast<unsigned long long>(cCount[c]));
    }
}

}  // namespace

Status launchRowLse(const float* q, const float* k, int tokens, int dim, const AnalysisSpec& spec, float* lse,
                    cudaStream_t stream) {
    const dim3 grid((tokens + kTile - 1) / kTile);
    rowLseKernel<<<grid, kThreads, 0, stream>>>(q, k, tokens, dim, spec, lse);
    ATTNSCOPE_CUDA_TRY_LAUNCH("rowLseKernel");
    return {};
}

Status launchPool(const float* q, const float* k, int tokens, int dim, const AnalysisSpec& spec, const float* lse,
                  const CellGrid& grid, double* sums, float* maxima, unsigned long long* allowed, cudaStream_t stream) {
    // A 64-wide tile spans at most 65 cells per axis (cells of one token plus a partial edge).
    const long long rowsSpan = grid.q1 - grid.q0, colsSpan = grid.k1 - grid.k0;
    auto span = [](long long extent, int cells, long long blockSize) -> int {
        if (blockSize > 0) return static_cast<int>(kTile / blockSize + 2);
        const long long perCell = extent / cells;  // floor cell height; the tile crosses at most 64/perCell + 2
        return static_cast<int>(perCell > 0 ? std::min<long long>(kTile / perCell + 2, kTile + 1) : kTile + 1);
    };
    const int maxCells = span(rowsSpan, grid.rows, grid.blockSize) * span(colsSpan, grid.cols, grid.blockSize);
    const int shared = maxCells * 3 * static_cast<int>(sizeof(float));
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(poolKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    const dim3 g((colsSpan + kTile - 1) / kTile, (rowsSpan + kTile - 1) / kTile);
    poolKernel<<<g, kThreads, shared, stream>>>(q, k, tokens, dim, spec, lse, grid, sums, maxima, allowed, maxCells);
    ATTNSCOPE_CUDA_TRY_LAUNCH("poolKernel");
    return {};
}

}  // namespace attnscope::gpu
