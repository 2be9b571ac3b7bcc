// Sinks (metrics: "Sinks"): first-token sinks (Gu et al., eps 0.3), hidden sinks beyond position
// 0 (ACT, threshold 0.1), and "exclude sinks and renormalize" (ACT beta = 0) as a mask.
#include <algorithm>

#include "analysis_accumulator.h"

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

namespace {

/// Sinks from the normalized column means alpha.
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

}  // namespace

void finishSinks(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec, const SinkOptions& options,
                 const ActiveRows& rows, const MaskCounts& counts) {
    // alpha_k = column sum / number of queries that see k.
    std::vector<float> alpha(sums.column.size(), 0.0f);
    for (size_t j = 0; j < alpha.size(); ++j)
        if (counts.colAllowed[j] > 0) alpha[j] = float(sums.column[j] / double(counts.colAllowed[j]));
    h.sinks = findSinks(std::move(alpha), options, counts.colAllowed);
    if (!spec.hasSink()) return;
    double share = 0;
    for (size_t i = 0; i < sums.lse.size(); ++i)
        if (rows.ok[i]) share += sinkShareOfRow(sums.lse[i], spec.sinkLogit);
    h.sinks.learnedSink = true;
    h.sinks.learnedSinkLogit = spec.sinkLogit;
    h.sinks.learnedSinkShare = rows.count > 0 ? share / double(rows.count) : 0.0;
}

}  // namespace detail
}  // namespace attnscope
