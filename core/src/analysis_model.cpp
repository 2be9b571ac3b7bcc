// analyzeTrace: every head of the chosen layers with the layer's native spec, then role labels,
// per-layer summaries and head similarity.
#include <algorithm>
#include <cmath>

#include "analysis_internal.h"
#include "attnscope/trace.h"

namespace attnscope {

namespace {

Status validateOptions(const Trace& trace, AnalyzeOptions& o) {
    if (!trace.hasQK())
        return {ErrorCode::Unsupported, trace.path() + ": analysis needs Q/K/V tensors, the trace only stores attention weights"};
    if (trace.tokens() <= 0) return {ErrorCode::Format, trace.path() + ": trace has no tokens, expected T ≥ 1"};
    if (o.layers.empty())
        for (int l = 0; l < trace.numLayers(); ++l) o.layers.push_back(l);
    for (int l : o.layers)
        if (l < 0 || l >= trace.numLayers())
            return {ErrorCode::InvalidArgument, trace.path() + ": layer " + std::to_string(l) + " requested, expected [0, " +
                                                    std::to_string(trace.numLayers()) + ")"};
    std::sort(o.layers.begin(), o.layers.end());
    o.layers.erase(std::unique(o.layers.begin(), o.layers.end()), o.layers.end());
    // The summary's gamma and block size are always measured.
    auto& g = o.head.gammas;
    if (std::none_of(g.begin(), g.end(), [&](double x) { return std::abs(x - o.summaryGamma) < 1e-9; }))
        g.push_back(o.summaryGamma);
    auto& b = o.head.blockSizes;
    if (std::find(b.begin(), b.end(), o.summaryBlockSize) == b.end()) b.push_back(o.summaryBlockSize);
    return {};
}

Result<MatrixRM> loadHead(const Trace& trace, int layer, int head, Which which) {
    auto m = trace.head(layer, head, which);
    if (!m) return m.status();
    if (m->nonFinite > 0) {
        static const char* names[] = {"q", "k", "v"};
        return Status(ErrorCode::NumericValues,
                      trace.path() + ": tensor layers." + std::to_string(layer) + "." + names[int(which)] + " head " +
                          std::to_string(head) + " has " + std::to_string(m->nonFinite) +
                          " NaN/Inf values, expected finite values for the analysis");
    }
    return std::move(m->m);
}

}  // namespace

LayerSummary summarizeLayer(int layer, const std::vector<const HeadAnalysis*>& heads, const AnalyzeOptions& options) {
    LayerSummary s;
    s.layer = layer;
    s.heads = int(heads.size());
    if (heads.empty()) return s;
    int sinks = 0;
    std::vector<double> entropy, entropyNorm;
    double density = 0;
    int withDensity = 0;
    for (const HeadAnalysis* h : heads) {
        sinks += h->sinks.firstTokenSink ? 1 : 0;
        s.hiddenSinkHeads += h->sinks.hiddenSinks.empty() ? 0 : 1;
        entropy.push_back(h->stats.entropy);
        entropyNorm.push_back(h->stats.entropyNormalized);
        if (const GammaCoverage* c = h->coverage(options.summaryBlockSize, options.summaryGamma)) {
            density += c->density;
            ++withDensity;
        }
        ++s.roles[h->role.label];
    }
    constexpr double kPercent = 100.0;
    s.sinkRate = kPercent * sinks / double(heads.size());
    s.medianEntropy = detail::median(entropy);
    s.medianEntropyNormalized = detail::median(entropyNorm);
    s.density = withDensity > 0 ? density / withDensity : 0.0;
    return s;
}

Result<ModelAnalysis> analyzeTrace(const Trace& trace, const AnalyzeOptions& optionsIn, const ProgressFn& progress) {
    AnalyzeOptions options = optionsIn;
    if (Status s = validateOptions(trace, options); !s.ok()) return s;
    const int64_t T = trace.tokens();
    const TraceMetadata& meta = trace.metadata();
    HeadContext ctx;
    if (int64_t(meta.tokenIds.size()) == T) ctx.tokenIds = meta.tokenIds;
    if (int64_t(meta.documents.size()) == T) ctx.documents = meta.documents;

    // Progress units: one per head pass, one per head for similarity.
    double total = 0;
    for (int l : options.layers)
        total += trace.config(l).heads * ((options.excludeSinks ? 2.0 : 1.0) + (options.similarity ? 1.0 : 0.0));
    double done = 0;
    auto step = [&](double units) {
        auto p = detail::subProgress(progress, done / total, (done + units) / total);
        done += units;
        return p;
    };

    ModelAnalysis out;
    out.tracePath = trace.path();
    out.model = meta.model;
    out.tokens = T;
    out.options = options;
    for (int l : options.layers) {
        const LayerConfig& cfg = trace.config(l);
        std::vector<MatrixRM> qs, ks;
        std::vector<AttentionSpec> specs;
        std::vector<std::vector<float>> lses;
        const size_t firstHead = out.heads.size();
        for (int h = 0; h < cfg.heads; ++h) {
            auto q = loadHead(trace, l, h, Which::Q);
            if (!q) return q.status();
            auto k = loadHead(trace, l, h, Which::K);
            if (!k) return k.status();
            auto v = loadHead(trace, l, h, Which::V);
            if (!v) return v.status();
            AttentionSpec spec = specForLayer(cfg, h);
            std::vector<float> lse;
            auto r = detail::analyzeHeadKeepLse(*q, *k, *v, spec, ctx, options.head, step(1.0), &lse);
            if (!r) return r.status();
            if (options.excludeSinks) {
                // Sinks from the dense map, every other metric without them (ACT beta = 0); a head
                // without sinks keeps its dense results.
                const SinkInfo sinks = r->sinks;
                auto second = step(1.0);
                if (!sinks.keys().empty()) {
                    spec = specWithoutSinks(spec, sinks);
                    r = detail::analyzeHeadKeepLse(*q, *k, *v, spec, ctx, options.head, second, &lse);
                    if (!r) return r.status();
                    r->sinks = sinks;
                    r->role = classifyHead(*r, options.head.roles);
                }
            }
            r->layer = l;
            r->head = h;
            out.heads.push_back(std::move(*r));
            if (options.similarity) {
                qs.push_back(std::move(*q));
                ks.push_back(std::move(*k));
                specs.push_back(spec);
                lses.push_back(std::move(lse));
            }
        }
        if (options.similarity) {
            std::vector<HeadInput> inputs;
            for (int h = 0; h < cfg.heads; ++h) inputs.push_back({&qs[size_t(h)], &ks[size_t(h)], specs[size_t(h)], std::move(lses[size_t(h)])});
            auto sim = headSimilarity(std::move(inputs), step(cfg.heads));
            if (!sim) return sim.status();
            sim->layer = l;
            out.similarity.push_back(std::move(*sim));
        }
        std::vector<const HeadAnalysis*> layerHeads;
        for (size_t x = firstHead; x < out.heads.size(); ++x) layerHeads.push_back(&out.heads[x]);
        out.layers.push_back(summarizeLayer(l, layerHeads, options));
    }
    int sinks = 0;
    for (const auto& h : out.heads) sinks += h.sinks.firstTokenSink ? 1 : 0;
    constexpr double kPercent = 100.0;
    out.sinkRate = out.heads.empty() ? 0.0 : kPercent * sinks / double(out.heads.size());
    return out;
}

}  // namespace attnscope
