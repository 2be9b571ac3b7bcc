// Sinks (metrics: "Sinks"): first-token sinks (Gu et al., eps 0.3), hidden sinks beyond position
// 0 (ACT, threshold 0.1), and "exclude sinks and renormalize" (ACT beta = 0) as a mask.
#include <algorithm>

#include "analysis_internal.h"

namespace attnscope {

std::vector<int64_t> SinkInfo::keys() const {
    std::vector<int64_t> out;
    if (firstTokenSink) out.push_back(0);
    out.insert(out.end(), hiddenSinks.begin(), hiddenSinks.end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

AttentionSpec specWithoutKeys(const AttentionSpec& spec, const std::vector<int64_t>& keys) {
    AttentionSpec out = spec;
    auto& ex = out.mask.excludedKeys;
    ex.insert(ex.end(), keys.begin(), keys.end());
    std::sort(ex.begin(), ex.end());
    ex.erase(std::unique(ex.begin(), ex.end()), ex.end());
    return out;
}

AttentionSpec specWithoutSinks(const AttentionSpec& spec, const SinkInfo& sinks) {
    return specWithoutKeys(spec, sinks.keys());
}

namespace detail {

SinkInfo findSinks(std::vector<float> alpha, const SinkOptions& options, const std::vector<int64_t>& colAllowed) {
    SinkInfo s;
    s.alpha = std::move(alpha);
    if (s.alpha.empty()) return s;
    s.alpha0 = s.alpha[0];
    s.firstTokenSink = s.alpha0 > options.firstTokenEps;
    for (size_t j = 1; j < s.alpha.size(); ++j)
        if (s.alpha[j] > options.hiddenThreshold && colAllowed[j] >= options.hiddenMinQueries)
            s.hiddenSinks.push_back(int64_t(j));
    return s;
}

}  // namespace detail
}  // namespace attnscope
