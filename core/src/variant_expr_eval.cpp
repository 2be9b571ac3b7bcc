// The variant language on the CPU: a row evaluator (one query against a run of keys) over the
// program's flat node list. Nodes that read neither k nor s are computed once per row as
// scalars; the rest as arrays over a chunk of keys, one tight loop per operator, so the
// interpretation cost is paid per chunk, not per pair.
#include <algorithm>
#include <vector>

#include "variant_expr_ops.h"

namespace attnscope {
namespace {

using namespace expr_detail;

constexpr int64_t kChunk = 256;  // keys per pass: every array node of a chunk stays in L1/L2
constexpr uint8_t kVarying = kDepKey | kDepScore;

template <ExprOp OP>
void loop(double* d, int64_t n, bool isInt, const double* a, int sa, const double* b, int sb, const double* c, int sc) {
    for (int64_t j = 0; j < n; ++j) d[j] = scalarOp<OP>(isInt, a[j * sa], b[j * sb], c[j * sc]);
}

void dispatch(ExprOp op, double* d, int64_t n, bool isInt, const double* a, int sa, const double* b, int sb,
              const double* c, int sc) {
    withPureOp(op, 0, [&](auto tag) {
        loop<decltype(tag)::value>(d, n, isInt, a, sa, b, sb, c, sc);
        return 0;
    });
}

/// doc[i] / pos[i] with the out-of-range rule: -1 outside [0, T) or without the array.
inline double arrayAt(const int32_t* arr, int64_t tokens, double index) {
    const int64_t i = asInt(index);
    return arr && i >= 0 && i < tokens ? double(arr[i]) : -1.0;
}

/// Per-thread scratch: one scalar per node, one chunk-long array per varying node.
struct Scratch {
    std::vector<double> scalar;
    std::vector<double> arrays;
    std::vector<int> slot;
    std::vector<char> needed;
};

/// Evaluates node `root` for query q and keys [k0, k0 + n) (n <= kChunk). Returns a pointer to
/// the result and its stride (0: uniform over the chunk).
std::pair<const double*, int> evalChunk(const VariantExpr& e, const ExprBinding& at, int root, int64_t q, int64_t k0,
                                        int64_t n, const double* s, Scratch& w) {
    const size_t count = size_t(root) + 1;
    w.scalar.assign(count, 0.0);
    w.slot.assign(count, -1);
    w.needed.assign(count, 0);
    w.needed[size_t(root)] = 1;
    int varying = 0;
    for (int i = root; i >= 0; --i) {
        if (!w.needed[size_t(i)]) continue;
        const ExprNode& nd = e.nodes[size_t(i)];
        for (int x : {nd.a, nd.b, nd.c})
            if (x >= 0) w.needed[size_t(x)] = 1;
        if (nd.deps & kVarying) w.slot[size_t(i)] = varying++;
    }
    if (w.arrays.size() < size_t(varying) * kChunk) w.arrays.resize(size_t(varying) * kChunk);
    static const double kZero = 0.0;
    auto operand = [&](int x) -> std::pair<const double*, int> {
        if (x < 0) return {&kZero, 0};
        if (w.slot[size_t(x)] >= 0) return {w.arrays.data() + size_t(w.slot[size_t(x)]) * kChunk, 1};
        return {&w.scalar[size_t(x)], 0};
    };
    for (int i = 0; i <= root; ++i) {
        if (!w.needed[size_t(i)]) continue;
        const ExprNode& nd = e.nodes[size_t(i)];
        const bool vary = w.slot[size_t(i)] >= 0;
        double* d = vary ? w.arrays.data() + size_t(w.slot[size_t(i)]) * kChunk : &w.scalar[size_t(i)];
        const int64_t len = vary ? n : 1;
        switch (nd.op) {
        case ExprOp::Const: *d = nd.value; break;
        case ExprOp::Batch: *d = at.batch; break;
        case ExprOp::Head: *d = at.head; break;
        case ExprOp::Query: *d = double(q); break;
        case ExprOp::Tokens: *d = double(at.tokens); break;
        case ExprOp::Heads: *d = at.heads; break;
        case ExprOp::Key:
            for (int64_t j = 0; j < n; ++j) d[j] = double(k0 + j);
            break;
        case ExprOp::Score:
            for (int64_t j = 0; j < n; ++j) d[j] = s ? s[j] : 0.0;
            break;
        case ExprOp::Doc:
        case ExprOp::Pos: {
            const int32_t* arr = nd.op == ExprOp::Doc ? at.doc : at.pos;
            auto [a, sa] = operand(nd.a);
            for (int64_t j = 0; j < len; ++j) d[j] = arrayAt(arr, at.tokens, a[j * sa]);
            break;
        }
        case ExprOp::Slope: {
            auto [a, sa] = operand(nd.a);
            for (int64_t j = 0; j < len; ++j) d[j] = slopeOf(a[j * sa], at.heads);
            break;
        }
        default: {
            auto [a, sa] = operand(nd.a);
            auto [b, sb] = operand(nd.b);
            auto [c, sc] = operand(nd.c);
            dispatch(nd.op, d, len, nd.type == ExprType::Int, a, sa, b, sb, c, sc);
            break;
        }
        }
    }
    return operand(root);
}

Scratch& scratch() {
    thread_local Scratch w;
    return w;
}

}  // namespace

void evalMaskRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, uint8_t* out) {
    if (e.mask < 0) {
        std::fill(out, out + n, uint8_t(1));
        return;
    }
    Scratch& w = scratch();
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
        const int64_t len = std::min(kChunk, n - j0);
        auto [r, sr] = evalChunk(e, at, e.mask, q, k0 + j0, len, nullptr, w);
        for (int64_t j = 0; j < len; ++j) out[j0 + j] = r[j * sr] != 0 ? 1 : 0;
    }
}

bool evalMaskPair(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k) {
    uint8_t r = 1;
    evalMaskRow(e, at, q, k, 1, &r);
    return r != 0;
}

void evalScoreRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, double* s) {
    if (e.score < 0) return;
    Scratch& w = scratch();
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
        const int64_t len = std::min(kChunk, n - j0);
        auto [r, sr] = evalChunk(e, at, e.score, q, k0 + j0, len, s + j0, w);
        for (int64_t j = 0; j < len; ++j) s[j0 + j] = sanitizeScore(r[j * sr]);
    }
}

void evalScoreRow(const VariantExpr& e, const ExprBinding& at, int64_t q, int64_t k0, int64_t n, float* s) {
    if (e.score < 0) return;
    double buf[kChunk];
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
        const int64_t len = std::min(kChunk, n - j0);
        for (int64_t j = 0; j < len; ++j) buf[j] = s[j0 + j];
        evalScoreRow(e, at, q, k0 + j0, len, buf);
        // -inf stays -inf (a masked pair); finite values round to float once.
        for (int64_t j = 0; j < len; ++j) s[j0 + j] = static_cast<float>(buf[j]);
    }
}

}  // namespace attnscope
