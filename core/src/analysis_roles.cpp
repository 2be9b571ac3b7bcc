// Head roles (metrics: "Head roles"): local band, vertical and slash scores from the O(T)
// profiles, and one label per head with the evidence behind it.
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <functional>

#include "analysis_internal.h"

namespace attnscope {

namespace {

/// Sum of the n largest values of v.
double topSum(std::vector<float> v, int64_t n) {
    n = std::min<int64_t>(n, int64_t(v.size()));
    if (n <= 0) return 0;
    std::partial_sort(v.begin(), v.begin() + n, v.end(), std::greater<float>());
    double s = 0;
    for (int64_t x = 0; x < n; ++x) s += v[size_t(x)];
    return s;
}

std::string fmt(const char* name, double value) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s=%.2f", name, value);
    return buf;
}

}  // namespace

namespace detail {

void finishProfiles(HeadAnalysis& h, const RoleOptions& o) {
    const auto& off = h.profiles.offsetMass;
    const int64_t origin = h.profiles.offsetOrigin;
    double local = 0;
    std::vector<float> far;
    for (size_t x = 0; x < off.size(); ++x) {
        const int64_t d = int64_t(x) - origin;
        if (std::abs(d) < o.localWidth) local += off[x];
        else far.push_back(off[x]);
    }
    h.roles.localMass = local;
    h.roles.slashScore = topSum(std::move(far), o.profileTop);
    const auto& col = h.profiles.columnMass;
    h.roles.verticalScore = col.size() > 1 ? topSum(std::vector<float>(col.begin() + 1, col.end()), o.profileTop) : 0;
}

}  // namespace detail

HeadRole classifyHead(const HeadAnalysis& h, const RoleOptions& o) {
    const RoleScores& r = h.roles;
    const SinkInfo& s = h.sinks;
    HeadRole role;
    // Evidence always lists the main scores, so a reader can judge the label.
    // Induction: on repeated text when there is enough of it, else on every template row.
    const bool useRepeat = r.repeatRows >= o.minRepeatRows;
    const double induction = useRepeat ? r.inductionRepeat : r.inductionMatched;
    std::string ev = fmt(useRepeat ? "ind(rep)" : "ind", induction) + " " + fmt("dup", r.duplicateMatched) + " " +
                     fmt("prev", r.previousToken) + " " + fmt("alpha0", s.alpha0) + " " +
                     fmt("Hn", h.stats.entropyNormalized);
    // A "document" head keeps its mass in its own document and spreads over it (a local head also
    // stays in its document, but only near the diagonal).
    const bool document = r.documentMass >= o.documentThreshold && r.documentSpread >= 0.5;
    if (r.inductionRows > 0 && induction >= o.inductionThreshold) role.label = "induction";
    else if (r.duplicateRows > 0 && r.duplicateMatched >= o.duplicateThreshold) role.label = "duplicate-token";
    else if (r.previousToken >= o.positionalThreshold) role.label = "previous-token";
    else if (r.nextToken >= o.positionalThreshold) role.label = "next-token";
    else if (document) role.label = "document", ev += " " + fmt("doc", r.documentMass) + " " + fmt("spread", r.documentSpread);
    else if (r.localMass >= o.localThreshold) role.label = "local", ev += " " + fmt("local", r.localMass);
    else if (s.firstTokenSink || !s.hiddenSinks.empty()) {
        // The strongest sink names the head: a hidden sink often sits behind a weaker first-token one.
        // Key 0 competes only when it is a first-token sink (alpha_0 > eps): a head whose alpha_0
        // is below eps but above its hidden sinks' alpha is still a hidden-sink head, not a "sink".
        int64_t strongest = s.firstTokenSink ? 0 : -1;
        for (int64_t k : s.hiddenSinks)
            if (strongest < 0 || s.alpha[size_t(k)] > s.alpha[size_t(strongest)]) strongest = k;
        if (strongest > 0) {
            role.label = "hidden-sink";
            ev += " at=" + std::to_string(strongest) + " " + fmt("alpha", s.alpha[size_t(strongest)]);
        } else {
            role.label = "sink";
        }
    } else if (r.verticalScore >= o.verticalThreshold) role.label = "vertical", ev += " " + fmt("vert", r.verticalScore);
    else if (r.slashScore >= o.slashThreshold) role.label = "slash", ev += " " + fmt("slash", r.slashScore);
    else if (h.stats.entropyNormalized >= o.broadNormalizedEntropy) role.label = "broad";
    else role.label = "mixed";
    role.evidence = ev;
    return role;
}

}  // namespace attnscope
