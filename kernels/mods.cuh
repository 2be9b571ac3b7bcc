#pragma once
// Built-in mask_mod / score_mod device functors. A mask_mod is any type with
//   __device__ bool operator()(int b, int h, int q, int kv) const
// and a score_mod any type with
//   __device__ float operator()(float score, int b, int h, int q, int kv) const
// plus `static constexpr bool kIdentity` (true lets the kernel fold the scale into exp2) and
//   __device__ ScoreMod bind(int b, int h) const
// which the kernel calls once per CTA, so per-head constants (an ALiBi slope) leave the loop.
// Masks are evaluated only for keys < T; queries may lie beyond T in the last block, so mods
// that index per-token arrays must guard q themselves (MaskProgram::tokens does).
#include "device_types.h"
#include "mma.cuh"

namespace attnscope::flex {

// The built-in mask kinds' rules, shared by the functors below (one pair at a time) and by
// termTile (flex_common.cuh: a whole tile, with per-row and per-column values hoisted).
__device__ __forceinline__ bool causalRule(int q, int kv) { return kv <= q; }
__device__ __forceinline__ bool slidingRule(int q, int kv, int window) { return kv <= q && q - kv < window; }
__device__ __forceinline__ bool prefixRule(int q, int kv, int prefix) { return kv < prefix || kv <= q; }
__device__ __forceinline__ bool blockSparseRule(const MaskTerm& t, int q, int kv) {
    const int qb = q / t.blockSize;
    return kv <= q && qb < t.blockCols && t.blocks[qb * t.blockCols + kv / t.blockSize] != 0;
}

struct FullMask {
    __device__ __forceinline__ bool operator()(int, int, int, int) const { return true; }
};

struct CausalMask {
    __device__ __forceinline__ bool operator()(int, int, int q, int kv) const { return causalRule(q, kv); }
};

/// Evaluates a MaskProgram (compositions of the built-in masks) at run time.
struct ProgramMask {
    MaskProgram program;

    __device__ __forceinline__ bool term(const MaskTerm& t, int q, int kv) const {
        switch (t.kind) {
        case kTermFull: return true;
        case kTermCausal: return causalRule(q, kv);
        case kTermSliding: return slidingRule(q, kv, t.window);
        case kTermPrefix: return prefixRule(q, kv, t.prefix);
        case kTermDocument: return causalRule(q, kv) && q < program.tokens && t.docs[q] == t.docs[kv];
        case kTermDilated: return slidingRule(q, kv, t.window) && (q - kv) % t.dilation == 0;
        case kTermBlockSparse: return blockSparseRule(t, q, kv);
        default: return false;
        }
    }
    __device__ __forceinline__ bool operator()(int, int, int q, int kv) const {
        // Unrolled over every slot, so each term is addressed statically (a dynamic index would
        // copy the program to local memory, which the kernels' large shared-memory carve-out
        // leaves to L2).
        bool r = false;
#pragma unroll
        for (int i = kMaxMaskTerms - 1; i >= 0; --i) {
            if (i >= program.count) continue;
            const bool a = term(program.term[i], q, kv);
            r = i == program.count - 1 ? a : (program.combine[i] == kCombineAnd ? (a && r) : (a || r));
        }
        return r;
    }
};

/// Whether a mask functor is the run-time program (large) or a small built-in one.
template <typename Mask>
struct MaskTraits {
    static constexpr bool kProgram = false;
};
template <>
struct MaskTraits<ProgramMask> {
    static constexpr bool kProgram = true;
};

struct IdentityScore {
    static constexpr bool kIdentity = true;
    __device__ __forceinline__ IdentityScore bind(int, int) const { return *this; }
    __device__ __forceinline__ float operator()(float s, int, int, int, int) const { return s; }
};

/// Exponent span of the standard ALiBi slopes 2^(-span·(h+1)/H).
constexpr float kAlibiSpan = 8.0f;

/// Softcap (tanh.approx), ALiBi or relative bias, chosen at run time. bind() folds the kind into
/// two per-head constants, so the per-element code is one (uniform) softcap test and one FMA:
///   softcap:  c·tanh(s/c)        ALiBi: s + slope·(kv − q)        relative bias: s + bias·(q − kv)
struct ProgramScore {
    static constexpr bool kIdentity = false;
    ScoreProgram program;
    float distance = 0.0f;    ///< coefficient of (kv − q): the ALiBi slope of the bound head, or −bias
    float invSoftcap = 0.0f;  ///< 1/c (0: no softcap), so the loop multiplies instead of dividing

    __device__ __forceinline__ ProgramScore bind(int, int h) const {
        ProgramScore bound = *this;
        bound.distance = program.kind == kScoreAlibi          ? exp2f(-kAlibiSpan * float(h + 1) / float(program.heads))
                         : program.kind == kScoreRelativeBias ? -program.bias
                                                              : 0.0f;
        bound.invSoftcap = program.kind == kScoreSoftcap && program.softcap > 0.0f ? 1.0f / program.softcap : 0.0f;
        return bound;
    }
    __device__ __forceinline__ float operator()(float s, int, int, int q, int kv) const {
        if (invSoftcap != 0.0f) s = program.softcap * fastTanh(s * invSoftcap);
        return fmaf(distance, float(kv - q), s);
    }
};

}  // namespace attnscope::flex
