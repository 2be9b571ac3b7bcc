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
    if (layer.alibi) spec.alibiSlope = alibiSlope(head, layer.heads);
    spec.mask.causal = layer.causal;
    spec.mask.window = layer.slidingWindow;
    return spec;
}

}  // namespace attnscope
