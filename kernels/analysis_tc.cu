// Tensor-core analysis passes (see analysis_tc.h). A CTA owns 64 query rows of one head (4 warps
// of 16 rows) and sweeps 64-key tiles: S = Q·Kᵀ on wmma (16-bit inputs, fp32 accumulation) into
// shared memory, then the pass's epilogue per element with one lane per (row, half of the tile's
// columns), so per-row sums stay in registers for the whole sweep. Column, offset and block sums
// are reduced per tile from the probabilities written back to shared memory (conflict-free
// column/diagonal walks), then added to global memory with one atomic per column/diagonal/block.
// P·V runs on wmma too (P rounded to the input dtype, as FlashAttention does).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <type_traits>

#include "analysis_tc.h"
#include "mma.cuh"
#include "attnscope/analysis_limits.h"
#include "cuda_check.h"

namespace attnscope::gpu {
namespace {

using namespace nvcuda;

constexpr int kRows = 64;     ///< query rows per CTA
constexpr int kKeys = 64;     ///< keys per tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kSLd = kKeys + 4;  ///< float S tile row stride (wmma needs a multiple of 4)
constexpr int kPLd = kKeys + 8;  ///< 16-bit P tile row stride (multiple of 8)
constexpr int kHalfCols = kKeys / 2;

__device__ __forceinline__ bool isExcluded(const AnalysisSpec& s, int k) {
    int lo = 0, hi = s.excludedCount;
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        if (s.excluded[mid] < k) lo = mid + 1; else hi = mid;
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
    return x * 1.4426950408889634f;
}

/// Whether the 64×64 tile at (q0, k0) holds no pair the spec allows (causal / window bounds).
__device__ __forceinline__ bool tileSkippable(const AnalysisSpec& s, int q0, int k0) {
    const int q1 = q0 + 63, k1 = k0 + 63;
    if (s.prefix > k0) return false;
    if (s.causal && k0 > q1) return true;
    if (s.window > 0 && (q0 - k1 >= s.window || k0 - q1 >= s.window)) return true;
    return false;
}

/// Whether every pair of the tile is allowed, so the epilogue can skip the per-element mask.
__device__ __forceinline__ bool tileFull(const AnalysisSpec& s, int q0, int k0, int rowEnd, int tokens) {
    const int q1 = q0 + 63, k1 = k0 + 63;
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
            if (s.excluded[mid] < k0) lo = mid + 1; else hi = mid;
        }
        if (lo < s.excludedCount && s.excluded[lo] <= k1) return false;
    }
    return true;
}

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
/// synchronously. The caller commits the group and waits for it.
template <int D>
__device__ void loadTileAsync(uint16_t* dst, const uint16_t* src, int r0, int rowsEnd, int dim) {
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

/// O rows [16·warp, +16) += P[16 × 64] · V[64 × D].
template <typename Elem, int D>
__device__ __forceinline__ void accumulatePV(const Elem* sP, const Elem* sV,
                                             wmma::fragment<wmma::accumulator, 16, 16, 16, float> (&o)[D / 16],
                                             int warp) {
    constexpr int ld = D + 8;
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, Elem, wmma::row_major> a;
        wmma::load_matrix_sync(a, sP + warp * 16 * kPLd + kk * 16, kPLd);
#pragma unroll
        for (int n = 0; n < D / 16; ++n) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, Elem, wmma::row_major> b;
            wmma::load_matrix_sync(b, sV + kk * 16 * ld + n * 16, ld);
            wmma::mma_sync(o[n], a, b, o[n]);
        }
    }
}

/// Shared memory of a pass. V and P (16-bit, bf16 for every input dtype: P·V never underflows
/// where the CPU's float32 does not) only when the pass multiplies by V.
template <int D, bool kWithV>
struct PassLayout {
    static constexpr int ld = D + 8;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + size_t(kRows) * ld * 2;     ///< two K tiles (double-buffered)
    static constexpr size_t kBuffer = size_t(kKeys) * ld * 2;
    static constexpr size_t v = k + 2 * kBuffer;
    static constexpr size_t s = v + (kWithV ? size_t(kKeys) * ld * 2 : 0);
    static constexpr size_t p = s + size_t(kRows) * kSLd * 4;
    static constexpr size_t keyCtx = p + (kWithV ? size_t(kRows) * kPLd * 2 : 0);  ///< 4 × kKeys ints
    static constexpr size_t flags = keyCtx + 4 * kKeys * 4;  ///< vertical-slash flags of the tile: 64 + 128 bytes
    static constexpr size_t colSum = flags + 3 * kKeys;      ///< column partials (2 per column)
    static constexpr size_t bytes = colSum + 2 * kKeys * 4;
    /// The float staging of O at the end (aliases K, V and S, which are free by then).
    static constexpr size_t o = k;
    static constexpr int oLd = D + 4;
    static_assert(!kWithV || size_t(kRows) * oLd * 4 <= p - k, "O staging must fit in K + V + S");
};

struct RowAccum {
    float v[kRowStatCount];
};

/// Whether the candidate mask of a masked pass keeps (i, j); `vFlag` / `sFlags` are the tile's
/// vertical flags and slash flags (index i - j - (q0 - k0) + 63).
__device__ __forceinline__ bool maskKeeps(const HeadPassArgs& h, int i, int j, const unsigned char* vFlag,
                                          const unsigned char* sFlags, int c, int r) {
    const int d = i - j;
    switch (h.maskKind) {
    case kPassMaskWindow: return d < h.maskWindow && -d < h.maskWindow;
    case kPassMaskSinkWindow: return j < h.maskSinks || (d < h.maskWindow && -d < h.maskWindow);
    case kPassMaskVerticalSlash: return vFlag[c] || sFlags[r - c + kKeys - 1];
    case kPassMaskBlocks: return h.keptBlocks[(long long)(i / h.maskBlockSize) * h.maskBlockCols + j / h.maskBlockSize] != 0;
    default: return true;
    }
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
    case kPassMaskBlocks: return h.keptBlocks[(long long)(q0 / h.maskBlockSize) * h.maskBlockCols + k0 / h.maskBlockSize] == 0;
    default: return false;
    }
}

template <typename Elem, int D, PassKind kPass>
__global__ void __launch_bounds__(kThreads) analysisPassKernel(const __grid_constant__ LayerPassArgs a) {
    constexpr bool kNeedsV = kPass == PassKind::Stats || kPass == PassKind::Masked;
    constexpr bool kReduces = kPass == PassKind::Stats || kPass == PassKind::Estimate;
    using L = PassLayout<D, kNeedsV>;
    using PV = __nv_bfloat16;
    extern __shared__ __align__(128) unsigned char smem[];
    Elem* sQ = reinterpret_cast<Elem*>(smem + L::q);
    PV* sV = reinterpret_cast<PV*>(smem + L::v);
    float* sS = reinterpret_cast<float*>(smem + L::s);
    PV* sP = reinterpret_cast<PV*>(smem + L::p);
    int* kId = reinterpret_cast<int*>(smem + L::keyCtx);  // ids[j] (dense ranks of the token ids)
    int* kPrevId = kId + kKeys;                            // ids[j - 1]
    int* kNgram = kPrevId + kKeys;                          // ngram[j - 1]
    int* kDoc = kNgram + kKeys;                             // documents[j]
    unsigned char* vFlag = smem + L::flags;                 // vertical[k0 + c]
    unsigned char* sFlags = vFlag + kKeys;                  // slash[(q0 - k0) + (r - c) + origin], index r - c + 63
    float* colPart = reinterpret_cast<float*>(smem + L::colSum);

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
    float rowLse2 = 0.0f;  // L_i in log2 units
    if (kPass != PassKind::Lse) rowLse2 = rowIn ? h.lse[i] * 1.4426950408889634f : -INFINITY;
    const bool rowLive = kPass == PassKind::Lse ? rowIn : (rowIn && rowLse2 != -INFINITY);
    int rowId = -1, rowNgram = -2, rowDoc = -1;
    bool haveIds = false, haveNgram = false, haveDocs = false;
    if (kPass == PassKind::Stats && rowIn) {
        haveIds = a.tokenIds != nullptr, haveNgram = a.ngram != nullptr, haveDocs = a.documents != nullptr;
        if (haveIds) rowId = a.tokenIds[i];
        if (haveNgram) rowNgram = a.ngram[i];
        if (haveDocs) rowDoc = a.documents[i];
    }
    float m = -INFINITY, l = 0.0f;  // lse pass, log2 units
    RowAccum acc;
#pragma unroll
    for (int x = 0; x < kRowStatCount; ++x) acc.v[x] = 0.0f;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> o[kNeedsV ? D / 16 : 1];
#pragma unroll
    for (int n = 0; n < (kNeedsV ? D / 16 : 1); ++n) wmma::fill_fragment(o[n], 0.0f);
    const int recentN = int(a.recentTokens);
    const float ln2 = 0.6931471805599453f;

    const int kEnd = h.spec.causal && h.spec.prefix == 0 ? min(T, q0 + kRows) : T;
    // The next key tile the pass visits at or after k0 (uniform over the CTA).
    auto nextTile = [&](int k0) {
        for (; k0 < kEnd; k0 += kKeys) {
            if (tileSkippable(h.spec, q0, k0)) continue;
            if (kPass == PassKind::Masked && maskSkipsTile(h, q0, k0, T)) continue;
            break;
        }
        return k0;
    };
    const uint16_t* kSrc = static_cast<const uint16_t*>(h.k);
    // K tiles are double-buffered through cp.async: tile t+1 loads while tile t computes; V (bf16,
    // converted on the device for f16 traces) loads during S and the epilogue of its own tile.
    int k0 = nextTile(0);
    int buffer = 0;
    if (k0 < kEnd) loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k), kSrc, k0, T, a.dim);
    flex::cpAsyncCommit();
    for (; k0 < kEnd; buffer ^= 1) {
        const int kNext = nextTile(k0 + kKeys);
        const bool full = tileFull(h.spec, q0, k0, rowEnd, T);
        Elem* sK = reinterpret_cast<Elem*>(smem + L::k + buffer * L::kBuffer);
        __syncthreads();  // the previous tile's readers are done (its K buffer, V, S, P)
        if constexpr (kNeedsV)
            loadTileAsync<D>(reinterpret_cast<uint16_t*>(sV), static_cast<const uint16_t*>(h.v), k0, T, a.dim);
        flex::cpAsyncCommit();
        if (kNext < kEnd)
            loadTileAsync<D>(reinterpret_cast<uint16_t*>(smem + L::k + (buffer ^ 1) * L::kBuffer), kSrc, kNext, T, a.dim);
        flex::cpAsyncCommit();
        if constexpr (kPass == PassKind::Stats) {
            for (int c = threadIdx.x; c < kKeys; c += kThreads) {
                const int j = k0 + c;
                const bool in = j < T;
                kId[c] = in && a.tokenIds ? a.tokenIds[j] : INT_MIN;
                kPrevId[c] = in && j >= 1 && a.tokenIds ? a.tokenIds[j - 1] : INT_MIN;
                kNgram[c] = (in && j >= 1 && a.ngram) ? a.ngram[j - 1] : -3;
                kDoc[c] = (in && a.documents) ? a.documents[j] : INT_MIN;
            }
        }
        if constexpr (kPass == PassKind::Masked) {
            if (h.maskKind == kPassMaskVerticalSlash) {
                for (int c = threadIdx.x; c < kKeys; c += kThreads) vFlag[c] = k0 + c < T ? h.vertical[k0 + c] : 0;
                for (int x = threadIdx.x; x < 2 * kKeys - 1; x += kThreads) {
                    const long long off = (long long)(q0 - k0) + (x - (kKeys - 1)) + h.origin;
                    sFlags[x] = off >= 0 && off < h.origin + T ? h.slash[off] : 0;
                }
            }
        }
        flex::cpAsyncWait<2>();  // this tile's K (V and the next K may still be in flight)
        __syncthreads();
        scoreTile<Elem, D>(sQ, sK, sS, warp);
        __syncwarp();
        float* srow = sS + r * kSLd;
        const int cBase = half * kHalfCols;
        if constexpr (kPass == PassKind::Lse) {
            // Two steps per tile: the lane's max, then one rescale and the sum.
            float x2[kHalfCols];
            float tileMax = -INFINITY;
#pragma unroll
            for (int cc = 0; cc < kHalfCols; ++cc) {
                const int c = cBase + cc, j = k0 + c;
                const bool ok = rowLive && (full || allows(h.spec, i, j, T));
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
            continue;
        }
        // Near the diagonal (self / previous / next / recent keys) and the first key: per tile.
        const bool firstTile = k0 == 0;
        const bool diagTile = k0 <= q0 + kRows && k0 + kKeys >= q0 - 1;
        const bool recentTile = h.spec.causal ? (k0 + kKeys - 1 > q0 - recentN && k0 <= q0 + kRows - 1)
                                              : (k0 + kKeys - 1 >= T - recentN);
        for (int cc = 0; cc < kHalfCols; ++cc) {
            const int c = cBase + ((cc + r) & (kHalfCols - 1));  // skewed: fewer bank conflicts
            const int j = k0 + c;
            const bool ok = rowLive && (full || allows(h.spec, i, j, T));
            const float x2 = scoreMods ? score2Of(h.spec, srow[c], i, j) : srow[c] * scale2;
            const float lp2 = x2 - rowLse2;  // log2 p
            float p = ok ? exp2f(lp2) : 0.0f;
            if constexpr (kPass == PassKind::Stats) {
                if (ok) {
                    acc.v[kRowMass] += p;
                    acc.v[kRowPlogp] += p * (lp2 * ln2);
                    acc.v[kRowDistance] += p * float(abs(i - j));
                    if (firstTile && j == 0) acc.v[kRowFirst] += p;
                    if (diagTile) {
                        if (j == i) acc.v[kRowSelf] += p;
                        if (j == i - 1) acc.v[kRowPrev] += p;
                        if (j == i + 1) acc.v[kRowNext] += p;
                    }
                    if (recentTile && (h.spec.causal ? (j > i - recentN && j <= i) : (j >= T - recentN)))
                        acc.v[kRowRecent] += p;
                    if (haveIds) {
                        if (j < i && j >= (a.excludeBos ? 1 : 0) && kId[c] == rowId) acc.v[kRowDuplicate] += p;
                        if (j >= 1 && j <= i && kPrevId[c] == rowId && !(a.excludeCurrentToken && j == i))
                            acc.v[kRowInduction] += p;
                    }
                    if (haveNgram && rowNgram >= 0 && j >= 1 && j - 1 < i && kNgram[c] == rowNgram &&
                        !(a.excludeCurrentToken && j == i))
                        acc.v[kRowRepeat] += p;
                    if (haveDocs && kDoc[c] == rowDoc) acc.v[kRowDocument] += p;
                }
            }
            if constexpr (kPass == PassKind::Masked) {
                if (ok && !maskKeeps(h, i, j, vFlag, sFlags, c, r)) p = 0.0f;
                acc.v[kRowMass] += p;
            }
            if constexpr (kReduces) srow[c] = p;
            if constexpr (kNeedsV) sP[r * kPLd + c] = __float2bfloat16(p);
        }
        if constexpr (kNeedsV) {
            flex::cpAsyncWait<1>();  // V of this tile
            __syncthreads();
            accumulatePV<PV, D>(sP, sV, o, warp);
        }
        if constexpr (kReduces) {
            __syncthreads();
            // Column sums: two threads per column, 32 rows each.
            {
                const int c = threadIdx.x % kKeys, rh = threadIdx.x / kKeys;
                float part = 0.0f;
#pragma unroll 8
                for (int rr = rh * 32; rr < rh * 32 + 32; ++rr) part += sS[rr * kSLd + c];
                colPart[threadIdx.x] = part;
            }
            // Diagonals: d = r - c in [-63, 63] (thread t takes d = t - 63; t = 127 idles).
            {
                const int dd = int(threadIdx.x) - (kKeys - 1);
                if (dd <= kRows - 1) {
                    float diag = 0.0f;
                    const int rLo = max(0, dd), rHi = min(kRows - 1, kKeys - 1 + dd);
                    for (int rr = rLo; rr <= rHi; ++rr) diag += sS[rr * kSLd + (rr - dd)];
                    const long long off = (long long)(q0 - k0) + dd + h.origin;
                    if (diag != 0.0f && off >= 0 && off < h.origin + T) atomicAdd(&h.offset[off], diag);
                }
            }
            __syncthreads();
            if (threadIdx.x < kKeys) {
                float colSum = colPart[threadIdx.x] + colPart[threadIdx.x + kKeys];
                if (colSum != 0.0f && k0 + int(threadIdx.x) < T) atomicAdd(&h.column[k0 + threadIdx.x], colSum);
                if (kPass == PassKind::Stats && a.blockSizeCount > 0) {
                    for (int sft = 16; sft > 0; sft /= 2) colSum += __shfl_xor_sync(0xffffffffu, colSum, sft);
                    if (lane == 0 && colSum != 0.0f)
                        for (int b = 0; b < a.blockSizeCount; ++b) {
                            const long long B = a.blockSizes[b], nb = (T + B - 1) / B;
                            atomicAdd(&h.blocks[b][(q0 / B) * nb + k0 / B], colSum);
                        }
                }
            }
        }
        k0 = kNext;
    }
    flex::cpAsyncWait<0>();

    // Row results: the two lanes of a row combine their halves.
    if constexpr (kPass == PassKind::Lse) {
        const float mo = __shfl_xor_sync(0xffffffffu, m, 1), lo = __shfl_xor_sync(0xffffffffu, l, 1);
        const float mn = fmaxf(m, mo);
        const float lt = (m == -INFINITY ? 0.0f : l * exp2f(m - mn)) + (mo == -INFINITY ? 0.0f : lo * exp2f(mo - mn));
        if (half == 0 && rowIn) h.lse[i] = lt > 0.0f ? (mn + log2f(lt)) * ln2 : -INFINITY;
    } else {
#pragma unroll
        for (int x = 0; x < kRowStatCount; ++x) acc.v[x] += __shfl_xor_sync(0xffffffffu, acc.v[x], 1);
        if (kPass == PassKind::Stats && half == 0 && rowIn)
            for (int x = 0; x < kRowStatCount; ++x) h.rowStats[size_t(x) * T + i] = acc.v[x];
    }
    if constexpr (kPass == PassKind::Stats) {
        // The dense numerator Σ p v, rows padded to 64 (the buffer has Tpad rows).
#pragma unroll
        for (int n = 0; n < D / 16; ++n)
            wmma::store_matrix_sync(h.numerator + size_t(q0 + warp * 16) * D + n * 16, o[n], D, wmma::mem_row_major);
    }
    if constexpr (kPass == PassKind::Masked) {
        __syncthreads();  // K, V and S are free: stage O_mask as floats
        float* sO = reinterpret_cast<float*>(smem + L::o);
#pragma unroll
        for (int n = 0; n < D / 16; ++n)
            wmma::store_matrix_sync(sO + warp * 16 * L::oLd + n * 16, o[n], L::oLd, wmma::mem_row_major);
        __syncwarp();
        float diff = 0.0f, ref = 0.0f;
        if (rowIn) {
            const float denseMass = h.rowStats[size_t(kRowMass) * T + i];
            const float maskMass = acc.v[kRowMass];
            const float* dense = h.numerator + size_t(i) * D;
            if (denseMass > 0.0f)
                for (int c = half; c < D; c += 2) {
                    const float od = dense[c] / denseMass;
                    const float om = maskMass > float(kMinMaskedMass) ? sO[r * L::oLd + c] / maskMass : 0.0f;
                    diff += (om - od) * (om - od);
                    ref += od * od;
                }
        }
        diff += __shfl_xor_sync(0xffffffffu, diff, 1);
        ref += __shfl_xor_sync(0xffffffffu, ref, 1);
        if (half == 0 && rowIn) {
            h.maskMass[i] = acc.v[kRowMass];
            h.maskDiff[i] = diff;
            h.maskRef[i] = ref;
        }
    }
}

template <typename Elem, int D, PassKind kPass>
Status launchPassT(const LayerPassArgs& a, cudaStream_t stream) {
    auto kernel = analysisPassKernel<Elem, D, kPass>;
    constexpr bool kNeedsV = kPass == PassKind::Stats || kPass == PassKind::Masked;
    const size_t shared = PassLayout<D, kNeedsV>::bytes;
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    const dim3 grid(unsigned((a.rowEnd - a.rowBegin + kRows - 1) / kRows), unsigned(a.heads_));
    kernel<<<grid, kThreads, shared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("analysisPassKernel");
    return {};
}

template <typename Elem, int D>
Status launchPassD(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    switch (kind) {
    case PassKind::Lse: return launchPassT<Elem, D, PassKind::Lse>(a, stream);
    case PassKind::Stats: return launchPassT<Elem, D, PassKind::Stats>(a, stream);
    case PassKind::Estimate: return launchPassT<Elem, D, PassKind::Estimate>(a, stream);
    case PassKind::Masked: return launchPassT<Elem, D, PassKind::Masked>(a, stream);
    }
    return {ErrorCode::InvalidArgument, "analysis pass: unknown kind"};
}

template <typename Elem>
Status launchPassE(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 64) return launchPassD<Elem, 64>(kind, a, stream);
    if (a.dim <= 128) return launchPassD<Elem, 128>(kind, a, stream);
    return launchPassD<Elem, 256>(kind, a, stream);
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

struct MapArgs {
    const void* q = nullptr;
    const void* k = nullptr;
    int tokens = 0, dim = 0;
    AnalysisSpec spec;
    const float* lse = nullptr;  ///< indexed by the absolute row
    CellGrid grid;
    double* sums = nullptr;
    float* maxima = nullptr;
    unsigned long long* allowed = nullptr;
};

template <typename Elem, int D>
__global__ void __launch_bounds__(kThreads) mapPoolKernel(const __grid_constant__ MapArgs a) {
    using L = PassLayout<D, false>;
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
                        const float p = exp2f((scoreMods ? score2Of(a.spec, srow[c], i, j) : srow[c] * scale2) - rowLse2);
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
Status launchMapD(const MapArgs& m, float* lse, void* headScratch, bool lseReady, cudaStream_t stream) {
    // Pass 1 over the rectangle's rows (one head, grid.y = 1).
    HeadPassArgs head;
    head.q = m.q, head.k = m.k, head.spec = m.spec, head.lse = lse;
    HeadPassArgs* dHead = static_cast<HeadPassArgs*>(headScratch);
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(dHead, &head, sizeof head, cudaMemcpyHostToDevice, stream));
    LayerPassArgs a;
    a.heads = dHead, a.heads_ = 1, a.tokens = m.tokens, a.dim = m.dim;
    a.rowBegin = m.grid.q0, a.rowEnd = m.grid.q1;
    if (!lseReady) ATTNSCOPE_TRY_STATUS((launchPassT<Elem, D, PassKind::Lse>(a, stream)));
    auto kernel = mapPoolKernel<Elem, D>;
    const size_t shared = PassLayout<D, false>::bytes;
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
Status launchMapE(const MapArgs& m, float* lse, void* headScratch, bool lseReady, cudaStream_t stream) {
    if (m.dim <= 64) return launchMapD<Elem, 64>(m, lse, headScratch, lseReady, stream);
    if (m.dim <= 128) return launchMapD<Elem, 128>(m, lse, headScratch, lseReady, stream);
    return launchMapD<Elem, 256>(m, lse, headScratch, lseReady, stream);
}

__global__ void mapFinalizeKernel(CellGrid g, const double* sums, const float* maxima, const unsigned long long* allowed,
                                  float* out) {
    const long long cells = (long long)g.rows * g.cols;
    const long long hq = g.q1 - g.q0, hk = g.k1 - g.k0;
    for (long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x; c < cells; c += (long long)gridDim.x * blockDim.x) {
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
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const float f = float(x[e]);
        count += isfinite(f) ? 0 : 1;
    }
    for (int s = 16; s > 0; s /= 2) count += __shfl_xor_sync(0xffffffffu, count, s);
    if (threadIdx.x % 32 == 0 && count > 0) atomicAdd(result, count);
}

}  // namespace

Status launchAnalysisPass(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 0 || a.dim > kMaxPassDim)
        return {ErrorCode::Unsupported, "analysis pass: head dim " + std::to_string(a.dim) + ", expected 1.." +
                                            std::to_string(kMaxPassDim)};
    if (a.rowEnd <= a.rowBegin || a.heads_ <= 0) return {};
    return a.elem == ElemType::BF16 ? launchPassE<__nv_bfloat16>(kind, a, stream) : launchPassE<__half>(kind, a, stream);
}

Status launchMapPasses(const void* q, const void* k, ElemType elem, int tokens, int dim, const AnalysisSpec& spec,
                       float* lse, const CellGrid& grid, double* sums, float* maxima, unsigned long long* allowed,
                       void* headScratch, bool lseReady, cudaStream_t stream) {
    if (dim <= 0 || dim > kMaxPassDim)
        return {ErrorCode::Unsupported, "GPU map: head dim " + std::to_string(dim) + ", expected 1.." +
                                            std::to_string(kMaxPassDim)};
    MapArgs m;
    m.q = q, m.k = k, m.tokens = tokens, m.dim = dim, m.spec = spec, m.lse = lse, m.grid = grid;
    m.sums = sums, m.maxima = maxima, m.allowed = allowed;
    return elem == ElemType::BF16 ? launchMapE<__nv_bfloat16>(m, lse, headScratch, lseReady, stream)
                                  : launchMapE<__half>(m, lse, headScratch, lseReady, stream);
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
    toBf16Kernel<<<blocks, kBlock, 0, stream>>>(static_cast<const __half*>(f16), static_cast<__nv_bfloat16*>(bf16), count);
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
