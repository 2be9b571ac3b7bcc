// The variant language over a rectangle of (q, k) pairs: interval arithmetic on the program's
// nodes decides whether a mask is false everywhere, true everywhere or unknown there. Every
// rule over-approximates (a result interval holds every value the pairs can produce, and `nan`
// says NaN is possible), so False and True are never wrong. q − k is exact because the two
// intervals are independent and the difference of intervals is the interval of differences.
#include <algorithm>
#include <climits>
#include <vector>

#include "variant_expr_ops.h"

namespace attnscope {
namespace {

using namespace expr_detail;

struct Interval {
    double lo = 0, hi = 0;
    bool nan = false;
};

constexpr double kIntMin = double(INT32_MIN), kIntMax = double(INT32_MAX);
constexpr int64_t kScanLimit = 4096;  // array spans longer than this are not scanned
const Interval kIntAll{kIntMin, kIntMax, false};
const Interval kFloatAll{-INFINITY, INFINITY, true};
const Interval kBoolUnknown{0, 1, false};

Interval point(double v) { return {v, v, v != v}; }

/// An int result: exact if it cannot leave the 32-bit range (no wrap), else everything.
Interval intResult(double lo, double hi) {
    if (!(lo >= kIntMin && hi <= kIntMax)) return kIntAll;
    return {lo, hi, false};
}

Interval hull(std::initializer_list<double> v, bool nan) {
    Interval r{INFINITY, -INFINITY, nan};
    for (double x : v) {
        if (x != x) {
            r.nan = true;
            continue;
        }
        r.lo = std::min(r.lo, x);
        r.hi = std::max(r.hi, x);
    }
    if (r.lo > r.hi) return kFloatAll;
    return r;
}

Interval arrayRange(const int32_t* arr, int64_t tokens, const Interval& index) {
    if (index.hi < 0 || index.lo >= double(tokens) || !arr) return point(-1);
    const int64_t lo = std::max<int64_t>(0, int64_t(index.lo)), hi = std::min<int64_t>(tokens - 1, int64_t(index.hi));
    if (hi - lo >= kScanLimit) return kIntAll;
    Interval r{INFINITY, -INFINITY, false};
    for (int64_t i = lo; i <= hi; ++i) {
        r.lo = std::min(r.lo, double(arr[i]));
        r.hi = std::max(r.hi, double(arr[i]));
    }
    if (index.lo < 0 || index.hi >= double(tokens)) r.lo = std::min(r.lo, -1.0), r.hi = std::max(r.hi, -1.0);
    return r;
}

/// Tri-state comparison: [1,1] certainly true, [0,0] certainly false, else [0,1].
Interval truth(bool surelyTrue, bool surelyFalse) {
    if (surelyTrue) return {1, 1, false};
    if (surelyFalse) return {0, 0, false};
    return kBoolUnknown;
}

Interval compare(ExprOp op, const Interval& a, const Interval& b) {
    const bool nan = a.nan || b.nan;
    Interval r = kBoolUnknown;
    switch (op) {
    case ExprOp::Lt: r = truth(a.hi < b.lo, a.lo >= b.hi); break;
    case ExprOp::Le: r = truth(a.hi <= b.lo, a.lo > b.hi); break;
    case ExprOp::Gt: r = truth(a.lo > b.hi, a.hi <= b.lo); break;
    case ExprOp::Ge: r = truth(a.lo >= b.hi, a.hi < b.lo); break;
    case ExprOp::Eq: r = truth(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo, a.hi < b.lo || b.hi < a.lo); break;
    case ExprOp::Ne: r = truth(a.hi < b.lo || b.hi < a.lo, a.lo == a.hi && b.lo == b.hi && a.lo == b.lo); break;
    default: break;
    }
    // NaN makes every comparison false except !=, which it makes true.
    if (nan) {
        if (op == ExprOp::Ne)
            r.hi = 1;
        else
            r.lo = 0;
    }
    return r;
}

Interval divide(bool isInt, const Interval& a, const Interval& b) {
    if (isInt) {
        if (b.lo <= 0 && b.hi >= 0) return kIntAll;  // x / 0 = 0 and the quotient's range is wide
        // Floor division is monotone in a for a fixed b and in b on one side of 0: the corners.
        const double c[] = {floorDiv(a.lo, b.lo), floorDiv(a.lo, b.hi), floorDiv(a.hi, b.lo), floorDiv(a.hi, b.hi)};
        if (a.lo == kIntMin && b.lo <= -1 && b.hi >= -1) return kIntAll;  // INT_MIN / -1 wraps
        return {*std::min_element(c, c + 4), *std::max_element(c, c + 4), false};
    }
    if (b.lo <= 0 && b.hi >= 0) return kFloatAll;
    return hull({a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi}, a.nan || b.nan);
}

Interval modulo(bool isInt, const Interval& a, const Interval& b) {
    if (!isInt) return kFloatAll;
    if (b.lo == b.hi && b.lo != 0) {
        const double d = b.lo;
        if (floorDiv(a.lo, d) == floorDiv(a.hi, d) && !(a.lo == kIntMin && d == -1))
            return {floorMod(a.lo, d), floorMod(a.hi, d), false};
        return d > 0 ? Interval{0, d - 1, false} : Interval{d + 1, 0, false};
    }
    if (b.lo > 0) return {0, b.hi - 1, false};
    if (b.hi < 0) return {b.lo + 1, 0, false};
    return intResult(std::min({b.lo + 1, 0.0}), std::max({b.hi - 1, 0.0}));  // includes x % 0 = 0
}

Interval multiply(bool isInt, const Interval& a, const Interval& b) {
    const Interval h = hull({a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi}, a.nan || b.nan);
    return isInt ? intResult(h.lo, h.hi) : h;
}

Interval monotone(double (*f)(double), const Interval& a) { return hull({f(a.lo), f(a.hi)}, a.nan); }

}  // namespace

ExprTruth maskOverRect(const VariantExpr& e, const ExprBinding& at, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    if (e.mask < 0) return ExprTruth::True;
    if (q0 >= q1 || k0 >= k1) return ExprTruth::False;
    std::vector<Interval> v(size_t(e.mask) + 1);
    std::vector<char> needed(size_t(e.mask) + 1, 0);
    needed[size_t(e.mask)] = 1;
    for (int i = e.mask; i >= 0; --i)
        if (needed[size_t(i)])
            for (int x : {e.nodes[size_t(i)].a, e.nodes[size_t(i)].b, e.nodes[size_t(i)].c})
                if (x >= 0) needed[size_t(x)] = 1;
    for (int i = 0; i <= e.mask; ++i) {
        if (!needed[size_t(i)]) continue;
        const ExprNode& n = e.nodes[size_t(i)];
        const Interval A = n.a >= 0 ? v[size_t(n.a)] : Interval{}, B = n.b >= 0 ? v[size_t(n.b)] : Interval{},
                       C = n.c >= 0 ? v[size_t(n.c)] : Interval{};
        const bool isInt = n.type == ExprType::Int;
        Interval& r = v[size_t(i)];
        switch (n.op) {
        case ExprOp::Const: r = point(n.value); break;
        case ExprOp::Batch: r = point(at.batch); break;
        case ExprOp::Head: r = point(at.head); break;
        case ExprOp::Query: r = {double(q0), double(q1 - 1), false}; break;
        case ExprOp::Key: r = {double(k0), double(k1 - 1), false}; break;
        case ExprOp::Score: r = kFloatAll; break;
        case ExprOp::Tokens: r = point(double(at.tokens)); break;
        case ExprOp::Heads: r = point(at.heads); break;
        case ExprOp::Doc: r = arrayRange(at.doc, at.tokens, A); break;
        case ExprOp::Pos: r = arrayRange(at.pos, at.tokens, A); break;
        case ExprOp::Neg: r = isInt ? intResult(-A.hi, -A.lo) : Interval{-A.hi, -A.lo, A.nan}; break;
        case ExprOp::Not: r = {1 - A.hi, 1 - A.lo, false}; break;
        case ExprOp::ToFloat: r = A; break;
        case ExprOp::Add:
            r = isInt ? intResult(A.lo + B.lo, A.hi + B.hi) : hull({A.lo + B.lo, A.hi + B.hi}, A.nan || B.nan);
            break;
        case ExprOp::Sub:
            r = isInt ? intResult(A.lo - B.hi, A.hi - B.lo) : hull({A.lo - B.hi, A.hi - B.lo}, A.nan || B.nan);
            break;
        case ExprOp::Mul: r = multiply(isInt, A, B); break;
        case ExprOp::Div: r = divide(isInt, A, B); break;
        case ExprOp::Mod: r = modulo(isInt, A, B); break;
        case ExprOp::Lt:
        case ExprOp::Le:
        case ExprOp::Gt:
        case ExprOp::Ge:
        case ExprOp::Eq:
        case ExprOp::Ne: r = compare(n.op, A, B); break;
        case ExprOp::And: r = {std::min(A.lo, B.lo), std::min(A.hi, B.hi), false}; break;
        case ExprOp::Or: r = {std::max(A.lo, B.lo), std::max(A.hi, B.hi), false}; break;
        case ExprOp::Min: r = {std::min(A.lo, B.lo), std::min(A.hi, B.hi), A.nan || B.nan}; break;
        case ExprOp::Max: r = {std::max(A.lo, B.lo), std::max(A.hi, B.hi), A.nan || B.nan}; break;
        case ExprOp::Abs:
            if (A.lo >= 0)
                r = A;
            else if (A.hi <= 0)
                r = isInt ? intResult(-A.hi, -A.lo) : Interval{-A.hi, -A.lo, A.nan};
            else
                r = isInt ? intResult(0, std::max(-A.lo, A.hi)) : Interval{0, std::max(-A.lo, A.hi), A.nan};
            break;
        case ExprOp::Tanh: r = monotone([](double x) { return std::tanh(x); }, A); break;
        case ExprOp::Exp: r = monotone([](double x) { return std::exp(x); }, A); break;
        case ExprOp::Log:
            r = A.hi <= 0 ? Interval{-INFINITY, -INFINITY, A.lo < 0 || A.nan}
                          : Interval{A.lo > 0 ? std::log(A.lo) : -INFINITY, std::log(A.hi), A.nan || A.lo < 0};
            break;
        case ExprOp::Slope: r = hull({slopeOf(A.hi, at.heads), slopeOf(A.lo, at.heads)}, false); break;
        case ExprOp::Where:
            if (A.lo == 1)
                r = B;
            else if (A.hi == 0)
                r = C;
            else
                r = {std::min(B.lo, C.lo), std::max(B.hi, C.hi), B.nan || C.nan};
            break;
        }
    }
    const Interval& m = v[size_t(e.mask)];
    if (m.lo == 1) return ExprTruth::True;
    if (m.hi == 0) return ExprTruth::False;
    return ExprTruth::Unknown;
}

}  // namespace attnscope
