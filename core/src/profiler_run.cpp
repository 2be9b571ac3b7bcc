// Profile runs: variants × shapes, warmed up, sampled interleaved until the stopping rule says
// so, then scored for accuracy and (optionally) measured by the range profiler.
#include <algorithm>
#include <map>

#include "profiler_internal.h"

namespace attnscope {
namespace {
using namespace profiler_detail;

// Progress split of one shape: warmup, sampling, accuracy + metrics.
constexpr double kWarmupShare = 0.1, kSamplingShare = 0.6, kScoringShare = 0.3;
constexpr int64_t kBlockSize = 128;

bool isBlockList(const VariantSpec& v) { return v.kind == VariantKind::BlockSparse && !v.blocks; }

std::vector<KernelSummary> summarise(const std::vector<KernelRecord>& records, int variantIndex) {
    std::map<std::string, std::vector<const KernelRecord*>> byName;
    std::vector<std::string> order;
    for (const auto& r : records) {
        if (r.variantIndex != variantIndex || r.sample < 0) continue;
        auto& list = byName[r.name];
        if (list.empty()) order.push_back(r.name);
        list.push_back(&r);
    }
    std::vector<KernelSummary> out;
    for (const auto& name : order) {
        const auto& list = byName[name];
        KernelSummary s;
        const KernelRecord& f = *list.front();
        s.name = name;
        std::copy(f.grid, f.grid + 3, s.grid);
        std::copy(f.block, f.block + 3, s.block);
        s.registers = f.registers;
        s.staticSharedBytes = f.staticSharedBytes;
        s.dynamicSharedBytes = f.dynamicSharedBytes;
        s.launches = int(list.size());
        std::vector<double> d;
        for (const auto* r : list) d.push_back(r->durationUs);
        s.medianUs = computeStats(d).median;
        out.push_back(std::move(s));
    }
    return out;
}

struct ShapeRun {
    ProfilerBackend& backend;
    const ProfileRequest& request;
    ProgressReporter& progress;
    double base = 0, span = 1;  // this shape's slice of the overall progress
    uint64_t& nextExternalId;

    bool report(double fraction, std::string_view stage) { return progress.report(base + span * fraction, stage); }

    Result<ShapeProfile> run(const ShapeSource& source) {
        if (!report(0, "loading inputs")) return cancelled();
        auto problem = profileProblem(source);
        if (!problem) return problem.status();
        if (Status st = backend.checkFits(problem->problem); !st)
            return Status(st.code(), problem->description + ": " + st.message());
        auto inputs = loadProfileInputs(source);
        if (!inputs) return inputs.status();
        ShapeProfile shape;
        shape.description = inputs->description;
        shape.problem = inputs->problem;
        shape.denseLabel = request.dense.empty() ? (inputs->causal ? "causal" : "full") : request.dense;
        auto dense = parseVariant(shape.denseLabel);
        if (!dense) return dense.status();
        if (dense->kind == VariantKind::LinearAttention || dense->kind == VariantKind::Decode ||
            dense->kind == VariantKind::BlockSparse)
            return Result<ShapeProfile>(
                ErrorCode::InvalidArgument,
                "dense baseline \"" + shape.denseLabel + "\" must be a softmax mask variant (causal or full)");
        std::vector<VariantSpec> specs;
        std::vector<std::string> tokens = request.variants;
        if (std::find(tokens.begin(), tokens.end(), shape.denseLabel) == tokens.end())
            tokens.insert(tokens.begin(), shape.denseLabel);
        for (const auto& t : tokens) {
            auto v = parseVariant(t);
            if (!v) return v.status();
            if (v->label.empty()) v->label = t;
            specs.push_back(std::move(*v));
        }
        if (Status st = backend.prepare(*inputs); !st) return st;

        std::vector<VariantResult>& results = shape.variants;
        results.resize(specs.size());
        int denseIndex = 0;
        for (size_t i = 0; i < specs.size(); ++i) {
            VariantResult& r = results[i];
            // A user program is named by its expression (its label), not by its file name or token.
            r.label = specs[i].kind == VariantKind::Custom ? specs[i].label : tokens[i];
            r.backend = backend.label();
            r.isDense = tokens[i] == shape.denseLabel;
            if (r.isDense) denseIndex = int(i);
            if (isBlockList(specs[i])) {
                if (Status st = deriveBlocks(*inputs, specs[i]); !st) r.error = st.message();
            }
            if (r.error.empty()) {
                r.density = blockDensity(specs[i], inputs->problem.tokens);
                r.flops = variantFlops(specs[i], inputs->problem);
                r.bytes = variantBytes(specs[i], inputs->problem);
            }
        }

        // Warmup: lazy module loading, first-launch instrumentation and caches stay out of the samples.
        for (int w = 0; w < request.warmup; ++w) {
            for (size_t i = 0; i < specs.size(); ++i) {
                if (!results[i].error.empty()) continue;
                auto s = backend.runSample(specs[i], nextExternalId++, request.cold);
                if (!s) results[i].error = s.message();
            }
            if (!report(kWarmupShare * (w + 1) / std::max(1, request.warmup), "warmup")) return cancelled();
        }

        // Sampling, interleaved: one sample of each running variant per round, so clock and
        // thermal drift spread evenly over the variants.
        std::vector<double> elapsed(specs.size(), 0.0);
        for (bool any = true; any;) {
            any = false;
            double done = 0;
            for (size_t i = 0; i < specs.size(); ++i) {
                VariantResult& r = results[i];
                if (!r.error.empty() || r.stop != StopReason::Continue) {
                    done += 1;
                    continue;
                }
                any = true;
                const double t0 = steadyMicros();
                const uint64_t id = nextExternalId++;
                auto s = backend.runSample(specs[i], id, request.cold);
                elapsed[i] += (steadyMicros() - t0) * 1e-6;
                if (!s) {
                    r.error = s.message();
                    continue;
                }
                for (auto& k : s->kernels) {
                    k.variantIndex = int(i);
                    k.sample = int(r.samples.size());
                    k.externalId = id;
                    shape.records.push_back(std::move(k));
                }
                r.samples.push_back(s->ms);
                r.stop = evaluateStop(request.stop, r.samples, elapsed[i]);
                done += std::max(double(r.samples.size()) / request.stop.maxSamples,
                                 elapsed[i] / request.stop.timeoutSeconds);
            }
            if (!report(kWarmupShare + kSamplingShare * std::min(1.0, done / double(specs.size())), "sampling"))
                return cancelled();
        }

        for (size_t i = 0; i < specs.size(); ++i) {
            VariantResult& r = results[i];
            r.stats = computeStats(r.samples);
            r.kernels = summarise(shape.records, int(i));
            if (r.stats.n > 0 && r.stats.median > 0) {
                const double seconds = r.stats.median * 1e-3;
                r.tflops = r.flops / seconds * 1e-12;
                r.gbps = r.bytes / seconds * 1e-9;
            }
        }
        const VariantResult& d = results[size_t(denseIndex)];
        for (auto& r : results)
            if (r.stats.n > 0 && d.stats.n > 0 && d.stats.median > 0) r.ratioToDense = r.stats.median / d.stats.median;

        if (request.accuracy) {
            if (!report(kWarmupShare + kSamplingShare, "accuracy")) return cancelled();
            if (Status st = scoreAccuracy(backend, *inputs, *dense, specs, results, request); !st) return st;
        }
        if (request.metrics) {
            const auto names = request.metricNames.empty() ? defaultMetricNames() : request.metricNames;
            for (size_t i = 0; i < specs.size(); ++i) {
                if (!results[i].error.empty()) continue;
                if (!report(kWarmupShare + kSamplingShare + kScoringShare * (i + 1) / specs.size(), "metrics"))
                    return cancelled();
                results[i].metrics = backend.collectMetrics(specs[i], names);
            }
        }
        report(1.0, "done");
        return shape;
    }

    Status deriveBlocks(const ProfileInputs& in, VariantSpec& v) {
        VariantSpec causal;
        causal.kind = VariantKind::Causal;
        auto spec = cpuSpec(causal, in, 0);
        if (!spec) return spec.status();
        auto mass = backend.blockMass(0, 0, *spec, kBlockSize);
        if (!mass) return mass.status();
        const int64_t nb = (in.problem.tokens + kBlockSize - 1) / kBlockSize;
        return deriveBlockList(v, *mass, nb);
    }

    static Status cancelled() { return {ErrorCode::Cancelled, "profile cancelled"}; }
};

Json requestJson(const ProfileRequest& r) {
    Json j = Json::object();
    Json v = Json::array();
    for (const auto& s : r.variants) v.push(s);
    j.set("variants", std::move(v));
    j.set("dense", r.dense);
    j.set("mode", r.cold ? "cold" : "hot");
    j.set("warmup", r.warmup);
    Json stop = Json::object();
    stop.set("targetRelStdDev", r.stop.targetRelStdDev);
    stop.set("minSamples", r.stop.minSamples);
    stop.set("maxSamples", r.stop.maxSamples);
    stop.set("minTotalMs", r.stop.minTotalMs);
    stop.set("timeoutSeconds", r.stop.timeoutSeconds);
    j.set("stoppingRule", std::move(stop));
    j.set("accuracyRows", int64_t(r.accuracyRows));
    j.set("accuracyHeads", r.accuracyHeads);
    j.set("metrics", r.metrics);
    return j;
}
}  // namespace

Result<ProfileReport> runProfileWith(ProfilerBackend& backend, const ProfileRequest& request,
                                     const ProgressFn& progress) {
    if (Status st = validateStoppingRule(request.stop); !st) return st;
    if (request.shapes.empty())
        return Result<ProfileReport>(ErrorCode::InvalidArgument, "profile: no shape given (--shape or a trace)");
    if (request.variants.empty())
        return Result<ProfileReport>(ErrorCode::InvalidArgument, "profile: no variants given (--variants)");
    if (request.warmup < 0) return Result<ProfileReport>(ErrorCode::InvalidArgument, "profile: warmup must be >= 0");
    const double t0 = steadyMicros();
    ProgressReporter reporter(progress);
    ProfileReport report;
    report.backend = backend.label();
    report.backendDescription = backend.description();
    report.mode = request.cold ? "cold" : "hot";
    report.environment = Json::object();
    report.environment.set("request", requestJson(request));
    report.environment.set("attnscopeVersion", ATTNSCOPE_VERSION);
    uint64_t nextExternalId = 1;
    for (size_t i = 0; i < request.shapes.size(); ++i) {
        ShapeRun run{backend,       request, reporter, double(i) / request.shapes.size(), 1.0 / request.shapes.size(),
                     nextExternalId};
        auto shape = run.run(request.shapes[i]);
        if (!shape) return shape.status();
        report.shapes.push_back(std::move(*shape));
    }
    // One timeline for the whole report: the earliest record is time zero.
    double first = 0;
    bool any = false;
    for (const auto& s : report.shapes)
        for (const auto& r : s.records) {
            first = any ? std::min(first, r.startUs) : r.startUs;
            any = true;
        }
    for (auto& s : report.shapes)
        for (auto& r : s.records) r.startUs -= first;
    for (const auto& s : report.shapes)
        for (const auto& v : s.variants)
            if (request.metrics && !v.metrics.collected && report.metricsNote.empty() && v.error.empty())
                report.metricsNote = v.metrics.reason;
    report.environment.set("backend", backend.environment());  // after the run: it counts dropped records
    report.wallSeconds = (steadyMicros() - t0) * 1e-6;
    return report;
}

Result<ProfileReport> runProfile(const ProfileRequest& request, ProfilerBackend* gpu, const std::string& gpuUnavailable,
                                 const ProgressFn& progress) {
    std::string fallback;
    if (request.backend != BackendChoice::Cpu) {
        if (gpu) return runProfileWith(*gpu, request, progress);
        if (request.backend == BackendChoice::Gpu)
            return Status(ErrorCode::Unsupported, gpuUnavailable.empty() ? "no GPU profiler backend" : gpuUnavailable);
        fallback = gpuUnavailable;
    }
    auto cpu = createCpuProfilerBackend();
    auto report = runProfileWith(*cpu, request, progress);
    if (report) report->fallbackReason = fallback;
    return report;
}

}  // namespace attnscope
