// The analysis passes with S and P in registers (analysis_tc.h): FlashAttention-2's structure on
// mma.sync m16n8k16. A CTA owns 64 query rows of one head (4 warps of 16 rows, 2 CTAs per SM)
// and sweeps 64-key tiles, K double-buffered through cp.async. Each thread holds its two rows'
// scores in the accumulator layout of flex_common.cuh (row lane/4 and lane/4 + 8, columns
// 8j + 2(lane%4) + {0, 1} of n8 tile j), turns them into log2 p and p in place and accumulates
// its rows' sums in registers for the whole sweep; P is packed to bf16 as the A operand of P·V
// without leaving the registers.
//   Column sums: the two rows added, then a butterfly over the 8 lanes of each column quad
//   (14 shuffles per warp and tile), one shared-memory pass over the 4 warps, one atomic a column.
//   Offset (diagonal) sums: P staged diagonal-major (element (r, c) at column c - r + 64 of row
//   r, the rest of the array zero), so a diagonal is a column: each thread sums 4 adjacent
//   diagonals over 16 rows with 16-byte loads, a shuffle reduction, one atomic a diagonal.
//   Token templates (duplicate / induction / repeated context) are sparse: the host lists the
//   (i, j) pairs they count and a small kernel scores just those (templatePairsKernel); with
//   too many pairs the stats pass compares the ids per element instead. In-document mass is
//   one compare per row for tiles inside one document.
//   Tiles: each CTA finds the key tiles it visits 128 candidates at a time (one per thread,
//   compacted with ballots), so tiles a mask skips cost no serial loop; the tile's classes
//   (fully allowed, below / above the diagonal, fully kept by the candidate mask) pick a
//   per-element path without mask tests.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>

#include "analysis_device.cuh"
#include "analysis_fragments.cuh"
#include "analysis_tc.h"
#include "attnscope/analysis_limits.h"
#include "cuda_check.h"
#include "mma.cuh"

namespace attnscope::gpu {
namespace {

using flex::ElemOps;
using flex::fastExp2;
using frag::frag;
using frag::kNT;
using frag::Rows;
using frag::scoreFragments;
using frag::TileList;
using pass::allows;
using pass::foldSink;
using pass::hasScoreMod;
using pass::kKeys;
using pass::kLog2e;
using pass::kRows;
using pass::kThreads;
using pass::kWarps;
using pass::score2Of;

constexpr int kDLd = 2 * kKeys + 8;  ///< diagonal-major P row stride (columns 1..127 used; 16-byte rows)
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kMaskedLog2 = -1e30f;  ///< log2 p of a pair that does not count: p = 0 and p · log2 p = 0

template <int D, PassKind kPass>
struct FragLayout {
    /// V: two buffers for the masked pass (loaded with K, a tile ahead), one for the stats pass
    /// (loaded after the tile's first barrier, used after its epilogue: the room goes to P).
    static constexpr int kVBuffers = kPass == PassKind::Masked ? 2 : kPass == PassKind::Stats ? 1 : 0;
    static constexpr bool kStaged = kPass == PassKind::Stats || kPass == PassKind::Estimate;
    static constexpr int ld = D + 8;  ///< 16-bit tile row stride: ldmatrix rows 16 bytes apart in the banks
    static constexpr size_t tile = size_t(kKeys) * ld * 2;
    static constexpr size_t q = 0;
    static constexpr size_t k = q + size_t(kRows) * ld * 2;  ///< two K tiles
    static constexpr size_t v = k + 2 * tile;                ///< V tiles (bf16)
    static constexpr size_t p = v + kVBuffers * tile;        ///< float P, diagonal-major [64][kDLd]
    static constexpr size_t colPart = p + (kStaged ? size_t(kRows) * kDLd * 4 : 0);         ///< [warp][64] column sums
    static constexpr size_t keyCtx = colPart + (kStaged ? size_t(kWarps) * kKeys * 4 : 0);  ///< int4 per key
    static constexpr size_t bits =
        keyCtx + (kPass == PassKind::Stats ? size_t(kKeys) * 16 : 0);  ///< 3 × u64; doc flags
    static constexpr size_t list = bits + 4 * 8;                       ///< the tile list and per-warp counts
    static constexpr size_t bytes = list + (kThreads + kWarps) * 4;
};

/// O += P·V with P (probabilities, registers) rounded to bf16 and V (bf16) from shared memory.
template <int D>
__device__ __forceinline__ void accumulatePV(float (&o)[D / 2], const float (&p)[kNT * 4], const __nv_bfloat16* sV,
                                             int lane) {
    using Ops = ElemOps<__nv_bfloat16>;
    constexpr int ld = D + 8;
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
        unsigned a[4];
        a[0] = Ops::pack(p[8 * kk + 0], p[8 * kk + 1]);
        a[1] = Ops::pack(p[8 * kk + 2], p[8 * kk + 3]);
        a[2] = Ops::pack(p[8 * kk + 4], p[8 * kk + 5]);
        a[3] = Ops::pack(p[8 * kk + 6], p[8 * kk + 7]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            unsigned b[4];
            flex::ldmatrixX4Trans(b,
                                  sV + (kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * ld + dp * 16 + (lane / 16) * 8);
            Ops::mma(frag(o, 2 * dp), a, b[0], b[1]);
            Ops::mma(frag(o, 2 * dp + 1), a, b[2], b[3]);
        }
    }
}

/// log2 p of the thread's 32 scores, in place. kGeneric: the spec's mask per element and the score
/// mods; otherwise the tile is fully allowed and there are no score mods (one FFMA each).
template <bool kGeneric>
__device__ __forceinline__ void logProbabilities(float (&s)[kNT * 4], const AnalysisSpec& spec, float scale2,
                                                 const Rows& rows, int k0, int qd, int T) {
#pragma unroll
    for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = e >> 1;
            float& v = s[4 * jt + e];
            if constexpr (kGeneric) {
                const int j = k0 + 8 * jt + 2 * qd + (e & 1);
                const bool ok = rows.live[r] && allows(spec, rows.i[r], j, T);
                v = ok ? score2Of(spec, v, rows.i[r], j) - rows.lse2[r] : kMaskedLog2;
            } else {
                v = fmaf(v, scale2, -rows.lse2[r]);
            }
        }
}

/// Column sums of the warp's 16 rows: the thread's two rows added, then a butterfly over the 8
/// lanes that share lane % 4; the thread ends with columns 8·(lane/4) + 2·(lane%4) + {0, 1}.
__device__ __forceinline__ float2 columnSums(const float (&p)[kNT * 4], int lane) {
    float c16[16];
#pragma unroll
    for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
        for (int e = 0; e < 2; ++e) c16[2 * jt + e] = p[4 * jt + e] + p[4 * jt + 2 + e];
    const bool b2 = lane & 16, b1 = lane & 8, b0 = lane & 4;
    float c8[8], c4[4], c2[2];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const float send = b2 ? c16[k] : c16[k + 8], keep = b2 ? c16[k + 8] : c16[k];
        c8[k] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        const float send = b1 ? c8[k] : c8[k + 4], keep = b1 ? c8[k + 4] : c8[k];
        c4[k] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
    }
#pragma unroll
    for (int k = 0; k < 2; ++k) {
        const float send = b0 ? c4[k] : c4[k + 2], keep = b0 ? c4[k + 2] : c4[k];
        c2[k] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
    }
    return make_float2(c2[0], c2[1]);
}

__device__ __forceinline__ float quadSum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/// Per-key context of the stats pass: ids[j], ids[j - 1], ngram[j - 1], documents[j].
__device__ __forceinline__ int4 keyContext(const LayerPassArgs& a, int j, int T) {
    const bool in = j < T;
    int4 c;
    c.x = in && a.tokenIds ? a.tokenIds[j] : INT_MIN;
    c.y = in && j >= 1 && a.tokenIds ? a.tokenIds[j - 1] : INT_MIN;
    c.z = in && j >= 1 && a.ngram ? a.ngram[j - 1] : -3;
    c.w = in && a.documents ? a.documents[j] : INT_MIN;
    return c;
}

template <typename Elem, int D, PassKind kPass>
__global__ void __launch_bounds__(kThreads, 2) fragmentPassKernel(const __grid_constant__ LayerPassArgs a) {
    using L = FragLayout<D, kPass>;
    constexpr bool kStats = kPass == PassKind::Stats, kEstimate = kPass == PassKind::Estimate;
    constexpr bool kMasked = kPass == PassKind::Masked, kLse = kPass == PassKind::LseFragments;
    constexpr bool kStaged = L::kStaged, kWithV = L::kVBuffers > 0;
    extern __shared__ __align__(128) unsigned char smem[];
    const Elem* sQ = reinterpret_cast<const Elem*>(smem + L::q);
    float* sD = reinterpret_cast<float*>(smem + L::p);
    float* colPart = reinterpret_cast<float*>(smem + L::colPart);
    int4* keyCtx = reinterpret_cast<int4*>(smem + L::keyCtx);
    unsigned long long* sBits = reinterpret_cast<unsigned long long*>(smem + L::bits);
    int* docSame = reinterpret_cast<int*>(smem + L::bits);  // stats: per warp 0/1, the tile's keys in one document

    const HeadPassArgs& h = a.heads[blockIdx.y];
    const AnalysisSpec& spec = h.spec;
    const int T = a.tokens;
    const int rowBegin = int(a.rowBegin), rowEnd = int(a.rowEnd);
    const int split = kEstimate ? max(1, a.keySplit) : 1;
    const int rowTiles = (rowEnd - rowBegin + kRows - 1) / kRows;
    const int rt = int(blockIdx.x) / split, strip = int(blockIdx.x) % split;
    // Causal heads: the last row tiles hold the most keys; start them first.
    const int q0 = rowBegin + (spec.causal ? rowTiles - 1 - rt : rt) * kRows;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
    const int rl0 = warp * 16 + g;  // local rows rl0 and rl0 + 8
    const bool scoreMods = hasScoreMod(spec);
    const float scale2 = spec.scale * kLog2e;

    Rows rows;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        rows.i[r] = q0 + rl0 + 8 * r;
        const bool in = rows.i[r] < rowEnd;
        rows.lse2[r] = 0.0f;
        if constexpr (!kLse) rows.lse2[r] = in ? h.lse[rows.i[r]] * kLog2e : -INFINITY;
        rows.live[r] = in && rows.lse2[r] != -INFINITY;
    }

    // Key tiles [tBegin, tEnd) of this CTA (causal heads end at the diagonal).
    const int kEnd = spec.causal && spec.prefix == 0 ? min(T, q0 + kRows) : T;
    const int keyTiles = (kEnd + kKeys - 1) / kKeys;
    const int perStrip = (keyTiles + split - 1) / split;
    TileList tiles{reinterpret_cast<int*>(smem + L::list), reinterpret_cast<int*>(smem + L::list) + kThreads,
                   strip * perStrip, min(keyTiles, (strip + 1) * perStrip)};
    auto visit = [&](int t) {
        const int k0 = t * kKeys;
        if (pass::tileSkippable(spec, q0, k0)) return false;
        if constexpr (kMasked) return !pass::maskSkipsTile(h, q0, k0, T);
        return true;
    };

    // Per-row accumulators (the thread's partial sums over its columns).
    float acc[2][kRowStatCount];
#pragma unroll
    for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int x = 0; x < kRowStatCount; ++x) acc[r][x] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY};  // lse pass: running max (log2 units); acc[r][0] is the sum
    float o[kWithV ? D / 2 : 2];
#pragma unroll
    for (int x = 0; x < (kWithV ? D / 2 : 2); ++x) o[x] = 0.0f;
    // Token templates per element only when the host passed the ids (too many pairs to list).
    int rowId[2] = {-1, -1}, rowNgram[2] = {-2, -2}, rowDoc[2] = {-1, -1};
    const bool haveIds = a.tokenIds != nullptr, haveNgram = a.ngram != nullptr, haveDocs = a.documents != nullptr;
    if constexpr (kStats) {
#pragma unroll
        for (int r = 0; r < 2; ++r)
            if (rows.i[r] < rowEnd) {
                if (haveIds) rowId[r] = a.tokenIds[rows.i[r]];
                if (haveNgram) rowNgram[r] = a.ngram[rows.i[r]];
                if (haveDocs) rowDoc[r] = a.documents[rows.i[r]];
            }
    }
    const int recentN = int(a.recentTokens);
    if constexpr (kStaged) {
        // The diagonal-major P: what the tiles never write stays zero.
        for (int x = threadIdx.x; x < kRows * kDLd / 4; x += kThreads)
            reinterpret_cast<float4*>(sD)[x] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }

    const uint16_t* gK = static_cast<const uint16_t*>(h.k);
    const uint16_t* gV = static_cast<const uint16_t*>(h.v);
    auto loadK = [&](int t, int buffer) {
        pass::loadTile<D>(reinterpret_cast<uint16_t*>(smem + L::k + buffer * L::tile), gK, t * kKeys, T, a.dim);
    };
    auto loadV = [&](int t, int buffer) {
        pass::loadTile<D>(reinterpret_cast<uint16_t*>(smem + L::v + buffer * L::tile), gV, t * kKeys, T, a.dim);
    };
    pass::loadTile<D>(reinterpret_cast<uint16_t*>(smem + L::q), static_cast<const uint16_t*>(h.q), q0, rowEnd, a.dim);
    int cur = tiles.take(visit);
    if (cur >= 0) {
        loadK(cur, 0);
        if constexpr (kMasked) loadV(cur, 0);
    }
    flex::cpAsyncCommit();
    for (int buffer = 0; cur >= 0; buffer ^= 1) {
        const int nxt = tiles.take(visit);
        if (nxt >= 0) {  // its buffers' readers (the tile before) passed a barrier
            loadK(nxt, buffer ^ 1);
            if constexpr (kMasked) loadV(nxt, buffer ^ 1);
        }
        flex::cpAsyncCommit();
        const int k0 = cur * kKeys;
        if constexpr (kStats) {
            if (threadIdx.x < kKeys && (haveIds || haveNgram || haveDocs)) {
                const int j = k0 + int(threadIdx.x);
                const int4 kc = keyContext(a, j, T);
                keyCtx[threadIdx.x] = kc;
                if (haveDocs) {
                    const int first = a.documents[k0];
                    const bool same = __all_sync(0xffffffffu, j >= T || kc.w == first);
                    if (lane == 0) docSame[warp] = same ? 1 : 0;
                }
            }
        }
        if constexpr (kMasked) {
            if (h.maskKind == kPassMaskVerticalSlash && warp < 3) {
                // Vertical flags of the tile's keys (warp 0) and slash flags of its 127 offsets
                // (warps 1, 2; index x = i - j - (q0 - k0) + 63), as bit sets.
                unsigned long long bits = 0;
#pragma unroll
                for (int half = 0; half < 2; ++half) {
                    bool flag;
                    if (warp == 0) {
                        const int j = k0 + half * 32 + lane;
                        flag = j < T && h.vertical[j];
                    } else {
                        const int x = (warp - 1) * 64 + half * 32 + lane;
                        const long long off = (long long)(q0 - k0) + (x - (kKeys - 1)) + h.origin;
                        flag = x < 2 * kKeys - 1 && off >= 0 && off < h.origin + T && h.slash[off];
                    }
                    bits |= (unsigned long long)__ballot_sync(0xffffffffu, flag) << (32 * half);
                }
                if (lane == 0) sBits[warp] = bits;
            }
        }
        flex::cpAsyncWait<1>();  // this tile's K (and V for the masked pass); the next tile's may be in flight
        __syncthreads();
        if constexpr (kStats) {
            loadV(cur, 0);  // used after the epilogue; its last readers (the tile before) passed the barrier
            flex::cpAsyncCommit();
        }
        const Elem* tK = reinterpret_cast<const Elem*>(smem + L::k + buffer * L::tile);
        float s[kNT * 4];
        scoreFragments<Elem, D>(s, sQ, tK, warp, lane);
        const bool full = pass::tileFull(spec, q0, k0, rowEnd, T);

        if constexpr (kLse) {
            // Online logsumexp per thread over its 16 columns of each row; combined over the quad at the end.
#pragma unroll
            for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int r = e >> 1, j = k0 + 8 * jt + 2 * qd + (e & 1);
                    float& v = s[4 * jt + e];
                    if (full && !scoreMods)
                        v *= scale2;
                    else
                        v = rows.live[r] && allows(spec, rows.i[r], j, T) ? score2Of(spec, v, rows.i[r], j) : -INFINITY;
                }
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                float mx = -INFINITY;
#pragma unroll
                for (int jt = 0; jt < kNT; ++jt) mx = fmaxf(mx, fmaxf(s[4 * jt + 2 * r], s[4 * jt + 2 * r + 1]));
                if (mx == -INFINITY) continue;
                const float mn = fmaxf(m[r], mx);
                float sum = 0.0f;
#pragma unroll
                for (int jt = 0; jt < kNT; ++jt)
                    sum += fastExp2(s[4 * jt + 2 * r] - mn) + fastExp2(s[4 * jt + 2 * r + 1] - mn);
                acc[r][0] = acc[r][0] * fastExp2(m[r] - mn) + sum;  // m = -inf: ex2(-inf) = 0
                m[r] = mn;
            }
        } else {
            if (full && !scoreMods)
                logProbabilities<false>(s, spec, scale2, rows, k0, qd, T);
            else
                logProbabilities<true>(s, spec, scale2, rows, k0, qd, T);

            if constexpr (kMasked) {
                // The candidate mask: tiles it keeps whole need no test per element.
                const int dMax = max(q0 + kRows - 1 - k0, k0 + kKeys - 1 - q0);  // largest |i - j| in the tile
                bool whole = h.maskKind == kPassMaskBlocks;
                if (h.maskKind == kPassMaskWindow || h.maskKind == kPassMaskSinkWindow)
                    whole = dMax < h.maskWindow || (h.maskKind == kPassMaskSinkWindow && k0 + kKeys - 1 < h.maskSinks);
                if (!whole) {
                    if (h.maskKind == kPassMaskVerticalSlash) {
                        const unsigned long long vb = sBits[0] >> (2 * qd);
                        const int base =
                            rl0 - 2 * qd + 6;  // slash index of element (r, jt, e): base + 57 + 8r - 8jt - e
                        const unsigned long long lo = sBits[1], hi = sBits[2];
                        const unsigned long long win = base == 0 ? lo : (lo >> base) | (hi << (64 - base));
                        const unsigned long long win2 = hi >> base;
#pragma unroll
                        for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int r = e >> 1, pos = 57 + 8 * r - 8 * jt - (e & 1);
                                const bool slash = ((pos < 64 ? win >> pos : win2 >> (pos - 64)) & 1ull) != 0;
                                const bool vertical = ((vb >> (8 * jt + (e & 1))) & 1ull) != 0;
                                if (!(slash || vertical)) s[4 * jt + e] = kMaskedLog2;
                            }
                    } else {
                        const long long W = h.maskWindow, sinks = h.maskKind == kPassMaskSinkWindow ? h.maskSinks : 0;
#pragma unroll
                        for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int r = e >> 1, j = k0 + 8 * jt + 2 * qd + (e & 1), d = rows.i[r] - j;
                                if (!(j < sinks || (d < W && -d < W))) s[4 * jt + e] = kMaskedLog2;
                            }
                    }
                }
#pragma unroll
                for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const float p = fastExp2(s[4 * jt + e]);
                        s[4 * jt + e] = p;
                        acc[e >> 1][kRowMass] += p;
                    }
                accumulatePV<D>(o, s, reinterpret_cast<const __nv_bfloat16*>(smem + L::v + buffer * L::tile), lane);
            }

            if constexpr (kStaged) {
                // p in place; per row the tile's mass, Σ p log2 p and Σ p · (column within the lane's pattern).
                float tm[2] = {0.0f, 0.0f}, tc[2] = {0.0f, 0.0f};
#pragma unroll
                for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int r = e >> 1;
                        const float lp = s[4 * jt + e], p = fastExp2(lp);
                        s[4 * jt + e] = p;
                        if constexpr (kStats) {
                            tm[r] += p;
                            acc[r][kRowPlogp] += p * lp;
                            tc[r] += p * float(8 * jt + (e & 1));
                        }
                    }
                if constexpr (kStats) {
                    const bool below = k0 + kKeys - 1 <= q0, above = k0 >= q0 + kRows - 1;
#pragma unroll
                    for (int r = 0; r < 2; ++r) {
                        acc[r][kRowMass] += tm[r];
                        // Σ p |i - j| = ±((i - k0 - 2·qd)·Σp - Σ p·c) where every j is on one side of i.
                        const float di = float(rows.i[r] - k0 - 2 * qd);
                        if (below)
                            acc[r][kRowDistance] += di * tm[r] - tc[r];
                        else if (above)
                            acc[r][kRowDistance] += tc[r] - di * tm[r];
                    }
                    if (!below && !above) {
#pragma unroll
                        for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int r = e >> 1, j = k0 + 8 * jt + 2 * qd + (e & 1);
                                acc[r][kRowDistance] += s[4 * jt + e] * float(abs(rows.i[r] - j));
                            }
                    }
                    if (k0 == 0 && qd == 0) {
                        acc[0][kRowFirst] += s[0];
                        acc[1][kRowFirst] += s[2];
                    }
                    // Near the diagonal: self / previous / next keys and the recent window.
                    const bool diagTile = k0 <= q0 + kRows && k0 + kKeys >= q0 - 1;
                    const bool recentTile = spec.causal ? (k0 + kKeys - 1 > q0 - recentN && k0 <= q0 + kRows - 1)
                                                        : (k0 + kKeys - 1 >= T - recentN);
                    if (diagTile || recentTile) {
#pragma unroll
                        for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                            for (int e = 0; e < 4; ++e) {
                                const int r = e >> 1, i = rows.i[r], j = k0 + 8 * jt + 2 * qd + (e & 1);
                                const float p = s[4 * jt + e];
                                acc[r][kRowSelf] += j == i ? p : 0.0f;
                                acc[r][kRowPrev] += j == i - 1 ? p : 0.0f;
                                acc[r][kRowNext] += j == i + 1 ? p : 0.0f;
                                const bool recent = spec.causal ? (j > i - recentN && j <= i) : (j >= T - recentN);
                                acc[r][kRowRecent] += recent ? p : 0.0f;
                            }
                    }
                    // Token templates per element (the fallback when the host lists no pairs): in
                    // tiles strictly below the diagonal and past key 0, every j has 1 <= j < i.
                    if (haveIds || haveNgram) {
                        const bool plain = k0 + kKeys - 1 < q0 && k0 > 0;
                        const int bos = a.excludeBos ? 1 : 0;
                        const bool exclCur = a.excludeCurrentToken;
#pragma unroll
                        for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                            for (int ee = 0; ee < 2; ++ee) {
                                const int c = 8 * jt + 2 * qd + ee, j = k0 + c;
                                const int4 kc = keyCtx[c];
#pragma unroll
                                for (int r = 0; r < 2; ++r) {
                                    const int i = rows.i[r];
                                    const float p = s[4 * jt + 2 * r + ee];
                                    if (haveIds) {
                                        const bool dup = kc.x == rowId[r] && (plain || (j < i && j >= bos));
                                        const bool ind =
                                            kc.y == rowId[r] && (plain || (j >= 1 && j <= i && !(exclCur && j == i)));
                                        acc[r][kRowDuplicate] += dup ? p : 0.0f;
                                        acc[r][kRowInduction] += ind ? p : 0.0f;
                                    }
                                    if (haveNgram) {
                                        const bool rep = rowNgram[r] >= 0 && kc.z == rowNgram[r] &&
                                                         (plain || (j >= 1 && j - 1 < i && !(exclCur && j == i)));
                                        acc[r][kRowRepeat] += rep ? p : 0.0f;
                                    }
                                }
                            }
                    }
                    // In-document mass: one compare per row where the tile's keys share a document.
                    if (haveDocs) {
                        if (docSame[0] && docSame[1]) {
                            const int tileDoc = keyCtx[0].w;
#pragma unroll
                            for (int r = 0; r < 2; ++r) acc[r][kRowDocument] += rowDoc[r] == tileDoc ? tm[r] : 0.0f;
                        } else {
#pragma unroll
                            for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                                for (int ee = 0; ee < 2; ++ee) {
                                    const int doc = keyCtx[8 * jt + 2 * qd + ee].w;
#pragma unroll
                                    for (int r = 0; r < 2; ++r)
                                        acc[r][kRowDocument] += doc == rowDoc[r] ? s[4 * jt + 2 * r + ee] : 0.0f;
                                }
                        }
                    }
                }
                // Stage P diagonal-major for the offset sums, and the warp's column sums.
#pragma unroll
                for (int jt = 0; jt < kNT; ++jt)
#pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        const int rl = rl0 + 8 * (e >> 1), c = 8 * jt + 2 * qd + (e & 1);
                        sD[rl * kDLd + c - rl + kKeys] = s[4 * jt + e];
                    }
                *reinterpret_cast<float2*>(colPart + warp * kKeys + 8 * g + 2 * qd) = columnSums(s, lane);
            }
        }
        if constexpr (kStats) flex::cpAsyncWait<0>();  // V of this tile
        __syncthreads();  // K (and V) of this tile are free; P and the column sums are visible
        if constexpr (kStats) accumulatePV<D>(o, s, reinterpret_cast<const __nv_bfloat16*>(smem + L::v), lane);
        if constexpr (kStaged) {
            // Columns: the 4 warps' sums, one atomic a column; block mass from the tile's total.
            if (threadIdx.x < kKeys) {
                const int c = threadIdx.x;
                float col = colPart[c] + colPart[kKeys + c] + colPart[2 * kKeys + c] + colPart[3 * kKeys + c];
                if (col != 0.0f && k0 + c < T) atomicAdd(&h.column[k0 + c], col);
                if (kStats && a.blockSizeCount > 0) {
#pragma unroll
                    for (int sft = 16; sft > 0; sft /= 2) col += __shfl_xor_sync(0xffffffffu, col, sft);
                    if (lane == 0 && col != 0.0f)
                        for (int b = 0; b < a.blockSizeCount; ++b) {
                            const long long B = a.blockSizes[b], nb = (T + B - 1) / B;
                            atomicAdd(&h.blocks[b][(q0 / B) * nb + k0 / B], col);
                        }
                }
            }
            // Diagonals: column x of the diagonal-major P holds offset i - j = 64 - x. Thread
            // (warp, lane) sums columns x = 32·warp + 4·(lane % 8) + {0..3} over the 16 rows of
            // quarter lane / 8; the quarters combine with two shuffles and each takes one column.
            {
                const int x = 32 * warp + 4 * (lane & 7), quarter = lane >> 3;
                float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
                for (int rr = 0; rr < kRows / 4; ++rr) {
                    const float4 v = *reinterpret_cast<const float4*>(sD + (quarter * (kRows / 4) + rr) * kDLd + x);
                    sum.x += v.x, sum.y += v.y, sum.z += v.z, sum.w += v.w;
                }
#pragma unroll
                for (int sft = 8; sft <= 16; sft *= 2) {
                    sum.x += __shfl_xor_sync(0xffffffffu, sum.x, sft);
                    sum.y += __shfl_xor_sync(0xffffffffu, sum.y, sft);
                    sum.z += __shfl_xor_sync(0xffffffffu, sum.z, sft);
                    sum.w += __shfl_xor_sync(0xffffffffu, sum.w, sft);
                }
                const float v = quarter == 0 ? sum.x : quarter == 1 ? sum.y : quarter == 2 ? sum.z : sum.w;
                const int dd = kKeys - (x + quarter);  // i - j within the tile
                const long long off = (long long)(q0 - k0) + dd + h.origin;
                if (v != 0.0f && dd < kKeys && off >= 0 && off < h.origin + T) atomicAdd(&h.offset[off], v);
            }
        }
        cur = nxt;
    }
    flex::cpAsyncWait<0>();

    if constexpr (kLse) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            float mr = m[r], l = acc[r][0];
#pragma unroll
            for (int sft = 1; sft <= 2; sft *= 2) {
                const float mo = __shfl_xor_sync(0xffffffffu, mr, sft), lo = __shfl_xor_sync(0xffffffffu, l, sft);
                const float mn = fmaxf(mr, mo);
                if (mn != -INFINITY) l = l * fastExp2(mr - mn) + lo * fastExp2(mo - mn);
                mr = mn;
            }
            if (qd == 0 && rows.i[r] < rowEnd)
                h.lse[rows.i[r]] = foldSink(l > 0.0f ? (mr + log2f(l)) * kLn2 : -INFINITY, h.spec.sinkLogit);
        }
    }
    if constexpr (kStats) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            acc[r][kRowPlogp] *= kLn2;
#pragma unroll
            for (int x = 0; x < kRowStatCount; ++x) acc[r][x] = quadSum(acc[r][x]);
            if (qd == 0 && rows.i[r] < rowEnd)
                for (int x = 0; x < kRowStatCount; ++x) h.rowStats[size_t(x) * T + rows.i[r]] = acc[r][x];
        }
        // The dense numerator Σ p v (the buffer has Tpad rows of D floats).
#pragma unroll
        for (int t = 0; t < D / 8; ++t)
#pragma unroll
            for (int r = 0; r < 2; ++r)
                *reinterpret_cast<float2*>(h.numerator + size_t(rows.i[r]) * D + 8 * t + 2 * qd) =
                    make_float2(o[4 * t + 2 * r], o[4 * t + 2 * r + 1]);
    }
    if constexpr (kMasked) {
        float diff = 0.0f, ref = 0.0f;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const float maskMass = quadSum(acc[r][kRowMass]);
            const int i = rows.i[r];
            if (i >= rowEnd) continue;
            if (qd == 0) h.maskMass[i] = maskMass;
            const float denseMass = h.rowStats[size_t(kRowMass) * T + i];
            if (!(denseMass > 0.0f)) continue;
            const float invDense = 1.0f / denseMass;
            const float invMask = maskMass > float(kMinMaskedMass) ? 1.0f / maskMass : 0.0f;
#pragma unroll
            for (int t = 0; t < D / 8; ++t) {
                const float2 dense = *reinterpret_cast<const float2*>(h.numerator + size_t(i) * D + 8 * t + 2 * qd);
                const float od0 = dense.x * invDense, od1 = dense.y * invDense;
                const float om0 = o[4 * t + 2 * r] * invMask, om1 = o[4 * t + 2 * r + 1] * invMask;
                diff += (om0 - od0) * (om0 - od0) + (om1 - od1) * (om1 - od1);
                ref += od0 * od0 + od1 * od1;
            }
        }
#pragma unroll
        for (int sft = 16; sft > 0; sft /= 2) {
            diff += __shfl_xor_sync(0xffffffffu, diff, sft);
            ref += __shfl_xor_sync(0xffffffffu, ref, sft);
        }
        if (lane == 0 && (diff != 0.0f || ref != 0.0f)) {
            atomicAdd(&h.maskError[0], double(diff));
            atomicAdd(&h.maskError[1], double(ref));
        }
    }
}

/// The token templates' pairs (analysis_tc.h, launchTemplatePairs): p_ij of each listed pair,
/// added to its template's row sum. One thread a pair; Q and K rows are read from global memory
/// (L2-resident: the pairs are sorted by row and the heads of a kv group share K). The dot product
/// is summed in double, so the score is as exact as the inputs allow; L_i still comes from the
/// tensor cores' S, whose rounding does not cancel here as it does in the tile passes: on a sharp
/// head (p near 1) p differs from the CPU's by up to ~1e-4 (self-test worst 1.2e-4, tolerance 2e-4).
template <typename Elem>
__global__ void templatePairsKernel(const __grid_constant__ LayerPassArgs a, const uint2* pairs, long long count) {
    const HeadPassArgs& h = a.heads[blockIdx.y];
    const int T = a.tokens, dim = a.dim;
    const bool scoreMods = hasScoreMod(h.spec);
    for (long long x = blockIdx.x * (long long)blockDim.x + threadIdx.x; x < count;
         x += (long long)gridDim.x * blockDim.x) {
        const uint2 pr = pairs[x];
        const int i = int(pr.x), j = int(pr.y & kPairKeyMask), which = int(pr.y >> kPairTemplateShift);
        const float lse = h.lse[i];
        if (lse == -INFINITY || !allows(h.spec, i, j, T)) continue;
        const Elem* q = static_cast<const Elem*>(h.q) + size_t(i) * dim;
        const Elem* k = static_cast<const Elem*>(h.k) + size_t(j) * dim;
        double sum = 0.0;
        if (dim % 8 == 0) {
            for (int c = 0; c < dim; c += 8) {
                float qf[8], kf[8];
                flex::loadFloats<Elem, 8>(qf, q + c);
                flex::loadFloats<Elem, 8>(kf, k + c);
#pragma unroll
                for (int u = 0; u < 8; ++u) sum = fma(double(qf[u]), double(kf[u]), sum);
            }
        } else {
            for (int c = 0; c < dim; ++c)
                sum = fma(double(ElemOps<Elem>::toFloat(q[c])), double(ElemOps<Elem>::toFloat(k[c])), sum);
        }
        const float dot = float(sum);
        const float x2 = scoreMods ? score2Of(h.spec, dot, i, j) : dot * h.spec.scale * kLog2e;
        atomicAdd(&h.rowStats[size_t(kRowDuplicate + which) * T + i], exp2f(x2 - lse * kLog2e));
    }
}

template <typename Elem, int D, PassKind kPass>
Status launchFragmentT(const LayerPassArgs& a, cudaStream_t stream) {
    auto kernel = fragmentPassKernel<Elem, D, kPass>;
    const size_t shared = FragLayout<D, kPass>::bytes;
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
    const long long rowTiles = (a.rowEnd - a.rowBegin + kRows - 1) / kRows;
    const int split = kPass == PassKind::Estimate ? std::max(1, a.keySplit) : 1;
    kernel<<<dim3(unsigned(rowTiles * split), unsigned(a.heads_)), kThreads, shared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("fragmentPassKernel");
    return {};
}

template <typename Elem, int D>
Status launchFragmentD(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    switch (kind) {
    case PassKind::LseFragments: return launchFragmentT<Elem, D, PassKind::LseFragments>(a, stream);
    case PassKind::Stats: return launchFragmentT<Elem, D, PassKind::Stats>(a, stream);
    case PassKind::Estimate: return launchFragmentT<Elem, D, PassKind::Estimate>(a, stream);
    case PassKind::Masked: return launchFragmentT<Elem, D, PassKind::Masked>(a, stream);
    default: return {ErrorCode::InvalidArgument, "analysis pass: not a register-fragment pass"};
    }
}

template <typename Elem>
Status launchFragmentE(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 64) return launchFragmentD<Elem, 64>(kind, a, stream);
    if (a.dim <= 128) return launchFragmentD<Elem, 128>(kind, a, stream);
    return launchFragmentD<Elem, 256>(kind, a, stream);
}

}  // namespace

Status launchTemplatePairs(const LayerPassArgs& a, const void* pairs, long long count, cudaStream_t stream) {
    if (count <= 0 || a.heads_ <= 0) return {};
    constexpr int kBlock = 256;
    const unsigned blocks = unsigned(std::min<long long>((count + kBlock - 1) / kBlock, 4096));
    const dim3 grid(blocks, unsigned(a.heads_));
    if (a.elem == ElemType::BF16)
        templatePairsKernel<__nv_bfloat16><<<grid, kBlock, 0, stream>>>(a, static_cast<const uint2*>(pairs), count);
    else
        templatePairsKernel<__half><<<grid, kBlock, 0, stream>>>(a, static_cast<const uint2*>(pairs), count);
    ATTNSCOPE_CUDA_TRY_LAUNCH("templatePairsKernel");
    return {};
}

Status launchMmaPass(PassKind kind, const LayerPassArgs& a, cudaStream_t stream) {
    if (a.dim <= 0 || a.dim > kMaxPassDim)
        return {ErrorCode::Unsupported,
                "analysis pass: head dim " + std::to_string(a.dim) + ", expected 1.." + std::to_string(kMaxPassDim)};
    if (a.rowEnd <= a.rowBegin || a.heads_ <= 0) return {};
    return a.elem == ElemType::BF16 ? launchFragmentE<__nv_bfloat16>(kind, a, stream)
                                    : launchFragmentE<__half>(kind, a, stream);
}

}  // namespace attnscope::gpu
