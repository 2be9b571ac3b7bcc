#pragma once
// The variant language: user-written mask_mod / score_mod expressions (docs/variants.md).
//
//   # StreamingLLM: 4 sink tokens plus a causal window of 1024
//   const SINKS = 4
//   const WINDOW = 1024
//   mask: k <= q && (k < SINKS || q - k < WINDOW)
//
// A program is parsed once into a checked, typed expression DAG (let bindings share nodes) and
// then evaluated on the CPU row by row (the reference attention, maps, recall), classified over
// rectangles by interval arithmetic (block masks, skipped tiles), or turned into CUDA functors
// compiled at run time (variantExprCudaSource, kernels/jit_variant.cpp). It has no loops and
// reads no memory but the per-token arrays doc[i] and pos[i], so it always terminates and
// every operation has a defined result (integer division by zero, out-of-range indices, NaN
// scores: see docs/variants.md, "Defined results").
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/status.h"

namespace attnscope {

enum class ExprType : uint8_t { Bool, Int, Float };

enum class ExprOp : uint8_t {
    Const,  // value
    Batch,
    Head,
    Query,
    Key,
    Score,
    Tokens,
    Heads,  // b h q k s T H
    Doc,
    Pos,  // doc[a], pos[a]
    Neg,
    Not,
    ToFloat,  // -a, !a, float(a)
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
    Min,
    Max,
    Abs,
    Tanh,
    Exp,
    Log,
    Slope,  // slope(h): the ALiBi slope 2^(-8(h+1)/H)
    Where,  // where(a, b, c)
};

/// What a node reads, as bits: the result is uniform over what it does not read.
enum ExprDeps : uint8_t {
    kDepBatch = 1,
    kDepHead = 2,
    kDepQuery = 4,
    kDepKey = 8,
    kDepScore = 16,
    kDepArrays = 32,
};

struct ExprNode {
    ExprOp op = ExprOp::Const;
    ExprType type = ExprType::Int;
    double value = 0;            ///< Const (ints are exact, bools 0/1)
    int a = -1, b = -1, c = -1;  ///< operand nodes (earlier in VariantExpr::nodes)
    int line = 0, col = 0;       ///< where it was written (1-based)
    uint8_t deps = 0;            ///< ExprDeps
};

/// A parsed and checked variant program.
struct VariantExpr {
    std::string origin;           ///< file name, or "expression" for inline text
    std::string source;           ///< the text as given
    std::string canonical;        ///< its statements on one line without comments: the variant's label
    std::vector<ExprNode> nodes;  ///< operands before users
    int mask = -1;                ///< node of the mask (Bool), -1: every pair is allowed
    int score = -1;               ///< node of the score (Float), -1: the score is unchanged
    int documents = 0;            ///< "documents: N": equal parts when the data has no document ids
    std::vector<std::pair<std::string, double>> constants;  ///< declared constants, in order

    bool hasMask() const { return mask >= 0; }
    bool hasScore() const { return score >= 0; }
    uint8_t maskDeps() const { return mask >= 0 ? nodes[size_t(mask)].deps : 0; }
    uint8_t scoreDeps() const { return score >= 0 ? nodes[size_t(score)].deps : 0; }
    /// Whether the score can come out NaN or infinite from finite inputs (exp, log, a division
    /// by something not constant): then the evaluators sanitise it (docs/variants.md).
    bool scoreMayBeNonFinite() const;
};

/// Parses and checks a program. Errors read "ORIGIN:LINE:COL: expected …, found …".
///   auto e = parseVariantExpr("mask: k <= q && q - k < 1024"); if (!e) report(e.message());
Result<std::shared_ptr<const VariantExpr>> parseVariantExpr(const std::string& text,
                                                            const std::string& origin = "expression");

/// Reads and parses a program file (*.attnvar); errors name the file.
Result<std::shared_ptr<const VariantExpr>> loadVariantExpr(const std::string& path);

/// Per-token arrays of a T-token problem: doc[i] (document id) and pos[i] (position within
/// its document).
struct ExprTokens {
    std::vector<int32_t> doc, pos;
};
/// pos from doc: the index since the start of the token's run of equal document ids.
ExprTokens exprTokensFromDocuments(std::vector<int32_t> doc);

/// What an expression is evaluated for: one (batch, head) of a T-token problem with H heads.
struct ExprBinding {
    int64_t tokens = 0;
    int heads = 1;
    int batch = 0;
    int head = 0;
    const int32_t* doc = nullptr;  ///< [tokens] or null (reads give -1)
    const int32_t* pos = nullptr;  ///< [tokens] or null (reads give -1)
};

/// A program bound to one head, with the arrays it reads kept alive: what AttentionSpec carries
/// (MaskSpec::expr) so the CPU engine applies user mask and score exactly like built-in ones.
struct BoundVariantExpr {
    std::shared_ptr<const VariantExpr> expr;
    std::shared_ptr<const ExprTokens> tokens;
    ExprBinding binding;  ///< doc / pos point into `tokens`
};

/// out[j] = mask(q, k0 + j) for j in [0, n) (1 allowed, 0 not). Without a mask: all 1.
void evalMaskRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, uint8_t* out);
/// One pair.
bool evalMaskPair(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k);
/// s[j] = score(s[j], q, k0 + j) in place, sanitised (NaN → −inf, above 1e30 → 1e30). Without a
/// score mod: unchanged. The float version evaluates in double and rounds once.
void evalScoreRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, double* s);
void evalScoreRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, float* s);

/// The mask over the rectangle queries [q0, q1) × keys [k0, k1), by interval arithmetic:
/// False (no pair allowed), True (every pair allowed) or Unknown (evaluate the pairs). Never
/// wrong, sometimes Unknown where an exhaustive check would decide.
enum class ExprTruth { False, True, Unknown };
ExprTruth maskOverRect(const VariantExpr& e, const ExprBinding& at, int64_t q0, int64_t q1, int64_t k0, int64_t k1);

/// CUDA source of the program as FlexAttention functors for the forward kernels (mods.cuh):
/// `struct UserMask` (mask_mod) and `struct UserScore` (score_mod, kIdentity false) with public
/// members `const int* doc; const int* pos; int tokens; int heads;` the host fills in.
std::string variantExprCudaSource(const VariantExpr& e);

/// Short name of an operator or function for messages ("&&", "tanh").
const char* exprOpName(ExprOp op);

}  // namespace attnscope
