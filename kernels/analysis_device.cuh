#pragma once
// Device helpers shared by the analysis pass kernels (analysis_tc.cu: the wmma lse pass and the
// map; analysis_mma.cu: the register-fragment passes): the spec's mask and score, per-tile
// classes and the cp.async tile loader. Every tile is 64 query rows × 64 keys.
#include <cuda_runtime.h>

#include <cstdint>

#include "analysis_tc.h"
#include "mma.cuh"

namespace attnscope::gpu::pass {

constexpr int kRows = 64;  ///< query rows per CTA
constexpr int kKeys = 64;  ///< keys per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

/// L' = logaddexp(L, sink) (natural log; AttentionSpec::sinkLogit): a learned sink joins the row's
/// denominator. L = -inf (no allowed key) gives the sink; sink = -inf leaves L.
__device__ __forceinline__ float foldSink(float lse, float sink) {
    if (sink == -INFINITY) return lse;
    if (lse == -INFINITY) return sink;
    const float hi = fmaxf(lse, sink), lo = fminf(lse, sink);
    return hi + log1pf(expf(lo - hi));
}

__device__ __forceinline__ bool isExcluded(const AnalysisSpec& s, int k) {
    int lo = 0, hi = s.excludedCount;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (s.excluded[mid] < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s.excludedCount && s.excluded[lo] == k;
}

/// MaskSpec::allows for q, k in [0, tokens) (32-bit: T < 2^30 is checked on the host).
__device__ __forceinline__ bool allows(const AnalysisSpec& s, int q, int k, int tokens) {
    if (q >= tokens || k >= tokens) return false;
    if (k >= s.prefix) {
        const int d = q - k;
        if (s.causal && d < 0) return false;
        if (s.window > 0 && (d >= s.window || -d >= s.window)) return false;
        if (s.dilation > 1 && d % int(s.dilation) != 0) return false;
    }
    if (s.documents && s.documents[q] != s.documents[k]) return false;
    if (s.blocks) {
        const long long br = q / s.blockSize, bc = k / s.blockSize;
        if (bc >= s.blockCols || br >= s.blockRows || !s.blocks[br * s.blockCols + bc]) return false;
    }
    if (s.excludedCount > 0 && isExcluded(s, k)) return false;
    return true;
}

__device__ __forceinline__ bool hasScoreMod(const AnalysisSpec& s) {
    return s.softcap > 0 || s.alibiSlope != 0 || s.relativeBias != 0;
}

/// The score in log2 units (softmax in the exp2 domain: p = 2^(score2 - lse2)).
__device__ __forceinline__ float score2Of(const AnalysisSpec& s, float dot, int q, int k) {
    float x = s.scale * dot;
    if (s.softcap > 0) x = s.softcap * tanhf(x / s.softcap);
    if (s.alibiSlope != 0) x += s.alibiSlope * float(k - q);
    if (s.relativeBias != 0) x += s.relativeBias * float(q - k);
    return x * kLog2e;
}

/// Whether the 64×64 tile at (q0, k0) holds no pair the spec allows (causal / window bounds).
__device__ __forceinline__ bool tileSkippable(const AnalysisSpec& s, int q0, int k0) {
    const int q1 = q0 + kRows - 1, k1 = k0 + kKeys - 1;
    if (s.prefix > k0) return false;
    if (s.causal && k0 > q1) return true;
    if (s.window > 0 && (q0 - k1 >= s.window || k0 - q1 >= s.window)) return true;
    return false;
}

/// Whether every pair of the tile is allowed, so the epilogue can skip the per-element mask.
__device__ __forceinline__ bool tileFull(const AnalysisSpec& s, int q0, int k0, int rowEnd, int tokens) {
    const int q1 = q0 + kRows - 1, k1 = k0 + kKeys - 1;
    if (q1 >= rowEnd || k1 >= tokens || s.documents || s.blocks) return false;
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

/// Issues cp.async for the 64 rows [r0, r0 + 64) of a [tokens, dim] 16-bit matrix into shared
/// [64][D + 8], zero-filled past the rows and past `dim`; dims that are not a multiple of 8 load
/// synchronously. The caller commits the group and waits for it.
template <int D>
__device__ __forceinline__ void loadTileAsync(uint16_t* dst, const uint16_t* src, int r0, int rowsEnd, int dim) {
    constexpr int ld = D + 8;
    constexpr int perRow = D / 8;  // 16-byte chunks
    if (dim % 8 == 0) {
        for (int e = threadIdx.x; e < kRows * perRow; e += kThreads) {
            const int r = e / perRow, c = (e % perRow) * 8;
            const bool valid = r0 + r < rowsEnd && c < dim;
            flex::cpAsync16(dst + r * ld + c, valid ? src + size_t(r0 + r) * dim + c : src, valid);
        }
    } else {
        for (int e = threadIdx.x; e < kRows * D; e += kThreads) {
            const int r = e / D, c = e % D;
            dst[r * ld + c] = (r0 + r < rowsEnd && c < dim) ? src[size_t(r0 + r) * dim + c] : uint16_t(0);
        }
    }
}

/// loadTileAsync for a whole tile of a matrix whose rows are exactly D wide (no bounds checks):
/// each thread copies one 16-byte column chunk of every (kThreads / (D / 8))-th row.
template <int D>
__device__ __forceinline__ void loadFullTileAsync(uint16_t* dst, const uint16_t* src, int r0) {
    constexpr int ld = D + 8, chunks = D / 8, rowStep = kThreads / chunks;
    const int r = threadIdx.x / chunks, c = (threadIdx.x % chunks) * 8;
    const uint16_t* s = src + size_t(r0 + r) * D + c;
    uint16_t* d = dst + r * ld + c;
#pragma unroll
    for (int k = 0; k < kRows / rowStep; ++k) flex::cpAsync16(d + k * rowStep * ld, s + size_t(k) * rowStep * D, true);
}

/// The tile loader the passes use: the unchecked one where it applies.
template <int D>
__device__ __forceinline__ void loadTile(uint16_t* dst, const uint16_t* src, int r0, int rowsEnd, int dim) {
    if (dim == D && r0 + kRows <= rowsEnd)
        loadFullTileAsync<D>(dst, src, r0);
    else
        loadTileAsync<D>(dst, src, r0, rowsEnd, dim);
}

/// Whether a masked pass can skip the tile (the candidate keeps nothing in it).
__device__ __forceinline__ bool maskSkipsTile(const HeadPassArgs& h, int q0, int k0, int tokens) {
    const int dLo = q0 - (k0 + kKeys - 1), dHi = q0 + kRows - 1 - k0;  // offsets i - j in the tile
    switch (h.maskKind) {
    case kPassMaskWindow:
    case kPassMaskSinkWindow: {
        const bool windowHit = dHi > -h.maskWindow && dLo < h.maskWindow;
        const bool sinkHit = h.maskKind == kPassMaskSinkWindow && k0 < h.maskSinks;
        return !windowHit && !sinkHit;
    }
    case kPassMaskVerticalSlash: {
        if (h.verticalTiles[k0 / kKeys]) return false;
        const long long n = h.origin + tokens;
        const long long lo = max(0LL, dLo + h.origin), hi = min(n - 1, dHi + h.origin);
        return hi < lo || h.slashPrefix[hi + 1] - h.slashPrefix[lo] == 0;
    }
    case kPassMaskBlocks:
        return h.keptBlocks[(long long)(q0 / h.maskBlockSize) * h.maskBlockCols + k0 / h.maskBlockSize] == 0;
    default: return false;
    }
}

}  // namespace attnscope::gpu::pass
