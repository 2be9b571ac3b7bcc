// analyzeTrace: every head of the chosen layers with the layer's native spec, then role labels,
// per-layer summaries and head similarity.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <functional>
#include <future>
#include <optional>
#include <cmath>

#include "analysis_internal.h"
#include "attnscope/gpu.h"
#include "attnscope/parallel.h"
#include "attnscope/trace.h"

namespace attnscope {

namespace {

Status validateOptions(const Trace& trace, AnalyzeOptions& o) {
    if (!trace.hasQK())
        return {ErrorCode::Unsupported,
                trace.path() + ": analysis needs Q/K/V tensors, the trace only stores attention weights"};
    if (trace.tokens() <= 0) return {ErrorCode::Format, trace.path() + ": trace has no tokens, expected T ≥ 1"};
    if (o.layers.empty())
        for (int l = 0; l < trace.numLayers(); ++l) o.layers.push_back(l);
    for (int l : o.layers)
        if (l < 0 || l >= trace.numLayers())
            return {ErrorCode::InvalidArgument, trace.path() + ": layer " + std::to_string(l) +
                                                    " requested, expected [0, " + std::to_string(trace.numLayers()) +
                                                    ")"};
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
        return Status(ErrorCode::NumericValues, trace.path() + ": tensor layers." + std::to_string(layer) + "." +
                                                    names[int(which)] + " head " + std::to_string(head) + " has " +
                                                    std::to_string(m->nonFinite) +
                                                    " NaN/Inf values, expected finite values for the analysis");
    }
    return std::move(m->m);
}

/// Per-layer summary of analysed heads.
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

/// What one layer contributes to ModelAnalysis, in layer order.
struct LayerResult {
    std::vector<HeadAnalysis> heads;
    LayerSummary summary;
    std::optional<HeadSimilarity> similarity;
    ModelAnalysis::LayerTiming timing;
    std::vector<std::string> notes;
};
using FinishJob = std::function<Result<LayerResult>()>;

/// One layer on the GPU: the passes there (on this thread, which owns the engine), then a job
/// that finishes the metrics on the CPU (one head per worker) and may run while the GPU computes
/// the next layer. Returns no job (and a note) when the engine cannot take this layer, so the
/// caller runs it on the CPU.
template <typename StepFn>
Result<std::optional<FinishJob>> analyzeLayerOnGpu(const Trace& trace, int l, int next, const HeadContext& ctx,
                                                   const AnalyzeOptions& options, std::vector<std::string>& notes,
                                                   StepFn& step) {
    using Clock = std::chrono::steady_clock;
    const LayerConfig& cfg = trace.config(l);
    auto specs = std::make_shared<std::vector<AttentionSpec>>();
    for (int h = 0; h < cfg.heads; ++h) specs->push_back(specForLayer(cfg, h));
    const double units = cfg.heads * ((options.excludeSinks ? 2.0 : 1.0) + (options.similarity ? 1.0 : 0.0));
    auto progress = step(units);
    const double passShare = options.excludeSinks ? 0.45 : 0.9;
    auto sums = options.gpu->analyzeLayerSums(trace, l, *specs, ctx, options.head, next,
                                              detail::subProgress(progress, 0.0, passShare));
    if (!sums) {
        if (sums.status().code() != ErrorCode::Unsupported) return sums.status();
        notes.push_back("layer " + std::to_string(l) + " on the CPU: " + sums.status().message());
        return std::optional<FinishJob>();
    }
    auto timing = std::make_shared<ModelAnalysis::LayerTiming>();
    timing->layer = l;
    timing->gpu = true;
    const GpuEngine::LayerTimes gt = options.gpu->lastLayerTimes();
    timing->readMs = gt.readMs, timing->uploadMs = gt.uploadMs, timing->computeMs = gt.computeMs;
    timing->passes = gt.passes;
    auto heads = std::make_shared<std::vector<HeadAnalysis>>(static_cast<size_t>(cfg.heads));
    auto finishAll = [heads, specs, &ctx, &options, l](const std::vector<HeadSums>& all,
                                                       const std::vector<int>& which) {
        std::vector<Status> errors(which.size());
        parallelFor(int64_t(which.size()), [&](int64_t x, int) {
            const int h = which[size_t(x)];
            auto r = finishHead(all[size_t(h)], (*specs)[size_t(h)], ctx, options.head);
            if (!r) {
                errors[size_t(x)] = r.status();
                return;
            }
            if (options.excludeSinks && !(*heads)[size_t(h)].sinks.alpha.empty()) {
                r->sinks = (*heads)[size_t(h)].sinks;  // sinks from the dense pass
                r->role = classifyHead(*r, options.head.roles);
            }
            r->layer = l;
            r->head = h;
            (*heads)[size_t(h)] = std::move(*r);
        });
        for (const Status& e : errors)
            if (!e.ok()) return e;
        return Status{};
    };
    std::vector<int> all(static_cast<size_t>(cfg.heads));
    for (int h = 0; h < cfg.heads; ++h) all[size_t(h)] = h;
    auto dense = std::make_shared<std::vector<HeadSums>>(std::move(*sums));
    double finishedMs = 0;
    if (options.excludeSinks) {
        // Sinks from the dense pass, every other metric without them (ACT beta = 0): the second
        // GPU pass needs the first one's sinks, so this layer finishes here.
        const auto t0 = Clock::now();
        if (Status s = finishAll(*dense, all); !s.ok()) return s;
        std::vector<int> withSinks;
        for (int h = 0; h < cfg.heads; ++h) {
            if ((*heads)[size_t(h)].sinks.keys().empty()) continue;
            (*specs)[size_t(h)] = specWithoutSinks((*specs)[size_t(h)], (*heads)[size_t(h)].sinks);
            withSinks.push_back(h);
        }
        finishedMs += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!withSinks.empty()) {
            auto second = options.gpu->analyzeLayerSums(trace, l, *specs, ctx, options.head, next,
                                                        detail::subProgress(progress, passShare, 0.9));
            if (!second) return second.status();
            timing->computeMs += options.gpu->lastLayerTimes().computeMs;
            const auto t1 = Clock::now();
            if (Status s = finishAll(*second, withSinks); !s.ok()) return s;
            finishedMs += std::chrono::duration<double, std::milli>(Clock::now() - t1).count();
        }
    }
    const bool finishLater = !options.excludeSinks;
    FinishJob job = [=, &trace, &ctx, &options]() -> Result<LayerResult> {
        const auto t0 = Clock::now();
        if (finishLater)
            if (Status s = finishAll(*dense, all); !s.ok()) return s;
        LayerResult out;
        out.timing = *timing;
        if (options.similarity) {
            if (trace.tokens() > options.gpuSimilarityMaxTokens) {
                out.notes.push_back(
                    "head similarity skipped above T=" + std::to_string(options.gpuSimilarityMaxTokens) +
                    " on the GPU path (its H² joint passes run on the CPU)");
            } else {
                std::vector<MatrixRM> qs, ks;
                for (int h = 0; h < cfg.heads; ++h) {
                    auto q = loadHead(trace, l, h, Which::Q);
                    if (!q) return q.status();
                    auto k = loadHead(trace, l, h, Which::K);
                    if (!k) return k.status();
                    qs.push_back(std::move(*q));
                    ks.push_back(std::move(*k));
                }
                std::vector<HeadInput> inputs;
                for (int h = 0; h < cfg.heads; ++h) {
                    // With sinks excluded the stored lse is the dense one: the similarity recomputes it.
                    inputs.push_back({&qs[size_t(h)], &ks[size_t(h)], (*specs)[size_t(h)],
                                      options.excludeSinks ? std::vector<float>() : (*dense)[size_t(h)].lse});
                }
                auto sim = headSimilarity(std::move(inputs));
                if (!sim) return sim.status();
                sim->layer = l;
                out.similarity = std::move(*sim);
            }
        }
        out.heads = std::move(*heads);
        std::vector<const HeadAnalysis*> layerHeads;
        for (const auto& h : out.heads) layerHeads.push_back(&h);
        out.summary = summarizeLayer(l, layerHeads, options);
        out.timing.finishMs = finishedMs + std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        return out;
    };
    return std::optional<FinishJob>(std::move(job));
}

}  // namespace

Result<ModelAnalysis> analyzeTrace(const Trace& trace, const AnalyzeOptions& optionsIn, const ProgressFn& progress) {
    AnalyzeOptions options = optionsIn;
    if (Status s = validateOptions(trace, options); !s.ok()) return s;
    const int64_t T = trace.tokens();
    const TraceMetadata& meta = trace.metadata();
    HeadContext ctx;
    if (int64_t(meta.tokenIds.size()) == T) ctx.tokenIds = meta.tokenIds;
    if (int64_t(meta.documents.size()) == T) ctx.documents = meta.documents;

    // Progress units: one per head pass, one per head for similarity. With several GPUs the
    // layers' threads report at once: the callback and the unit count are serialised.
    double total = 0;
    for (int l : options.layers)
        total += trace.config(l).heads * ((options.excludeSinks ? 2.0 : 1.0) + (options.similarity ? 1.0 : 0.0));
    auto progressMutex = std::make_shared<std::mutex>();
    const ProgressFn serialProgress = progress
                                          ? ProgressFn([progress, progressMutex](double f, std::string_view stage) {
                                                std::lock_guard lock(*progressMutex);
                                                return progress(f, stage);
                                            })
                                          : ProgressFn();
    double done = 0;
    std::mutex stepMutex;
    auto step = [&](double units) {
        std::lock_guard lock(stepMutex);
        auto p = detail::subProgress(serialProgress, done / total, (done + units) / total);
        done += units;
        return p;
    };

    ModelAnalysis out;
    out.tracePath = trace.path();
    out.model = meta.model;
    out.tokens = T;
    out.options = options;
    out.options.onLayer = nullptr;  // the caller's callback does not travel with the result
    // Tells the caller about the layer just appended to `out` (its heads from `firstHead` on).
    auto announceLayer = [&](size_t firstHead, bool withSimilarity) {
        if (!options.onLayer) return;
        LayerDone done;
        done.layer = out.layers.back().layer;
        done.heads = std::span<const HeadAnalysis>(out.heads).subspan(firstHead);
        done.summary = &out.layers.back();
        done.similarity = withSimilarity ? &out.similarity.back() : nullptr;
        options.onLayer(done);
    };
    const bool gpuAvailable = options.gpu && options.gpu->info().available;
    if (options.gpu && !gpuAvailable) out.notes.push_back("GPU not used: " + options.gpu->info().reason);
    // Every GPU the caller passed: layers are dealt to them in turn, each GPU's layers on a thread
    // of its own (which then owns that engine's CUDA calls).
    std::vector<GpuEngine*> engines;
    if (gpuAvailable) engines.push_back(options.gpu);
    for (GpuEngine* g : options.moreGpus)
        if (g && g->info().available && gpuAvailable) engines.push_back(g);
    int gpuLayers = 0, cpuLayers = 0;
    // A GPU layer's metrics are finished on the CPU while the GPU computes the next layer; results
    // are appended in layer order.
    std::future<Result<LayerResult>> pending;
    auto flushPending = [&]() -> Status {
        if (!pending.valid()) return {};
        auto r = pending.get();
        if (!r) return r.status();
        const size_t firstHead = out.heads.size();
        for (auto& h : r->heads) out.heads.push_back(std::move(h));
        out.layers.push_back(std::move(r->summary));
        const bool withSimilarity = r->similarity.has_value();
        if (withSimilarity) out.similarity.push_back(std::move(*r->similarity));
        out.timings.push_back(r->timing);
        for (auto& n : r->notes)
            if (std::find(out.notes.begin(), out.notes.end(), n) == out.notes.end()) out.notes.push_back(std::move(n));
        announceLayer(firstHead, withSimilarity);
        return {};
    };
    // Several GPUs: each runs its layers' passes on its own thread; the finishing jobs (and CPU
    // fallbacks) are then taken in layer order below.
    // Per GPU its options; declared before the jobs that keep a reference to them (destroyed after).
    std::vector<AnalyzeOptions> perEngine(engines.size() > 1 ? engines.size() : 0, options);
    std::vector<std::optional<std::future<Result<LayerResult>>>> spread(options.layers.size());
    if (engines.size() > 1) {
        std::vector<std::vector<std::string>> workerNotes(engines.size());
        std::vector<Status> workerErrors(engines.size());
        std::atomic<bool> stop{false};
        std::vector<std::thread> workers;
        for (size_t e = 0; e < engines.size(); ++e)
            workers.emplace_back([&, e] {
                AnalyzeOptions& mine = perEngine[e];
                mine.gpu = engines[e];
                for (size_t li = e; li < options.layers.size() && !stop; li += engines.size()) {
                    const int next =
                        li + engines.size() < options.layers.size() ? options.layers[li + engines.size()] : -1;
                    auto job = analyzeLayerOnGpu(trace, options.layers[li], next, ctx, mine, workerNotes[e], step);
                    if (!job) {
                        workerErrors[e] = job.status();
                        stop = true;
                        return;
                    }
                    if (*job) spread[li] = std::async(std::launch::async, std::move(**job));
                }
            });
        for (auto& w : workers) w.join();
        for (auto& n : workerNotes) out.notes.insert(out.notes.end(), n.begin(), n.end());
        for (const Status& st : workerErrors) {
            if (st.ok()) continue;
            for (auto& f : spread)
                if (f) f->wait();
            return st;
        }
    }
    for (size_t li = 0; li < options.layers.size(); ++li) {
        const int l = options.layers[li];
        const LayerConfig& cfg = trace.config(l);
        if (spread[li]) {
            ++gpuLayers;
            pending = std::move(*spread[li]);
            if (Status s = flushPending(); !s.ok()) return s;
            continue;
        }
        if (gpuAvailable && engines.size() == 1) {
            const int next = li + 1 < options.layers.size() ? options.layers[li + 1] : -1;
            auto job = analyzeLayerOnGpu(trace, l, next, ctx, options, out.notes, step);
            if (!job) {
                (void)flushPending();
                return job.status();
            }
            if (*job) {
                ++gpuLayers;
                if (Status s = flushPending(); !s.ok()) return s;
                pending = std::async(std::launch::async, std::move(**job));
                if (progress && !progress(done / total, "analyze")) {
                    (void)flushPending();
                    return detail::cancelledStatus("analyzeTrace");
                }
                continue;
            }
        }
        if (Status s = flushPending(); !s.ok()) return s;
        ++cpuLayers;
        const auto layerStart = std::chrono::steady_clock::now();
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
            for (int h = 0; h < cfg.heads; ++h)
                inputs.push_back({&qs[size_t(h)], &ks[size_t(h)], specs[size_t(h)], std::move(lses[size_t(h)])});
            auto sim = headSimilarity(std::move(inputs), step(cfg.heads));
            if (!sim) return sim.status();
            sim->layer = l;
            out.similarity.push_back(std::move(*sim));
        }
        std::vector<const HeadAnalysis*> layerHeads;
        for (size_t x = firstHead; x < out.heads.size(); ++x) layerHeads.push_back(&out.heads[x]);
        out.layers.push_back(summarizeLayer(l, layerHeads, options));
        ModelAnalysis::LayerTiming t;
        t.layer = l;
        t.computeMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - layerStart).count();
        out.timings.push_back(t);
        announceLayer(firstHead, options.similarity);
    }
    if (Status s = flushPending(); !s.ok()) return s;
    if (gpuLayers > 0) {
        const std::string name = (engines.size() > 1 ? std::to_string(engines.size()) + " GPUs " : "GPU ") +
                                 options.gpu->info().name + " (tensor cores)";
        out.backend = cpuLayers == 0 ? name
                                     : name + " for " + std::to_string(gpuLayers) + " layers, CPU for " +
                                           std::to_string(cpuLayers);
    }
    int sinks = 0;
    for (const auto& h : out.heads) sinks += h.sinks.firstTokenSink ? 1 : 0;
    constexpr double kPercent = 100.0;
    out.sinkRate = out.heads.empty() ? 0.0 : kPercent * sinks / double(out.heads.size());
    return out;
}

}  // namespace attnscope
