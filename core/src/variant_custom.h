#pragma once
// VariantKind::Custom inside variants.cpp: a user program (variant_expr.h) behind the same
// functions as the built-in variants.
#include "attnscope/variant_expr.h"
#include "attnscope/variants.h"

namespace attnscope {

/// "custom:FILE" or "expr:PROGRAM".
bool isCustomVariantToken(const std::string& text);
Result<VariantSpec> parseCustomVariant(const std::string& text);

/// The program bound to head `head` of `heads` in batch `batch` at T tokens, with its doc / pos
/// arrays (only built when the program reads them; cached per document layout).
std::shared_ptr<const BoundVariantExpr> bindCustomVariant(const VariantSpec& v, int64_t T, int head, int heads,
                                                          int batch);

bool customAllows(const VariantSpec& v, int64_t T, int64_t q, int64_t k, int head, int heads, int batch);

/// The block [q0, q1) × [k0, k1) (within T) under a custom mask, for head 0 of 1: interval
/// arithmetic first, then the pairs row by row when it cannot decide.
BlockState customBlockState(const VariantSpec& v, int64_t T, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                            bool distinguishFull);

}  // namespace attnscope
