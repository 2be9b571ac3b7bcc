// Mask and score-mod semantics of one head (the scalar definitions every fast path must match).
#include <algorithm>
#include <cmath>

#include "attention_kernels.h"
#include "attnscope/attention.h"
#include "attnscope/trace.h"
#include "attnscope/variant_expr.h"

namespace attnscope {

bool MaskSpec::allows(int64_t q, int64_t k) const {
    if (q < 0 || k < 0) return false;
    if (!detail::positionalAllows(*this, q, k)) return false;
    if (!documents.empty()) {
        if (q >= static_cast<int64_t>(documents.size()) || k >= static_cast<int64_t>(documents.size())) return false;
        if (documents[size_t(q)] != documents[size_t(k)]) return false;
    }
    if (blocks && !detail::blockKept(*this, q, k)) return false;
    if (expr && !evalMaskPair(*expr->expr, expr->binding, q, k)) return false;
    return !std::binary_search(excludedKeys.begin(), excludedKeys.end(), k);
}

float AttentionSpec::score(float dot, int64_t q, int64_t k) const {
    float s = scale * dot;
    if (softcap > 0) s = softcap * std::tanh(s / softcap);
    if (alibiSlope != 0) s += alibiSlope * static_cast<float>(k - q);
    if (relativeBias != 0) s += relativeBias * static_cast<float>(q - k);
    if (mask.expr) evalScoreRow(*mask.expr->expr, mask.expr->binding, q, k, 1, &s);
    return s;
}

float foldSinkIntoLse(float lse, float sinkLogit) {
    if (!(sinkLogit > detail::kNegInf)) return lse;
    if (!(lse > detail::kNegInf)) return sinkLogit;
    // logaddexp in double: max + log1p(exp(-|a - b|)) never overflows.
    const double hi = std::max<double>(lse, sinkLogit), lo = std::min<double>(lse, sinkLogit);
    return static_cast<float>(hi + std::log1p(std::exp(lo - hi)));
}

double sinkShareOfRow(float lseWithSink, float sinkLogit) {
    if (!(sinkLogit > detail::kNegInf) || !std::isfinite(lseWithSink)) return 0.0;
    return std::exp(static_cast<double>(sinkLogit) - static_cast<double>(lseWithSink));
}

void applySinkToOutput(MatrixRM& out, const float* lse, float sinkLogit) {
    if (!(sinkLogit > detail::kNegInf)) return;
    for (Eigen::Index r = 0; r < out.rows(); ++r)
        if (std::isfinite(lse[r]))
            out.row(r) *= static_cast<float>(std::exp(double(lse[r]) - foldSinkIntoLse(lse[r], sinkLogit)));
}

float alibiSlope(int head, int heads) {
    // Press et al.: the geometric sequence starting at 2^(-8/H) with that same ratio.
    constexpr double kAlibiExponentSpan = 8.0;
    if (heads <= 0) return 0.0f;
    return static_cast<float>(std::exp2(-kAlibiExponentSpan * (head + 1) / heads));
}

AttentionSpec specForLayer(const LayerConfig& layer, int head) {
    AttentionSpec spec;
    spec.scale = layer.scale > 0 ? static_cast<float>(layer.scale)
                                 : (layer.headDim > 0 ? 1.0f / std::sqrt(static_cast<float>(layer.headDim)) : 1.0f);
    spec.softcap = static_cast<float>(layer.softcap);
    if (layer.alibi)
        spec.alibiSlope = head >= 0 && size_t(head) < layer.alibiSlopes.size() ? layer.alibiSlopes[size_t(head)]
                                                                               : alibiSlope(head, layer.heads);
    spec.mask.causal = layer.causal;
    spec.mask.window = layer.slidingWindow;
    if (head >= 0 && size_t(head) < layer.sinks.size()) spec.sinkLogit = layer.sinks[size_t(head)];
    return spec;
}

}  // namespace attnscope
