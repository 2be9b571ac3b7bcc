// Row statistics: per query row Σ p, Σ p ln p, Σ p |i - j|,
// p_i0, p_ii, p_{i,i-1}, p_{i,i+1} and the mass on recent keys, accumulated over the probability
// tiles of pass 2 and finished into HeadStats (entropy, normalised entropy, mean distance,
// first-token and recent mass).
#include <algorithm>
#include <cmath>

#include "analysis_accumulator.h"

namespace attnscope::detail {

double ActiveRows::mean(const std::vector<double>& v) const {
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i)
        if (ok[i]) s += v[i];
    return count > 0 ? s / double(count) : 0.0;
}

ActiveRows activeRows(const std::vector<float>& lse, const MaskCounts& counts) {
    ActiveRows r;
    r.ok.assign(lse.size(), 0);
    for (size_t i = 0; i < lse.size(); ++i) {
        if (!std::isfinite(lse[i]) || counts.rowAllowed[i] == 0) continue;
        r.ok[i] = 1;
        ++r.count;
    }
    return r;
}

RowStatistics::RowStatistics(int64_t tokens, bool causal, int64_t recentTokens)
    : tokens(tokens), causal(causal), recent(std::max<int64_t>(1, recentTokens)) {
    for (auto* vec : {&mass, &plogp, &distance, &first, &self, &recentMass, &prev, &next})
        vec->assign(size_t(tokens), 0.0);
}

void RowStatistics::addTile(int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    const int64_t c = P.cols(), kEnd = kStart + c;
    // Σ p ln p per row (entropy), vectorised; p = 0 contributes 0.
    const Eigen::ArrayXXf plogpTile = (P.array() > 0.0f).select(P.array() * P.array().max(1e-30f).log(), 0.0f);
    const Eigen::RowVectorXf keyIndex = Eigen::RowVectorXf::LinSpaced(c, float(kStart), float(kEnd - 1));
    for (int64_t a = 0; a < P.rows(); ++a) {
        const int64_t i = qStart + a;
        const auto row = P.row(a);
        const size_t si = size_t(i);
        mass[si] += row.sum();
        plogp[si] += plogpTile.row(a).sum();
        distance[si] += (row.array() * (keyIndex.array() - float(i)).abs()).sum();
        if (kStart == 0) first[si] += row(0);
        if (i >= kStart && i < kEnd) self[si] += row(i - kStart);
        if (i - 1 >= kStart && i - 1 < kEnd) prev[si] += row(i - 1 - kStart);
        if (i + 1 >= kStart && i + 1 < kEnd) next[si] += row(i + 1 - kStart);
        // Recent keys: (i - n, i] when causal, the final n keys otherwise.
        const int64_t rLo = std::max(kStart, causal ? i - recent + 1 : tokens - recent);
        const int64_t rHi = std::min(kEnd, causal ? i + 1 : tokens);
        if (rHi > rLo) recentMass[si] += row.segment(rLo - kStart, rHi - rLo).sum();
    }
}

void RowStatistics::moveInto(HeadSums& out) {
    out.mass = std::move(mass);
    out.plogp = std::move(plogp);
    out.distance = std::move(distance);
    out.first = std::move(first);
    out.self = std::move(self);
    out.recent = std::move(recentMass);
    out.prev = std::move(prev);
    out.next = std::move(next);
}

void finishStats(HeadAnalysis& h, const HeadSums& sums, const ActiveRows& rows, const MaskCounts& counts) {
    // Normalised entropy H_i / ln n_i over the rows with n_i ≥ 2 allowed keys.
    double entropyNorm = 0;
    int64_t nNorm = 0;
    for (size_t i = 0; i < rows.ok.size(); ++i) {
        if (!rows.ok[i] || counts.rowAllowed[i] < 2) continue;
        entropyNorm += -sums.plogp[i] / std::log(double(counts.rowAllowed[i]));
        ++nNorm;
    }
    HeadStats& st = h.stats;
    st.rows = rows.count;
    st.entropy = -rows.mean(sums.plogp);
    st.entropyNormalized = nNorm > 0 ? entropyNorm / double(nNorm) : 0.0;
    st.meanDistance = rows.mean(sums.distance);
    st.firstTokenMass = rows.mean(sums.first);
    st.recentMass = rows.mean(sums.recent);
}

}  // namespace attnscope::detail
