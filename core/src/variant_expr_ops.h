#pragma once
// The scalar semantics of every operator of the variant language, shared by constant folding
// (the parser), the CPU row evaluator and the interval classifier's point cases. Values travel
// as double: ints are exact 32-bit two's-complement values, bools 0 and 1.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "attnscope/variant_expr.h"

namespace attnscope::expr_detail {

/// Wraps to 32-bit two's complement (the language's int overflow rule, also the GPU's).
inline double wrap32(int64_t x) { return double(int32_t(uint32_t(uint64_t(x)))); }
inline int64_t asInt(double x) { return int64_t(x); }

/// Floor division and modulo (Python's // and %); a zero divisor gives 0.
inline double floorDiv(double a, double b) {
    const int64_t x = asInt(a), y = asInt(b);
    if (y == 0) return 0;
    int64_t q = x / y;
    if (x % y != 0 && ((x < 0) != (y < 0))) --q;
    return wrap32(q);
}
inline double floorMod(double a, double b) {
    const int64_t x = asInt(a), y = asInt(b);
    if (y == 0) return 0;
    int64_t r = x % y;
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return double(r);
}
inline double floatMod(double a, double b) { return a - b * std::floor(a / b); }

/// Largest score the evaluators let through: +inf would give inf − inf in the softmax.
constexpr double kScoreCeiling = 1e30;
inline double sanitizeScore(double s) {
    if (s != s) return -INFINITY;
    return s > kScoreCeiling ? kScoreCeiling : s;
}

/// Result of a unary / binary / ternary operator on scalars. `isInt`: the operands (for Neg,
/// Abs, Add … Mod, Min, Max) are ints, so the result wraps.
template <ExprOp OP>
inline double scalarOp(bool isInt, double a, double b = 0, double c = 0) {
    if constexpr (OP == ExprOp::Neg)
        return isInt ? wrap32(-asInt(a)) : -a;
    else if constexpr (OP == ExprOp::Not)
        return a != 0 ? 0.0 : 1.0;
    else if constexpr (OP == ExprOp::ToFloat)
        return a;
    else if constexpr (OP == ExprOp::Add)
        return isInt ? wrap32(asInt(a) + asInt(b)) : a + b;
    else if constexpr (OP == ExprOp::Sub)
        return isInt ? wrap32(asInt(a) - asInt(b)) : a - b;
    else if constexpr (OP == ExprOp::Mul)
        return isInt ? wrap32(asInt(a) * asInt(b)) : a * b;
    else if constexpr (OP == ExprOp::Div)
        return isInt ? floorDiv(a, b) : a / b;
    else if constexpr (OP == ExprOp::Mod)
        return isInt ? floorMod(a, b) : floatMod(a, b);
    else if constexpr (OP == ExprOp::Lt)
        return a < b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Le)
        return a <= b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Gt)
        return a > b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Ge)
        return a >= b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Eq)
        return a == b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Ne)
        return a != b ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::And)
        return (a != 0 && b != 0) ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Or)
        return (a != 0 || b != 0) ? 1.0 : 0.0;
    else if constexpr (OP == ExprOp::Min)
        return a < b ? a : b;
    else if constexpr (OP == ExprOp::Max)
        return a > b ? a : b;
    else if constexpr (OP == ExprOp::Abs)
        return isInt ? wrap32(a < 0 ? -asInt(a) : asInt(a)) : std::fabs(a);
    else if constexpr (OP == ExprOp::Tanh)
        return std::tanh(a);
    else if constexpr (OP == ExprOp::Exp)
        return std::exp(a);
    else if constexpr (OP == ExprOp::Log)
        return std::log(a);
    else if constexpr (OP == ExprOp::Where)
        return a != 0 ? b : c;
    else
        return 0.0;
}

/// ALiBi slope of head h of `heads` (attention.h alibiSlope, the built-in variant's value).
double slopeOf(double head, int heads);

/// The operators scalarOp covers (everything except leaves, Doc, Pos and Slope).
inline bool isPureOp(ExprOp op) { return op >= ExprOp::Neg && op != ExprOp::Slope; }

/// The one per-operator switch over scalarOp's operators (isPureOp): returns
/// f(std::integral_constant<ExprOp, OP>{}) for `op`, `other` for any other operator. The row
/// evaluator's loops and constant folding (foldOp) dispatch through it.
template <class R, class F>
R withPureOp(ExprOp op, R other, F&& f) {
    switch (op) {
        // One case per operator, laid out by hand:
        // clang-format off
#define ATTNSCOPE_PURE_OP(OP) \
    case ExprOp::OP: return f(std::integral_constant<ExprOp, ExprOp::OP>{});
        ATTNSCOPE_PURE_OP(Neg) ATTNSCOPE_PURE_OP(Not) ATTNSCOPE_PURE_OP(ToFloat) ATTNSCOPE_PURE_OP(Add)
        ATTNSCOPE_PURE_OP(Sub) ATTNSCOPE_PURE_OP(Mul) ATTNSCOPE_PURE_OP(Div) ATTNSCOPE_PURE_OP(Mod)
        ATTNSCOPE_PURE_OP(Lt) ATTNSCOPE_PURE_OP(Le) ATTNSCOPE_PURE_OP(Gt) ATTNSCOPE_PURE_OP(Ge) ATTNSCOPE_PURE_OP(Eq)
        ATTNSCOPE_PURE_OP(Ne) ATTNSCOPE_PURE_OP(And) ATTNSCOPE_PURE_OP(Or) ATTNSCOPE_PURE_OP(Min)
        ATTNSCOPE_PURE_OP(Max) ATTNSCOPE_PURE_OP(Abs) ATTNSCOPE_PURE_OP(Tanh) ATTNSCOPE_PURE_OP(Exp)
        ATTNSCOPE_PURE_OP(Log) ATTNSCOPE_PURE_OP(Where)
#undef ATTNSCOPE_PURE_OP
    default: return other;
        // clang-format on
    }
}

/// Runtime dispatch of scalarOp (constant folding; not for inner loops).
double foldOp(ExprOp op, bool isInt, double a, double b, double c);

}  // namespace attnscope::expr_detail
