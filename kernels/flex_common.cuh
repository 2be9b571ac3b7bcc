#pragma once
// Per-thread pieces both forward kernels share (mma.sync for sm_80+, wgmma for sm_90a). Both keep
// scores and outputs in the same accumulator layout: a warp owns 16 query rows, a thread two of
// them (lane / 4 and lane / 4 + 8), and for every n8 column tile j four values
//   x[4j + 0], x[4j + 1]: row lane / 4,     columns 8j + 2(lane % 4) + {0, 1}
//   x[4j + 2], x[4j + 3]: row lane / 4 + 8, the same columns.
// A row's values are spread over the four lanes of a quad, so row reductions use two shuffles.
#include "device_types.h"
#include "mma.cuh"
#include "mods.cuh"

namespace attnscope::flex {

/// Key of column slot c (0 .. 2·NT) of a thread's m16n8 accumulator tiles: n8 tile c/2, element
/// c%2 of the lane's pair.
__device__ __forceinline__ int fragmentKey(int key0, int lane, int c) {
    return key0 + (c / 2) * 8 + (lane % 4) * 2 + c % 2;
}

/// Calls f(i, q, kv, r, c) for each of the thread's NT·4 accumulator elements: i = 4j + e, its
/// index in the score array; q and kv, its query row and key; r (0, 1) and c (0 .. 2·NT), its row
/// and column slot.
template <int NT, typename F>
__device__ __forceinline__ void forEachElement(int row0, int key0, int lane, F f) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = e / 2, c = 2 * j + e % 2;
            f(4 * j + e, row0 + 8 * r, fragmentKey(key0, lane, c), r, c);
        }
}

/// Sets the scores of the (q, kv) pairs that `allowed(q, kv)` rejects, or whose key lies past T,
/// to -inf.
template <int NT, typename Allowed>
__device__ __forceinline__ void maskWhere(float (&s)[NT * 4], int tokens, int row0, int key0, int lane,
                                          Allowed allowed) {
    forEachElement<NT>(row0, key0, lane, [&](int i, int q, int kv, int, int) {
        if (!(kv < tokens && allowed(q, kv))) s[i] = -INFINITY;
    });
}

/// mask_mod on a tile: any functor, one call per element. ProgramMask has its own overload
/// (mods.cuh) that resolves the program once per tile.
template <int NT, typename Mask>
__device__ __forceinline__ void applyMask(const Mask& mask, float (&s)[NT * 4], int tokens, int b, int h, int row0,
                                          int key0, int lane) {
    maskWhere<NT>(s, tokens, row0, key0, lane, [&](int q, int kv) { return mask(b, h, q, kv); });
}

/// One mask term on a tile, as a bit set (bit 4j + e: element e of n8 tile j allowed). Each kind
/// has its own element loop, with per-row and per-column values (document ids, residues mod the
/// dilation) computed once, so no loop holds a switch or a division.
template <int NT>
__device__ __forceinline__ unsigned long long termTile(const MaskTerm& t, int docTokens, int tokens, int row0, int key0,
                                                       int lane) {
    static_assert(NT * 4 <= 64, "one bit per element");
    unsigned long long bits = 0;
    auto collect = [&](auto allowed) {
        forEachElement<NT>(row0, key0, lane, [&](int i, int q, int kv, int r, int c) {
            if (kv < tokens && allowed(q, kv, r, c)) bits |= 1ull << i;
        });
    };
    // Per-row (r) and per-column (c) values of the thread's 2 rows and 2·NT columns.
    int rowValue[2], colValue[2 * NT];
    auto perRowAndColumn = [&](auto value) {
#pragma unroll
        for (int r = 0; r < 2; ++r) rowValue[r] = value(row0 + 8 * r, -1);
#pragma unroll
        for (int c = 0; c < 2 * NT; ++c) colValue[c] = value(fragmentKey(key0, lane, c), -2);
    };
    switch (t.kind) {
    case kTermFull: collect([](int, int, int, int) { return true; }); break;
    case kTermCausal: collect([](int q, int kv, int, int) { return causalRule(q, kv); }); break;
    case kTermSliding: {
        const int window = t.window;
        collect([window](int q, int kv, int, int) { return slidingRule(q, kv, window); });
        break;
    }
    case kTermPrefix: {
        const int prefix = t.prefix;
        collect([prefix](int q, int kv, int, int) { return prefixRule(q, kv, prefix); });
        break;
    }
    case kTermDocument: {  // ids past T never match (-1 for rows, -2 for columns)
        const int* docs = t.docs;
        perRowAndColumn([&](int i, int past) { return i < docTokens && i < tokens ? docs[i] : past; });
        collect([&](int q, int kv, int r, int c) { return causalRule(q, kv) && rowValue[r] == colValue[c]; });
        break;
    }
    case kTermDilated: {  // (q − kv) % dilation == 0  ⟺  q and kv have the same residue
        const int window = t.window, dilation = t.dilation;
        perRowAndColumn([dilation](int i, int) { return i % dilation; });
        collect([&](int q, int kv, int r, int c) { return slidingRule(q, kv, window) && rowValue[r] == colValue[c]; });
        break;
    }
    case kTermBlockSparse: collect([&t](int q, int kv, int, int) { return blockSparseRule(t, q, kv); }); break;
    default: break;  // unknown kinds allow nothing
    }
    return bits;
}

/// ProgramMask on a tile: each term once per tile (termTile), combined right to left like
/// ProgramMask::operator(), then applied.
template <int NT>
__device__ __forceinline__ void applyMask(const ProgramMask& mask, float (&s)[NT * 4], int tokens, int, int, int row0,
                                          int key0, int lane) {
    const MaskProgram& program = mask.program;
    const int last = program.count - 1;
    unsigned long long allowed = termTile<NT>(program.term[last], program.tokens, tokens, row0, key0, lane);
#pragma unroll 1
    for (int i = last - 1; i >= 0; --i) {
        const unsigned long long a = termTile<NT>(program.term[i], program.tokens, tokens, row0, key0, lane);
        allowed = program.combine[i] == kCombineAnd ? (a & allowed) : (a | allowed);
    }
#pragma unroll
    for (int i = 0; i < NT * 4; ++i)
        if (!((allowed >> i) & 1ull)) s[i] = -INFINITY;
}

/// score_mod, then (partial blocks only) mask_mod, on NT score tiles. With a score_mod the result
/// is in log2 units for exp2; without one the raw Q·K products stay (the softmax folds the scale
/// into its exp2 argument: softmaxScale). `row0` is the thread's first row, `key0` the first key of
/// the tile.
template <int NT, bool PARTIAL, typename Mask, typename Score>
__device__ __forceinline__ void scoreAndMask(float (&s)[NT * 4], const Mask& mask, const Score& score,
                                             const FlexParams& p, int b, int h, int row0, int key0, int lane) {
    if constexpr (!Score::kIdentity) {
        forEachElement<NT>(row0, key0, lane,
                           [&](int i, int q, int kv, int, int) { s[i] = score(s[i] * p.scale, b, h, q, kv) * kLog2e; });
    }
    if constexpr (PARTIAL) applyMask<NT>(mask, s, p.tokens, b, h, row0, key0, lane);
}

/// The factor softmaxRows applies to what scoreAndMask leaves: scale·log2 e for raw products
/// (the host requires scale > 0, so the row max commutes with it), 1 for log2-unit scores.
template <typename Score>
__device__ __forceinline__ float softmaxScale(const FlexParams& p) {
    return Score::kIdentity ? p.scale * kLog2e : 1.0f;
}

/// Online softmax step on the scores x (log2 units after multiplying by `scale`, > 0): updates the
/// running max m (log2 units) and sum of the thread's two rows, turns the scores into unnormalised
/// probabilities P = exp2(scale·x - m) (one FFMA and one ex2 each) and returns in `alpha` the factor
/// exp2(m_old - m_new) by which what was accumulated so far must be rescaled.
template <int NT>
__device__ __forceinline__ void softmaxRows(float (&s)[NT * 4], float (&rowMax)[2], float (&rowSum)[2],
                                            float (&alpha)[2], float scale) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < NT; ++j) mx = fmaxf(mx, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        mx = fmaxf(rowMax[r], mx * scale);
        // A row with nothing allowed yet keeps m = -inf; subtract 0 instead so no inf - inf.
        const float ref = mx == -INFINITY ? 0.0f : mx;
        alpha[r] = fastExp2(rowMax[r] - ref);
        rowMax[r] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < NT; ++j) {
            s[4 * j + 2 * r] = fastExp2(fmaf(s[4 * j + 2 * r], scale, -ref));
            s[4 * j + 2 * r + 1] = fastExp2(fmaf(s[4 * j + 2 * r + 1], scale, -ref));
            sum += s[4 * j + 2 * r] + s[4 * j + 2 * r + 1];
        }
        rowSum[r] = rowSum[r] * alpha[r] + sum;
    }
}

/// Rescales the OT output tiles of the thread's two rows.
template <int OT>
__device__ __forceinline__ void rescaleRows(float (&o)[OT * 4], const float (&alpha)[2]) {
#pragma unroll
    for (int t = 0; t < OT; ++t) {
        o[4 * t + 0] *= alpha[0];
        o[4 * t + 1] *= alpha[0];
        o[4 * t + 2] *= alpha[1];
        o[4 * t + 3] *= alpha[1];
    }
}

/// Both steps at once, for kernels that rescale right away.
template <int NT, int OT>
__device__ __forceinline__ void onlineSoftmax(float (&s)[NT * 4], float (&o)[OT * 4], float (&rowMax)[2],
                                              float (&rowSum)[2], float scale) {
    float alpha[2];
    softmaxRows<NT>(s, rowMax, rowSum, alpha, scale);
    rescaleRows<OT>(o, alpha);
}

/// The A fragment (16 rows × 16 keys) of P·V for keys [16kk, 16kk + 16): two n8 score tiles.
template <typename Elem, int NT>
__device__ __forceinline__ void probabilityFragment(unsigned (&a)[4], const float (&s)[NT * 4], int kk) {
    using Ops = ElemOps<Elem>;
    a[0] = Ops::pack(s[8 * kk + 0], s[8 * kk + 1]);
    a[1] = Ops::pack(s[8 * kk + 2], s[8 * kk + 3]);
    a[2] = Ops::pack(s[8 * kk + 4], s[8 * kk + 5]);
    a[3] = Ops::pack(s[8 * kk + 6], s[8 * kk + 7]);
}

/// Epilogue: O /= l, lse = (m + log2 l)·ln 2; rows past T are skipped; rows with nothing allowed
/// get O = 0, lse = -inf.
template <typename Elem, int D>
__device__ __forceinline__ void storeRows(const FlexParams& p, const float (&o)[D / 2], const float (&rowMax)[2],
                                          const float (&rowSum)[2], int b, int h, int row0, int lane) {
    using Ops = ElemOps<Elem>;
    const long long qOffset = (static_cast<long long>(b) * p.heads + h) * p.tokens * D;
    Elem* gO = static_cast<Elem*>(p.o) + qOffset;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = rowSum[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int q = row0 + r * 8;
        if (q >= p.tokens) continue;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int t = 0; t < D / 8; ++t) {
            const unsigned packed = Ops::pack(o[4 * t + 2 * r] * inv, o[4 * t + 2 * r + 1] * inv);
            *reinterpret_cast<unsigned*>(gO + static_cast<long long>(q) * D + t * 8 + (lane % 4) * 2) = packed;
        }
        if (lane % 4 == 0)
            p.lse[(static_cast<long long>(b) * p.heads + h) * p.tokens + q] =
                l > 0.0f ? (rowMax[r] + __log2f(l)) * kLn2 : -INFINITY;
    }
}

/// The CTA's query block, batch and head (heaviest query blocks, the last ones under causal
/// masks, start first), and its Q head and shared K / V heads (GQA) in global memory.
template <typename Elem, int D>
struct CtaHeads {
    int qBlock, h, b;
    const Elem* q;
    const Elem* k;
    const Elem* v;

    __device__ __forceinline__ explicit CtaHeads(const FlexParams& p)
        : qBlock(gridDim.x - 1 - blockIdx.x), h(blockIdx.y), b(blockIdx.z) {
        const int hk = h / (p.heads / p.kvHeads);
        const long long kvOffset = (static_cast<long long>(b) * p.kvHeads + hk) * p.tokens * D;
        q = static_cast<const Elem*>(p.q) + (static_cast<long long>(b) * p.heads + h) * p.tokens * D;
        k = static_cast<const Elem*>(p.k) + kvOffset;
        v = static_cast<const Elem*>(p.v) + kvOffset;
    }
};

/// The query block's key steps from the BlockMask: partial blocks first (mask_mod evaluated), then
/// full ones; STEPS steps of kMaskBlock / STEPS keys per block.
template <int STEPS>
struct KeySchedule {
    const int* partialIdx;
    const int* fullIdx;
    int nPartial, nFull;

    __device__ __forceinline__ KeySchedule(const BlockMaskView& m, int qBlock)
        : partialIdx(m.kvIdx + static_cast<long long>(qBlock) * m.numKvBlocks),
          fullIdx(m.fullIdx + static_cast<long long>(qBlock) * m.numKvBlocks), nPartial(m.kvNum[qBlock]),
          nFull(m.fullNum[qBlock]) {}
    __device__ __forceinline__ int steps() const { return STEPS * (nPartial + nFull); }
    __device__ __forceinline__ bool partial(int step) const { return step / STEPS < nPartial; }
    __device__ __forceinline__ int key0(int step) const {
        const int i = step / STEPS;
        const int kb = i < nPartial ? partialIdx[i] : fullIdx[i - nPartial];
        return kb * kMaskBlock + (step % STEPS) * (kMaskBlock / STEPS);
    }
};

}  // namespace attnscope::flex
