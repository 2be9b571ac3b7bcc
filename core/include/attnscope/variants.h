#pragma once
// Attention variants: what the profiler compares and the GPU kernels execute.
// A variant is a mask_mod + score_mod (+ a block mask built from the mask), or one of the two
// non-softmax algorithms (chunked linear attention, split-KV decode). The same VariantSpec maps
// to the CPU reference (AttentionSpec) so every GPU result can be checked and every variant's
// accuracy measured on a trace's own Q/K/V.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/status.h"

namespace attnscope {

enum class VariantKind {
    Full,  ///< no mask
    Causal,
    Sliding,          ///< causal, q - k < window
    PrefixLM,         ///< k < prefix, or causal
    Document,         ///< causal within jagged documents
    DilatedSliding,   ///< causal, q - k < window·dilation and (q - k) % dilation == 0
    Alibi,            ///< causal + ALiBi score_mod
    Softcap,          ///< causal + tanh softcap score_mod (tanh.approx on the GPU)
    RelativeBias,     ///< causal + s + bias·(q - k)
    BlockSparse,      ///< causal ∧ a block list (top-k / gamma coverage / vertical-slash from a trace)
    LinearAttention,  ///< chunked causal linear attention (Lightning-2 style), optional decay
    Decode,           ///< one query against the whole KV, split-KV (flash-decoding style)
    Custom,           ///< a user program (variant_expr.h): its mask and score expressions
};
const char* variantKindName(VariantKind k);

/// How to combine the base mask with `VariantSpec::other`'s mask (compositions).
enum class MaskCombine { None, And, Or };

/// Who computes a variant: attnscope's own kernels, or a vendor library's fused attention with
/// the same mask and score mod ("cudnn:causal" is cuDNN's SDPA with causal's mask; the CPU
/// reference and the accuracy check use the same mask as "causal").
enum class VariantImpl { Builtin, Cudnn };

struct VariantExpr;

struct VariantSpec {
    VariantKind kind = VariantKind::Causal;
    std::string label;  ///< display label, e.g. "sliding:1024"
    int64_t window = 1024;
    int64_t dilation = 2;
    int64_t prefix = 1024;
    int documents = 8;                 ///< number of documents (boundaries from documentIds or even split)
    std::vector<int32_t> documentIds;  ///< optional explicit ids per token
    float softcap = 30.0f;
    float bias = 0.01f;  ///< relative bias slope
    float decay = 0.0f;  ///< linear attention decay λ (0 = none): state ← exp(-λ)·state + kᵀv
    int64_t blockSize = 128;
    std::shared_ptr<const std::vector<uint8_t>> blocks;  ///< BlockSparse: [ceil(T/128)²] kept flags
    std::string blockSource;                             ///< "topk:8", "gamma:0.9", "vslash" (derived from the trace)
    /// Optional composition: base mask AND/OR another variant's mask (score mods are not combined).
    MaskCombine combine = MaskCombine::None;
    std::shared_ptr<const VariantSpec> other;
    /// Custom: the parsed program (doc[i] reads documentIds, else `documents` equal parts).
    std::shared_ptr<const VariantExpr> expr;
    VariantImpl impl = VariantImpl::Builtin;  ///< Cudnn: the "cudnn:" prefix (parseVariant)
};

/// Parses a CLI token: full, causal, sliding:W, prefix:P, document:N, dilated:W:D, alibi,
/// softcap:C, relbias:B, topk:K, gamma:G, vslash, linear[:decay], decode, and compositions
/// "A&B" / "A|B" of mask variants (right-nested: "A&B|C" = A & (B|C); the score mod is the
/// first one along the chain). Block-list variants (topk, gamma, vslash) need VariantSpec::blocks: the profiler derives
/// them from the data's block mass before running (runProfile, profiler.h).
/// "cudnn:V" runs V on cuDNN's fused SDPA (V one of vendorVariantTokens(); no compositions).
/// User programs (docs/variants.md): "custom:FILE" reads a program file, "expr:PROGRAM" takes it
/// inline (statements separated by ';'), e.g. "expr:mask: k <= q && q - k < 1024"; the whole
/// token is the program (no composition), and the label is its statements on one line.
Result<VariantSpec> parseVariant(const std::string& text);

/// Splits a comma-separated variant list, keeping commas inside brackets ("expr:mask: max(q, k)
/// < 9,causal" is two variants). Empty items are dropped.
std::vector<std::string> splitVariantList(const std::string& text);

/// The "cudnn:" tokens: the masks and score mods cuDNN's SDPA graph expresses (full, causal,
/// sliding:W, alibi, softcap:C, relbias:B), for help texts and error messages.
const char* vendorVariantTokens();

/// Why a variant cannot run on a backend without a GPU: non-empty for vendor variants (cuDNN's
/// kernel runs only on the GPU; the CPU backend's row carries this text).
std::string variantNeedsGpu(const VariantSpec& v);

/// The CPU reference spec of a softmax variant at sequence length T for head h of H
/// (scale = 1/sqrt(d) unless given). Errors for LinearAttention and Decode (not softmax maps).
Result<AttentionSpec> referenceSpec(const VariantSpec& v, int64_t T, int head, int heads, float scale);

/// Whether pair (q, k) is computed by the variant (the mask_mod, evaluated on the CPU). Custom
/// programs may read the head and batch (h, H, b); built-in masks ignore them.
bool variantAllows(const VariantSpec& v, int64_t T, int64_t q, int64_t k, int head = 0, int heads = 1, int batch = 0);

/// How a (query block, key block) tile relates to the mask: no pair allowed, all pairs allowed
/// (no mask_mod call needed), or some (FlexAttention's partial blocks).
enum class BlockState { Empty, Partial, Full };

/// Classifies one block of the T×T map (keys/queries beyond T do not count). With
/// distinguishFull = false, Full is reported as Partial (cheaper: existence only).
BlockState variantBlockState(const VariantSpec& v, int64_t T, int64_t qBlock, int64_t kBlock, int64_t blockSize,
                             bool distinguishFull = true);

/// The same for any rectangle [q0, q1) × [k0, k1) of the T×T map (clipped to it).
BlockState variantRectState(const VariantSpec& v, int64_t T, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                            bool distinguishFull = true);

/// Document id of every token (explicit documentIds, else `documents` equal contiguous parts).
std::vector<int32_t> variantDocumentIds(const VariantSpec& v, int64_t T);

/// Fraction of the T×T blocks (block 128) the variant computes (1.0 for full).
double blockDensity(const VariantSpec& v, int64_t T);

/// CPU reference of chunked causal linear attention: O_i = Σ_{j≤i} exp(-λ(i-j)) (φ(q_i)·φ(k_j)) v_j
/// with φ = identity (the Lightning-Attention formulation, no normalisation).
Result<MatrixRM> linearAttentionReference(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, float decay);

/// Shape of a batched check problem: q [B, H, Tq, D] (Tq = 1 for Decode, else T), k/v [B, Hkv, T, D].
struct VariantProblem {
    int batch = 1, heads = 1, kvHeads = 1;
    int64_t tokens = 0;
    int headDim = 64;
    float scale = 0;  ///< 0 = 1/sqrt(headDim)
};

/// Float64 brute force of any variant (mask from variantAllows, the chain's first score mod,
/// decode = the last position against all keys, linear via linearAttentionReference). For checks:
/// O(T²·d) per head. Rows with nothing allowed get O = 0 and lse = -inf; linear has no lse.
struct VariantReference {
    std::vector<double> out;  ///< [B, H, Tq, D]
    std::vector<double> lse;  ///< [B, H, Tq] (empty for linear attention)
};
Result<VariantReference> variantReferenceAttention(const VariantSpec& v, const VariantProblem& p,
                                                   const std::vector<float>& q, const std::vector<float>& k,
                                                   const std::vector<float>& vv);

}  // namespace attnscope
