// Float64 brute-force attention of a variant (checks only: O(T²·d) per head).
#include <cmath>
#include <limits>

#include "attnscope/variants.h"
#include "variant_custom.h"

namespace attnscope {
namespace {

/// The score mod the device applies: the first one along the composition chain.
const VariantSpec* scoreNode(const VariantSpec& v) {
    for (const VariantSpec* n = &v; n; n = n->combine == MaskCombine::None ? nullptr : n->other.get())
        if (n->kind == VariantKind::Alibi || n->kind == VariantKind::Softcap || n->kind == VariantKind::RelativeBias)
            return n;
    return nullptr;
}

double applyScore(const VariantSpec* mod, double s, int h, int heads, int64_t q, int64_t k) {
    if (!mod) return s;
    switch (mod->kind) {
    case VariantKind::Softcap: return mod->softcap * std::tanh(s / mod->softcap);
    case VariantKind::Alibi: return s + double(alibiSlope(h, heads)) * double(k - q);
    case VariantKind::RelativeBias: return s + double(mod->bias) * double(q - k);
    default: return s;
    }
}

VariantReference softmaxReference(const VariantSpec& v, int batch, int heads, int kvHeads, int64_t T, int D,
                                  float scale, const std::vector<float>& q, const std::vector<float>& k,
                                  const std::vector<float>& vv, bool decode) {
    const int64_t tq = decode ? 1 : T;
    const VariantSpec* mod = scoreNode(v);
    VariantReference r;
    r.out.assign(size_t(batch) * heads * tq * D, 0.0);
    r.lse.assign(size_t(batch) * heads * tq, -std::numeric_limits<double>::infinity());
    std::vector<double> s(static_cast<size_t>(T));
    std::vector<char> allowed(static_cast<size_t>(T));
    for (int b = 0; b < batch; ++b)
        for (int h = 0; h < heads; ++h) {
            const int hk = h / (heads / kvHeads);
            const float* kh = k.data() + (size_t(b) * kvHeads + hk) * T * D;
            const float* vh = vv.data() + (size_t(b) * kvHeads + hk) * T * D;
            const auto custom = v.kind == VariantKind::Custom ? bindCustomVariant(v, T, h, heads, b) : nullptr;
            for (int64_t i = 0; i < tq; ++i) {
                const int64_t pos = decode ? T - 1 : i;
                const size_t row = (size_t(b) * heads + h) * tq + i;
                const float* qi = q.data() + row * D;
                double mx = -std::numeric_limits<double>::infinity();
                for (int64_t j = 0; j < T; ++j) {
                    allowed[j] = decode || variantAllows(v, T, pos, j, h, heads, b);
                    if (!allowed[j]) continue;
                    double dot = 0;
                    for (int c = 0; c < D; ++c) dot += double(qi[c]) * double(kh[j * D + c]);
                    s[j] = applyScore(mod, double(scale) * dot, h, heads, pos, j);
                    if (custom) evalScoreRow(*custom->expr, custom->binding, pos, j, 1, &s[j]);
                    if (s[j] == -std::numeric_limits<double>::infinity()) allowed[j] = 0;  // a NaN score
                    mx = std::max(mx, s[j]);
                }
                if (std::isinf(mx)) continue;  // nothing allowed: O = 0, lse = -inf
                double sum = 0;
                double* o = r.out.data() + row * D;
                for (int64_t j = 0; j < T; ++j) {
                    if (!allowed[j]) continue;
                    const double p = std::exp(s[j] - mx);
                    sum += p;
                    for (int c = 0; c < D; ++c) o[c] += p * double(vh[j * D + c]);
                }
                for (int c = 0; c < D; ++c) o[c] /= sum;
                r.lse[row] = mx + std::log(sum);
            }
        }
    return r;
}

VariantReference linearReference(const VariantSpec& v, int batch, int heads, int kvHeads, int64_t T, int D,
                                 const std::vector<float>& q, const std::vector<float>& k,
                                 const std::vector<float>& vv) {
    VariantReference r;
    r.out.resize(size_t(batch) * heads * T * D);
    for (int b = 0; b < batch; ++b)
        for (int h = 0; h < heads; ++h) {
            const int hk = h / (heads / kvHeads);
            auto view = [&](const std::vector<float>& x, int hh, int hs) {
                return Eigen::Map<const MatrixRM>(x.data() + (size_t(b) * hs + hh) * T * D, T, D);
            };
            const MatrixRM qh = view(q, h, heads), kh = view(k, hk, kvHeads), vh = view(vv, hk, kvHeads);
            auto o = linearAttentionReference(qh, kh, vh, v.decay);
            const size_t base = (size_t(b) * heads + h) * T * D;
            for (int64_t i = 0; i < T * D; ++i) r.out[base + size_t(i)] = o ? double(o->data()[i]) : std::nan("");
        }
    return r;
}

}  // namespace

Result<VariantReference> variantReferenceAttention(const VariantSpec& v, const VariantProblem& p,
                                                   const std::vector<float>& q, const std::vector<float>& k,
                                                   const std::vector<float>& vv) {
    const bool decode = v.kind == VariantKind::Decode;
    const int64_t tq = decode ? 1 : p.tokens;
    if (p.batch <= 0 || p.heads <= 0 || p.kvHeads <= 0 || p.heads % p.kvHeads != 0 || p.tokens <= 0 || p.headDim <= 0)
        return Status{ErrorCode::InvalidArgument,
                      "variantReferenceAttention: batch, heads, kvHeads, tokens, headDim "
                      "must be > 0 and heads a multiple of kvHeads"};
    const size_t qCount = size_t(p.batch) * p.heads * tq * p.headDim;
    const size_t kvCount = size_t(p.batch) * p.kvHeads * p.tokens * p.headDim;
    if (q.size() != qCount || k.size() != kvCount || vv.size() != kvCount)
        return Status{ErrorCode::Shape, "variantReferenceAttention: q holds " + std::to_string(q.size()) +
                                            " floats (expected " + std::to_string(qCount) + "), k/v " +
                                            std::to_string(k.size()) + "/" + std::to_string(vv.size()) + " (expected " +
                                            std::to_string(kvCount) + ")"};
    if (v.kind == VariantKind::LinearAttention)
        return linearReference(v, p.batch, p.heads, p.kvHeads, p.tokens, p.headDim, q, k, vv);
    const float scale = p.scale > 0 ? p.scale : 1.0f / std::sqrt(float(p.headDim));
    return softmaxReference(v, p.batch, p.heads, p.kvHeads, p.tokens, p.headDim, scale, q, k, vv, decode);
}

}  // namespace attnscope
