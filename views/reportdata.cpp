// Gathers what a report shows: the analysis of every head, the selected heads' maps at three
// scales, and the optional profile.
#include <algorithm>
#include <cmath>
#include <functional>

#include "attnscope/map_service.h"
#include "attnscope/trace.h"
#include "reportdocument.h"

namespace attnscope {

namespace {
// Shares of the report's progress bar given to each stage.
constexpr double kOpenShare = 0.02, kAnalysisEnd = 0.7, kMapsEnd = 0.85, kProfileEnd = 1.0;
// Profiles inside a report are a summary, not a benchmark: few samples, short timeouts.
constexpr int kProfileWarmup = 1, kProfileMinSamples = 5, kProfileMaxSamples = 30;
constexpr double kProfileTimeoutSeconds = 5;
constexpr int64_t kWindowLead = 4;  // the most-attended key sits a quarter into the key window

bool report(const ProgressFn& progress, double f, std::string_view stage) { return !progress || progress(f, stage); }

Status cancelled() { return {ErrorCode::Cancelled, "report cancelled"}; }

// The heads a reader looks at first: the strongest induction, previous-token, hidden-sink and
// first-token-sink heads, then the most local and the broadest.
std::vector<HeadRef> autoSelect(const ModelAnalysis& m, int count) {
    using Score = std::function<double(const HeadAnalysis&)>;
    const std::vector<Score> criteria = {
        // Scores rather than labels: the strongest induction head is worth showing even when its
        // label went to another role that fired first (a sink, say).
        [](const HeadAnalysis& h) { return h.roles.inductionMatched; },
        [](const HeadAnalysis& h) { return h.roles.previousToken; },
        [](const HeadAnalysis& h) {
            double best = -1;
            for (int64_t k : h.sinks.hiddenSinks)
                if (k >= 0 && size_t(k) < h.sinks.alpha.size()) best = std::max(best, double(h.sinks.alpha[size_t(k)]));
            return best;
        },
        [](const HeadAnalysis& h) { return h.sinks.firstTokenSink ? h.sinks.alpha0 : -1.0; },
        [](const HeadAnalysis& h) { return h.roles.localMass; },
        [](const HeadAnalysis& h) { return h.stats.entropyNormalized; },
    };
    std::vector<HeadRef> out;
    for (const auto& score : criteria) {
        if (int(out.size()) >= count) break;
        const HeadAnalysis* best = nullptr;
        double bestScore = 0;
        for (const auto& h : m.heads) {
            const HeadRef ref{h.layer, h.head};
            if (std::find(out.begin(), out.end(), ref) != out.end()) continue;
            const double s = score(h);
            if (s > bestScore) best = &h, bestScore = s;
        }
        if (best) out.push_back({best->layer, best->head});
    }
    return out;
}

Result<HeadMaps> headMaps(HeadCache& cache, HeadRef ref, const ReportOptions& o) {
    const int64_t T = cache.trace()->tokens();
    // The map service, on the analysis' GPU when it has one; the overview computes (and caches)
    // the row logsumexp the zoom and the window reuse on the CPU.
    auto map = [&](MapRect rect, int64_t cells) -> Result<AttentionMap> {
        MapRequest r;
        r.layer = ref.layer;
        r.head = ref.head;
        r.rect = rect;
        r.width = r.height = int(std::min<int64_t>(cells, o.mapCells));
        auto m = headMap(cache, r, {}, o.analysis.gpu);
        if (!m) return m.status();
        return std::move(m->map);
    };
    HeadMaps maps;
    maps.ref = ref;
    auto overview = map({0, T, 0, T}, T);
    if (!overview) return overview.status();
    maps.overview = std::move(*overview);
    // The zoom: a diagonal block in the middle of the sequence, where local structure shows.
    const int64_t z = std::min<int64_t>(T, o.zoomTokens);
    const int64_t z0 = std::clamp<int64_t>(T / 2 - z / 2, 0, T - z);
    auto zoom = map({z0, z0 + z, z0, z0 + z}, z);
    if (!zoom) return zoom.status();
    maps.zoom = std::move(*zoom);
    // The token-level window: the last queries, one cell per token, against the keys where the
    // last query looks most (the sink for a sink head, the earlier copy for an induction head,
    // the diagonal for a local head), so the window shows what the head does.
    const int64_t w = std::min<int64_t>(T, o.windowTokens);
    int64_t k0 = T - w;
    auto head = cache.head(ref.layer, ref.head);
    if (!head) return head.status();
    if (auto row = attentionRow((*head)->q, (*head)->k, (*head)->spec, T - 1, 1);
        row && !row->top.empty() && row->top.front().first < T - w)
        k0 = std::clamp<int64_t>(row->top.front().first - w / kWindowLead, 0, T - w);
    MapRequest window;
    window.layer = ref.layer;
    window.head = ref.head;
    window.rect = {T - w, T, k0, k0 + w};
    window.width = window.height = int(w);
    auto windowMap = headMap(cache, window, {}, o.analysis.gpu);
    if (!windowMap) return windowMap.status();
    maps.window = std::move(windowMap->map);
    return maps;
}

}  // namespace

Result<ReportData> collectReportData(const std::string& tracePath, const ReportOptions& o, const ProgressFn& progress) {
    ReportData d;
    if (!report(progress, 0, "open")) return cancelled();
    auto trace = Trace::open(tracePath);
    if (!trace) return trace.status();
    d.trace = *trace;
    if (!d.trace->hasQK())
        return Status(ErrorCode::Unsupported,
                      tracePath + ": weights-only trace (no Q/K); reports need Q/K to analyse heads");
    for (const HeadRef& h : o.heads) {
        if (h.layer < 0 || h.layer >= d.trace->numLayers() || h.head < 0 || h.head >= d.trace->config(h.layer).heads)
            return Status(ErrorCode::InvalidArgument, "--heads: " + std::to_string(h.layer) + ":" +
                                                          std::to_string(h.head) + " is not a head of " + tracePath);
    }
    if (!report(progress, kOpenShare, "analyse")) return cancelled();

    auto analysis = analyzeTrace(*d.trace, o.analysis, progressRange(progress, kOpenShare, kAnalysisEnd));
    if (!analysis) return analysis.status();
    d.analysis = std::move(*analysis);
    if (d.trace->metadata().kind == TraceKind::Vision) {  // two more passes over the patch rows per head
        VisionOptions vo;
        vo.layers = o.analysis.layers;
        auto vision = analyzeVision(*d.trace, vo, progressRange(progress, kAnalysisEnd, kAnalysisEnd));
        if (!vision) return vision.status();
        d.vision = std::move(*vision);
    }

    d.selected = o.heads.empty() ? autoSelect(d.analysis, o.autoHeads) : o.heads;
    HeadCache cache(d.trace, 1);
    for (size_t i = 0; i < d.selected.size(); ++i) {
        if (!report(progress, kAnalysisEnd + (kMapsEnd - kAnalysisEnd) * double(i) / d.selected.size(), "maps"))
            return cancelled();
        auto maps = headMaps(cache, d.selected[i], o);
        if (!maps) return maps.status();
        d.maps.push_back(std::move(*maps));
    }

    if (!o.profileVariants.empty()) {
        if (!report(progress, kMapsEnd, "profile")) return cancelled();
        ProfileRequest req;
        ShapeSource shape;
        shape.trace = d.trace;
        const HeadRef target = d.selected.empty() ? HeadRef{} : d.selected.front();
        shape.layer = target.layer, shape.head = target.head;
        req.shapes = {shape};
        req.variants = o.profileVariants;
        req.warmup = kProfileWarmup;
        req.stop.minSamples = kProfileMinSamples;
        req.stop.maxSamples = kProfileMaxSamples;
        req.stop.timeoutSeconds = kProfileTimeoutSeconds;
        auto profile = runProfileOnBestBackend(req, progressRange(progress, kMapsEnd, kProfileEnd));
        if (!profile) {
            if (profile.status().code() == ErrorCode::Cancelled) return profile.status();
            // A failed profile does not lose the analysis: the section says why.
            d.profileNote = profile.message();
        } else {
            d.profile = std::move(*profile);
        }
    }
    if (!report(progress, 1.0, "write")) return cancelled();
    return d;
}

}  // namespace attnscope
