// runGpuSelfTest: every variant × dtype × head dim against a float64 CPU reference computed from
// the same rounded inputs, on fresh random data, with poisoned outputs; plus the GPU block mask
// against the CPU block classification and the GPU analysis passes against brute force.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>

#include <unistd.h>

#include "attnscope/analysis_sums.h"
#include "attnscope/profiler.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"

#include "cuda_engine.h"
#include "fault_injection.h"
#include "jit_selftest.h"
#include "selftest_reference.h"

namespace attnscope {
namespace {

using gpu::CudaEngine;

struct Shape {
    int batch, heads, kvHeads;
    int64_t tokens;
};

// T not a multiple of 128, GQA ratios 1 / 4 / 8, and T = 1.
const Shape kShapes[] = {{1, 4, 4, 200}, {2, 8, 2, 130}, {1, 8, 1, 257}, {1, 2, 2, 1}, {1, 4, 4, 640}};
constexpr int kQuickShapes = 4;

const char* const kVariants[] = {"full", "causal", "sliding:64", "prefix:48", "document:3", "jagged", "dilated:20:3",
                                 "alibi", "softcap:5", "relbias:0.05", "blocks", "linear", "linear:0.05", "decode",
                                 "sliding:80&document:2", "prefix:32|sliding:16", "document:3&softcap:5",
                                 // cuDNN's fused SDPA (the vendor rows), on the same inputs and reference.
                                 "cudnn:full", "cudnn:causal", "cudnn:sliding:64", "cudnn:alibi", "cudnn:softcap:5"};

constexpr double kLseTolerance = 1e-2;  ///< absolute, natural-log units
constexpr double kMapTolerance = 1e-4;  ///< relative to the largest reference value

double tolerance(GpuDType t) { return t == GpuDType::BF16 ? 1e-2 : 5e-3; }

/// Built-in variants by name, plus two that need T: random jagged documents and a random block list.
Result<VariantSpec> makeVariant(const std::string& name, int64_t T, std::mt19937_64& rng) {
    if (name == "jagged") {
        VariantSpec v;
        v.kind = VariantKind::Document;
        v.label = "document(jagged)";
        std::uniform_int_distribution<int> step(0, 9);
        int32_t doc = 0;
        for (int64_t t = 0; t < T; ++t) {
            if (step(rng) == 0) ++doc;  // new document with probability 1/10
            v.documentIds.push_back(doc);
        }
        return v;
    }
    if (name == "blocks") {
        VariantSpec v;
        v.kind = VariantKind::BlockSparse;
        v.label = "blocks(random)";
        const int64_t nb = (T + v.blockSize - 1) / v.blockSize;
        auto flags = std::make_shared<std::vector<uint8_t>>(size_t(nb * nb));
        std::bernoulli_distribution keep(0.5);
        for (int64_t i = 0; i < nb; ++i)
            for (int64_t j = 0; j < nb; ++j) (*flags)[size_t(i * nb + j)] = (i == j || keep(rng)) ? 1 : 0;
        v.blocks = flags;
        return v;
    }
    return parseVariant(name);
}

struct Errors {
    double out = 0, lse = 0;
    bool nan = false;
};

Errors compare(const std::vector<float>& gpuOut, const std::vector<float>& gpuLse, const VariantReference& ref,
               bool checkLse) {
    Errors e;
    double num = 0, den = 0;
    for (size_t i = 0; i < gpuOut.size(); ++i) {
        if (!std::isfinite(gpuOut[i])) e.nan = true;
        const double d = double(gpuOut[i]) - ref.out[i];
        num += d * d;
        den += ref.out[i] * ref.out[i];
    }
    e.out = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    if (!checkLse) return e;
    for (size_t i = 0; i < gpuLse.size(); ++i) {
        if (std::isnan(gpuLse[i])) e.nan = true;
        if (std::isinf(ref.lse[i])) {
            if (!(std::isinf(gpuLse[i]) && gpuLse[i] < 0)) e.lse = std::numeric_limits<double>::infinity();
        } else {
            e.lse = std::max(e.lse, std::fabs(double(gpuLse[i]) - ref.lse[i]));
        }
    }
    return e;
}

void addLine(SelfTestReport& report, bool ok, const std::string& text) {
    ++report.cases;
    if (!ok) ++report.failures;
    report.lines.push_back(std::string(ok ? "PASS  " : "FAIL  ") + text);
}

/// One attention case; returns false only on an engine error that stops the run.
Status runCase(CudaEngine& engine, const std::string& name, const Shape& s, GpuDType dtype, int D, std::mt19937_64& rng,
               SelfTestReport& report) {
    auto vr = makeVariant(name, s.tokens, rng);
    if (!vr) return vr.status();
    const VariantSpec& v = *vr;
    if (v.impl == VariantImpl::Cudnn) {
        // Without cuDNN the vendor rows cannot run: say so once per variant, not as a failure.
        const VendorLibraryInfo cudnn = probeCudnn();
        if (!cudnn.available) {
            const std::string line = "SKIP  " + v.label + ": " + cudnn.reason;
            if (std::find(report.lines.begin(), report.lines.end(), line) == report.lines.end())
                report.lines.push_back(line);
            return {};
        }
    }
    const bool decode = v.kind == VariantKind::Decode;
    const bool linear = v.kind == VariantKind::LinearAttention;
    AttentionProblem p;
    p.batch = s.batch, p.heads = s.heads, p.kvHeads = s.kvHeads, p.tokens = s.tokens, p.headDim = D, p.dtype = dtype;
    p.queryTokens = decode ? 1 : s.tokens;
    const size_t kvCount = size_t(s.batch) * s.kvHeads * s.tokens * D;
    const std::vector<float> q = randomRounded(size_t(s.batch) * s.heads * p.queryTokens * D, dtype, rng);
    const std::vector<float> k = randomRounded(kvCount, dtype, rng), vv = randomRounded(kvCount, dtype, rng);
    char desc[160];
    std::snprintf(desc, sizeof desc, "%-22s %-4s D=%-3d B=%d H=%d Hkv=%d T=%-4lld", v.label.c_str(),
                  gpu::dtypeLabel(dtype), D, s.batch, s.heads, s.kvHeads, static_cast<long long>(s.tokens));
    auto buffers = engine.upload(p, q, k, vv);
    if (!buffers) return buffers.status();
    Status st = engine.poisonOutput(**buffers);
    if (st) {
        auto launched = engine.run(v, **buffers);
        st = launched ? engine.synchronize() : launched.status();
    }
    std::vector<float> out, lse;
    if (st) st = engine.download(**buffers, out, lse);
    if (!st) {
        addLine(report, false, std::string(desc) + "  error: " + st.message());
        return st.code() == ErrorCode::Device ? st : Status{};  // a device error poisons the context
    }
    VariantProblem vp;
    vp.batch = s.batch, vp.heads = s.heads, vp.kvHeads = s.kvHeads, vp.tokens = s.tokens, vp.headDim = D;
    auto ref = variantReferenceAttention(v, vp, q, k, vv);
    if (!ref) return ref.status();
    const Errors e = compare(out, lse, *ref, !linear);
    bool ok = !e.nan && e.out <= tolerance(dtype) && e.lse <= kLseTolerance;
    std::string blocks;
    if (!linear && !decode && v.impl == VariantImpl::Builtin) {  // cuDNN has no BlockMask to compare
        // The GPU BlockMask must compute exactly the blocks the CPU classification finds non-empty.
        auto gpuBlocks = engine.computedBlocks(v, **buffers);
        const int64_t nb = (s.tokens + flex::kMaskBlock - 1) / flex::kMaskBlock;
        const long long cpuBlocks = std::llround(blockDensity(v, s.tokens) * double(nb * nb));
        const bool same = gpuBlocks && *gpuBlocks == cpuBlocks;
        ok = ok && same;
        blocks =
            "  blocks " + (gpuBlocks ? std::to_string(*gpuBlocks) : std::string("?")) + "/" + std::to_string(cpuBlocks);
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "  err %.2e (tol %.0e)  lse %.1e%s", e.out, tolerance(dtype), e.lse,
                  e.nan ? "  NaN!" : "");
    addLine(report, ok, std::string(desc) + tail + blocks);
    return {};
}

/// GPU map and block mass of one head vs the float64 brute force.
Status runAnalysisCase(CudaEngine& engine, const std::string& name, int64_t T, int d, MapRect rect, int width,
                       int height, std::mt19937_64& rng, SelfTestReport& report, bool learnedSink = false,
                       bool excludeSinks = true) {
    auto v = makeVariant(name, T, rng);
    if (!v) return v.status();
    const float scale = 1.0f / std::sqrt(float(d));
    auto spec = referenceSpec(*v, T, 1, 4, scale);
    if (!spec) return spec.status();
    if (name == "causal" && excludeSinks) spec->mask.excludedKeys = {0, 3};  // sinks excluded and renormalised
    if (learnedSink) spec->sinkLogit = std::uniform_real_distribution<float>(-1.0f, 3.0f)(rng);  // GPT-OSS
    // Inputs rounded to a 16-bit dtype, as every trace the map reads is (the GPU computes on them as they are).
    const GpuDType dtype = (T + d) % 2 == 0 ? GpuDType::BF16 : GpuDType::F16;
    const std::vector<float> qv = randomRounded(size_t(T) * d, dtype, rng),
                             kv = randomRounded(size_t(T) * d, dtype, rng);
    const MatrixRM q = Eigen::Map<const MatrixRM>(qv.data(), T, d), k = Eigen::Map<const MatrixRM>(kv.data(), T, d);
    auto map = engine.attentionMap(q, k, *spec, rect, width, height);
    auto mass = engine.blockMass(q, k, *spec, 64);
    char desc[160];
    std::snprintf(desc, sizeof desc, "map %-18s T=%-4lld d=%d rect [%lld,%lld)x[%lld,%lld) %dx%d%s", v->label.c_str(),
                  static_cast<long long>(T), d, static_cast<long long>(rect.q0), static_cast<long long>(rect.q1),
                  static_cast<long long>(rect.k0), static_cast<long long>(rect.k1), width, height,
                  learnedSink                         ? " learned sink"
                  : name == "causal" && !excludeSinks ? " no exclusions"
                                                      : "");
    if (!map || !mass) {
        addLine(report, false, std::string(desc) + "  error: " + (map ? mass.message() : map.message()));
        return {};
    }
    const MapReference ref = mapReference(q, k, *spec, rect, map->width, map->height, 64);
    const double meanErr = maxRelativeError(map->mean, ref.mean);
    const double maxErr = maxRelativeError(map->max, ref.max);
    const double allowedErr = maxRelativeError(map->allowed, ref.allowed);
    const double massErr = maxRelativeError(*mass, ref.blockMass);
    const bool ok =
        meanErr <= kMapTolerance && maxErr <= kMapTolerance && allowedErr <= kMapTolerance && massErr <= kMapTolerance;
    char tail[160];
    std::snprintf(tail, sizeof tail, "  mean %.1e max %.1e allowed %.1e blockmass %.1e (tol %.0e)", meanErr, maxErr,
                  allowedErr, massErr, kMapTolerance);
    addLine(report, ok, std::string(desc) + tail);
    return {};
}

/// Worst error of one GPU-analysed head against the CPU analysis, over the reported metrics.
struct HeadErrors {
    double stats = 0;                      ///< entropy, distance, first/recent mass, role scores: absolute
    double alpha = 0;                      ///< sink scores, absolute
    double blocks = 0;                     ///< block mass, relative to max(1, mass) (a block holds up to B rows' mass)
    double density = 0;                    ///< gamma coverage density, absolute
    double recall = 0;                     ///< candidate mask recall, absolute
    double outputError = 0;                ///< candidate mask output error, absolute
    double learnedSink = 0;                ///< learned sink share, absolute (1 when only one backend has the sink)
    int masksCompared = 0, masksTied = 0;  ///< a mask chosen differently on a near-tie is not compared
    std::string worst;
};

void note(double& slot, double value, const char* name, HeadErrors& e, double& worstScaled, double tol) {
    value = std::isfinite(value) ? value : std::numeric_limits<double>::infinity();
    slot = std::max(slot, value);
    if (value / tol > worstScaled) worstScaled = value / tol, e.worst = name;
}

constexpr double kStatsTolerance = 2e-4;        ///< fp32 sums in another order, tensor-core S
constexpr double kDensityTolerance = 2e-2;      ///< a block on a near-tie may flip
constexpr double kOutputErrorTolerance = 2e-2;  ///< P rounded to 16 bits before P·V (FlashAttention does too)

HeadErrors compareHeads(const HeadAnalysis& g, const HeadAnalysis& c) {
    HeadErrors e;
    double w = 0;
    auto d = [](double a, double b) { return std::fabs(a - b); };
    note(e.stats, d(g.stats.entropy, c.stats.entropy) / std::max(1.0, std::fabs(c.stats.entropy)), "entropy", e, w,
         kStatsTolerance);
    note(e.stats, d(g.stats.meanDistance, c.stats.meanDistance) / std::max(1.0, c.stats.meanDistance), "distance", e, w,
         kStatsTolerance);
    note(e.stats, d(g.stats.firstTokenMass, c.stats.firstTokenMass), "first", e, w, kStatsTolerance);
    note(e.stats, d(g.stats.recentMass, c.stats.recentMass), "recent", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.previousToken, c.roles.previousToken), "prev", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.nextToken, c.roles.nextToken), "next", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.duplicateToken, c.roles.duplicateToken), "duplicate", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.induction, c.roles.induction), "induction", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.inductionRepeat, c.roles.inductionRepeat), "repeat", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.documentMass, c.roles.documentMass), "document", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.localMass, c.roles.localMass), "local", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.slashScore, c.roles.slashScore), "slash", e, w, kStatsTolerance);
    note(e.stats, d(g.roles.verticalScore, c.roles.verticalScore), "vertical", e, w, kStatsTolerance);
    for (size_t j = 0; j < c.sinks.alpha.size() && j < g.sinks.alpha.size(); ++j)
        note(e.alpha, d(g.sinks.alpha[j], c.sinks.alpha[j]), "alpha", e, w, kStatsTolerance);
    if (g.sinks.alpha.size() != c.sinks.alpha.size()) note(e.alpha, 1.0, "alpha size", e, w, kStatsTolerance);
    note(e.learnedSink,
         g.sinks.learnedSink != c.sinks.learnedSink ? 1.0 : d(g.sinks.learnedSinkShare, c.sinks.learnedSinkShare),
         "learned sink share", e, w, kStatsTolerance);
    for (size_t b = 0; b < c.blocks.size() && b < g.blocks.size(); ++b) {
        for (size_t x = 0; x < c.blocks[b].mass.size() && x < g.blocks[b].mass.size(); ++x)
            note(e.blocks, d(g.blocks[b].mass[x], c.blocks[b].mass[x]) / std::max(1.0, double(c.blocks[b].mass[x])),
                 "block mass", e, w, kStatsTolerance);
        for (size_t x = 0; x < c.blocks[b].coverage.size() && x < g.blocks[b].coverage.size(); ++x)
            note(e.density, d(g.blocks[b].coverage[x].density, c.blocks[b].coverage[x].density), "density", e, w,
                 kDensityTolerance);
    }
    if (g.masks.size() != c.masks.size()) note(e.recall, 1.0, "mask count", e, w, kStatsTolerance);
    for (size_t m = 0; m < c.masks.size() && m < g.masks.size(); ++m) {
        // Vertical-slash and top-k pick keys / blocks by mass: equal masses (uniform heads) can
        // pick differently on the two backends. The same number of kept pairs = the same pick
        // here (the picks are prefixes of the same order); otherwise the mask is not compared.
        if (g.masks[m].keptFraction != c.masks[m].keptFraction) {
            ++e.masksTied;
            continue;
        }
        ++e.masksCompared;
        note(e.recall, d(g.masks[m].recall, c.masks[m].recall), "recall", e, w, 10 * kStatsTolerance);
        note(e.outputError, d(g.masks[m].outputError, c.masks[m].outputError), "output error", e, w,
             kOutputErrorTolerance);
    }
    return e;
}

/// The profiler's accuracy with a learned sink: the forward kernel's O and L (no sink) rescaled by
/// applySinkToOutput against the CPU reference attention with the sink, per head.
Status runSinkOutputCase(CudaEngine& engine, const std::string& name, int64_t T, int d, GpuDType dtype,
                         std::mt19937_64& rng, SelfTestReport& report) {
    constexpr int kHeads = 4;
    auto v = makeVariant(name, T, rng);
    if (!v) return v.status();
    AttentionProblem p;
    p.heads = p.kvHeads = kHeads, p.tokens = T, p.headDim = d, p.dtype = dtype;
    p.scale = 1.0f / std::sqrt(float(d));
    const size_t n = size_t(kHeads) * size_t(T) * size_t(d);
    const std::vector<float> q = randomRounded(n, dtype, rng), k = randomRounded(n, dtype, rng),
                             vv = randomRounded(n, dtype, rng);
    auto buffers = engine.upload(p, q, k, vv);
    if (!buffers) return buffers.status();
    std::vector<float> out, lse;
    auto launched = engine.run(*v, **buffers);
    Status st = launched ? engine.synchronize() : launched.status();
    if (st) st = engine.download(**buffers, out, lse);
    char desc[160];
    std::snprintf(desc, sizeof desc, "sink output %-12s %-4s D=%-3d H=%d T=%-4lld", v->label.c_str(),
                  gpu::dtypeLabel(dtype), d, kHeads, static_cast<long long>(T));
    if (!st) {
        addLine(report, false, std::string(desc) + "  error: " + st.message());
        return st.code() == ErrorCode::Device ? st : Status{};
    }
    double err = 0, share = 0;
    for (int h = 0; h < kHeads; ++h) {
        auto spec = referenceSpec(*v, T, h, kHeads, p.scale);
        if (!spec) return spec.status();
        spec->sinkLogit = std::uniform_real_distribution<float>(-1.0f, 3.0f)(rng);
        const size_t at = size_t(h) * size_t(T) * size_t(d);
        MatrixRM o = Eigen::Map<const MatrixRM>(out.data() + at, T, d);
        applySinkToOutput(o, lse.data() + size_t(h) * size_t(T), spec->sinkLogit);
        const MatrixRM qh = Eigen::Map<const MatrixRM>(q.data() + at, T, d),
                       kh = Eigen::Map<const MatrixRM>(k.data() + at, T, d),
                       vh = Eigen::Map<const MatrixRM>(vv.data() + at, T, d);
        auto ref = referenceAttention(qh, kh, vh, *spec);
        if (!ref) return ref.status();
        const double norm = ref->out.cast<double>().norm();
        err = std::max(err, norm > 0 ? (o.cast<double>() - ref->out.cast<double>()).norm() / norm : 0.0);
        for (float l : ref->lse) share += sinkShareOfRow(l, spec->sinkLogit) / double(kHeads * T);
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "  err %.2e (tol %.0e)  mean sink share %.2f", err, tolerance(dtype), share);
    addLine(report, std::isfinite(err) && err <= tolerance(dtype), std::string(desc) + tail);
    return {};
}

/// analyzeLayerSums + finishHead on a synthetic trace (planted sinks, previous-token, induction,
/// documents) vs the CPU analysis of every head, on the trace's own rounded values.
Status runLayerCase(CudaEngine& engine, int64_t T, int d, int kvGroups, DType dtype, bool excludeSinks, uint64_t seed,
                    SelfTestReport& report, bool learnedSinks = false) {
    SynthOptions so;
    so.tokens = T, so.layers = 1, so.headDim = d, so.kvGroups = kvGroups, so.dtype = dtype, so.seed = seed;
    auto made = makeSyntheticTrace(so);
    if (!made) return made.status();
    char path[] = "/tmp/attnscope-selftest-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return Status{ErrorCode::IoError, "self-test: cannot create a temporary trace file in /tmp"};
    close(fd);
    const std::string file = std::string(path) + ".attn.safetensors";
    std::remove(path);
    ATTNSCOPE_TRY_STATUS(made->first.write(file));
    auto opened = Trace::open(file);
    std::remove(file.c_str());
    if (!opened) return opened.status();
    const Trace& trace = **opened;
    const LayerConfig& cfg = trace.config(0);
    HeadContext ctx;
    ctx.tokenIds = trace.metadata().tokenIds;
    ctx.documents = trace.metadata().documents;
    HeadAnalysisOptions options;
    options.masks.window = 32, options.masks.sinkWindow = 32, options.masks.verticalCount = 16;
    options.masks.slashCount = 16, options.masks.forcedVertical = 2, options.masks.forcedSlash = 4;
    options.masks.estimateQueries = 16, options.masks.topKBlocks = 2;
    std::vector<AttentionSpec> specs;
    for (int h = 0; h < cfg.heads; ++h) {
        AttentionSpec spec = specForLayer(cfg, h);
        if (excludeSinks) spec = specWithoutKeys(spec, {0, T / 3});
        if (learnedSinks) {
            // GPT-OSS: one logit per head, here the head's median row lse without it, so the sink
            // takes about half of a typical row's mass whatever the synthetic head's scale.
            auto q = trace.head(0, h, Which::Q), k = trace.head(0, h, Which::K);
            if (!q || !k) return !q ? q.status() : k.status();
            auto lse = rowLogSumExp(q->m, k->m, spec, 0, T);
            if (!lse) return lse.status();
            std::vector<float> finite;
            for (float x : *lse)
                if (std::isfinite(x)) finite.push_back(x);
            std::nth_element(finite.begin(), finite.begin() + std::ptrdiff_t(finite.size() / 2), finite.end());
            spec.sinkLogit = finite.empty() ? 0.0f : finite[finite.size() / 2];
        }
        specs.push_back(spec);
    }
    auto sums = engine.analyzeLayerSums(trace, 0, specs, ctx, options, -1, {});
    char desc[160];
    std::snprintf(desc, sizeof desc, "analysis layer %s T=%-4lld d=%-3d H=%d group=%d%s%s", dtypeName(dtype),
                  static_cast<long long>(T), d, cfg.heads, kvGroups, excludeSinks ? " sinks excluded" : "",
                  learnedSinks ? " learned sinks" : "");
    if (!sums) {
        addLine(report, false, std::string(desc) + "  error: " + sums.message());
        return sums.status().code() == ErrorCode::Device ? sums.status() : Status{};
    }
    HeadErrors worst;
    std::string worstAt;
    double worstScaled = -1;
    int compared = 0, tied = 0;
    for (int h = 0; h < cfg.heads; ++h) {
        auto g = finishHead((*sums)[size_t(h)], specs[size_t(h)], ctx, options);
        auto q = trace.head(0, h, Which::Q), k = trace.head(0, h, Which::K), v = trace.head(0, h, Which::V);
        if (!g || !q || !k || !v) return !g ? g.status() : !q ? q.status() : !k ? k.status() : v.status();
        auto c = analyzeHead(q->m, k->m, v->m, specs[size_t(h)], ctx, options);
        if (!c) return c.status();
        const HeadErrors e = compareHeads(*g, *c);
        compared += e.masksCompared, tied += e.masksTied;
        const double scaled =
            std::max({e.stats / kStatsTolerance, e.alpha / kStatsTolerance, e.blocks / kStatsTolerance,
                      e.learnedSink / kStatsTolerance, e.density / kDensityTolerance, e.recall / (10 * kStatsTolerance),
                      e.outputError / kOutputErrorTolerance});
        if (scaled > worstScaled)
            worstScaled = scaled, worst = e, worstAt = "head " + std::to_string(h) + " " + e.worst;
    }
    char tail[256];
    std::snprintf(tail, sizeof tail,
                  "  stats %.1e alpha %.1e blocks %.1e lsink %.1e (tol %.0e) density %.1e (tol %.0e) "
                  "recall %.1e outErr %.1e (tol %.0e), masks compared %d (tied %d)  worst: %s",
                  worst.stats, worst.alpha, worst.blocks, worst.learnedSink, kStatsTolerance, worst.density,
                  kDensityTolerance, worst.recall, worst.outputError, kOutputErrorTolerance, compared, tied,
                  worstAt.c_str());
    // Most masks must be compared (window and sink+window never tie): a backend that always
    // picked differently would fail here.
    addLine(report, worstScaled <= 1.0 && compared >= 2 * tied, std::string(desc) + tail);
    return {};
}

/// One injected fault (fault_injection.h): `job` runs with `site` armed to fail at its n-th call
/// and must fail with the injected error named in its message; then the same job runs again on
/// the same engine and must pass its ordinary checks (the engine stays usable).
Status runFaultCase(gpu::FaultSite site, int n, const std::function<Status(SelfTestReport&)>& job,
                    SelfTestReport& report) {
    SelfTestReport faulty;
    gpu::armFault(site, n);
    const Status st = job(faulty);
    gpu::disarmFaults();
    const std::string tag =
        std::string("[injected: ATTNSCOPE_INJECT_FAULT=") + gpu::faultSiteName(site) + ":" + std::to_string(n) + "]";
    std::string message = st.ok() ? "" : st.message();
    for (const std::string& line : faulty.lines)
        if (line.find(tag) != std::string::npos) message = line;
    const bool failedAsInjected = faulty.failures >= 1 && message.find(tag) != std::string::npos;
    addLine(report, failedAsInjected,
            std::string("fault ") + gpu::faultSiteName(site) + ":" + std::to_string(n) + " -> " +
                (message.empty() ? "the job did not fail" : message));
    // The next job on the same engine: its own PASS/FAIL lines.
    return job(report);
}

/// CUPTI refused (cupti-metrics, the ERR_NVGPUCTRPERM path): a profile with --metrics still
/// times the variant, and its metrics say why they are missing; the next profile, unarmed,
/// collects them (or says the real reason, on a machine that restricts counters).
void runMetricsFaultCase(SelfTestReport& report) {
    auto backend = createGpuProfilerBackend();
    if (!backend) {
        addLine(report, false, "fault cupti-metrics:1 -> no GPU profiler backend: " + backend.message());
        return;
    }
    ProfileRequest req;
    ShapeSource shape;
    shape.heads = shape.kvHeads = 4;
    shape.tokens = 1024;
    shape.headDim = 64;
    req.shapes = {shape};
    req.variants = {"causal"};
    req.backend = BackendChoice::Gpu;
    req.metrics = true;
    req.warmup = 1;
    req.stop.minSamples = req.stop.maxSamples = 3;
    req.accuracy = false;
    const std::string tag = "[injected: ATTNSCOPE_INJECT_FAULT=cupti-metrics:1]";
    for (const bool armed : {true, false}) {
        if (armed) gpu::armFault(gpu::FaultSite::CuptiMetrics, 1);
        auto r = runProfile(req, backend->get(), {}, {});
        gpu::disarmFaults();
        const VariantResult* v =
            r && !r->shapes.empty() && !r->shapes[0].variants.empty() ? &r->shapes[0].variants[0] : nullptr;
        const bool timed = v && v->error.empty() && !v->samples.empty();
        const std::string why = v ? v->metrics.reason : r ? std::string("no variant row") : r.message();
        const bool injected = why.find(tag) != std::string::npos;
        if (armed)
            addLine(report, timed && !v->metrics.collected && injected,
                    std::string("fault cupti-metrics:1 -> ") + (timed ? "timed; metrics: " : "not timed; ") + why);
        else
            addLine(report, timed && (v->metrics.collected || !injected),
                    std::string("profile --metrics after the CUPTI fault: ") +
                        (timed ? "timed; metrics " : "not timed; ") +
                        (v && v->metrics.collected ? "collected (" + std::to_string(v->metrics.values.size()) + ")"
                                                   : "not collected: " + why));
    }
}

/// Each fault site, then the same job without a fault (part of every run; alone with
/// ATTNSCOPE_SELFTEST=faults).
Status runFaultCases(CudaEngine& cuda, std::mt19937_64& rng, SelfTestReport& report) {
    auto profileJob = [&](SelfTestReport& r) {
        return runCase(cuda, "sliding:64", kShapes[0], GpuDType::BF16, 64, rng, r);
    };
    auto mapJob = [&](SelfTestReport& r) {
        return runAnalysisCase(cuda, "causal", 300, 64, {0, 300, 0, 300}, 37, 23, rng, r);
    };
    auto layerJob = [&](SelfTestReport& r) { return runLayerCase(cuda, 300, 64, 2, DType::F16, false, 7, r); };
    ATTNSCOPE_TRY_STATUS(runFaultCase(gpu::FaultSite::ProfileLaunch, 1, profileJob, report));
    ATTNSCOPE_TRY_STATUS(runFaultCase(gpu::FaultSite::MapPass, 1, mapJob, report));
    ATTNSCOPE_TRY_STATUS(runFaultCase(gpu::FaultSite::AnalysisUpload, 2, layerJob, report));  // K of the layer
    ATTNSCOPE_TRY_STATUS(runFaultCase(gpu::FaultSite::AnalysisLaunch, 2, layerJob, report));  // the second pass
    runMetricsFaultCase(report);
    return {};
}

bool faultSelfTestOnly() {
    const char* only = std::getenv("ATTNSCOPE_SELFTEST");
    return only && std::string(only) == "faults";
}

}  // namespace

Result<SelfTestReport> runGpuSelfTest(bool quick) {
    std::string reason;
    auto engine = gpu::createCudaEngine(&reason);
    if (!engine) return Status{ErrorCode::Unsupported, reason};
    auto& cuda = static_cast<CudaEngine&>(*engine);
    if (!cuda.info().available) return Status{ErrorCode::Unsupported, cuda.info().reason};
    std::mt19937_64 rng(std::random_device{}());
    SelfTestReport report;
    if (userVariantSelfTestOnly()) {  // ATTNSCOPE_SELFTEST=user
        ATTNSCOPE_TRY_STATUS(runUserVariantSelfTest(cuda, quick, rng, report));
        return report;
    }
    if (faultSelfTestOnly()) {  // ATTNSCOPE_SELFTEST=faults
        ATTNSCOPE_TRY_STATUS(runFaultCases(cuda, rng, report));
        return report;
    }
    if (const VendorLibraryInfo cudnn = probeCudnn(); cudnn.available)
        report.lines.push_back("INFO  cudnn:* variants run cuDNN " + cudnn.version + " (" + cudnn.path + ")");
    const GpuDType dtypes[] = {GpuDType::BF16, GpuDType::F16};
    const int dims[] = {64, 128};
    const int nVariants = int(sizeof kVariants / sizeof kVariants[0]);
    const int nShapes = quick ? kQuickShapes : int(sizeof kShapes / sizeof kShapes[0]);
    for (int vi = 0; vi < nVariants; ++vi)
        for (int ti = 0; ti < 2; ++ti)
            for (int di = 0; di < 2; ++di) {
                // Quick: each variant meets every quick shape once over its 4 dtype × dim cases.
                for (int si = 0; si < nShapes; ++si) {
                    if (quick && si != (vi + 2 * ti + di) % kQuickShapes) continue;
                    Status st = runCase(cuda, kVariants[vi], kShapes[si], dtypes[ti], dims[di], rng, report);
                    if (!st) return st;
                }
            }
    // Decode with several key slices merged in the kernel (T no multiple of 64) at GQA 8, 2 and 32
    // (two chunks of 16 query heads per kv head); linear attention over 16 chunks of 64 tokens.
    const Shape longShapes[] = {{1, 16, 2, 1500}, {2, 6, 3, 1000}, {1, 32, 1, 777}, {1, 4, 2, 1000}};
    for (const Shape& s : longShapes)
        for (const char* name : {"decode", "linear", "linear:0.05"}) {
            if (name[0] == 'l' && s.heads * s.batch > 4) continue;  // the float64 reference is O(T²) per head
            for (const GpuDType t : dtypes)
                for (const int d : dims) ATTNSCOPE_TRY_STATUS(runCase(cuda, name, s, t, d, rng, report));
        }
    const char* const mapVariants[] = {"causal", "sliding:50", "document:3", "softcap:5", "alibi", "blocks", "full"};
    for (const char* name : mapVariants) {
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 300, 64, {0, 300, 0, 300}, 37, 23, rng, report));
        // Aligned grids (cells of whole multiples of 16 rows and 8 keys) take the register-fragment
        // pooling (map_mma.cu): a whole sequence that is no multiple of 64, and a zoomed rect.
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 336, 64, {0, 336, 0, 336}, 42, 21, rng, report));
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 400, 128, {48, 336, 24, 280}, 32, 9, rng, report));
        if (!quick)
            ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 300, 128, {100, 260, 40, 300}, 160, 300, rng, report));
    }
    // The wgmma map passes (kernels/sm90/map_sm90.cu, on Hopper at d = 64 and 128; elsewhere these
    // run the other kernels): CTAs of 128 rows stepping over 128 keys, so several row and key
    // tiles, T no multiple of 128 (ragged last tiles), aligned grids (lse + pooling on wgmma), a
    // ragged grid (wgmma lse, wmma pooling), zoomed rects whose edges are no tile multiple, causal
    // without excluded keys (whole tiles unmasked), non-causal, a window and a score mod.
    for (const char* name : {"causal", "full", "sliding:300", "alibi"}) {
        // The first two: "causal" without the sink exclusion (learnedSink false, excludeSinks false).
        ATTNSCOPE_TRY_STATUS(
            runAnalysisCase(cuda, name, 1040, 64, {0, 1040, 0, 1040}, 130, 65, rng, report, false, false));
        ATTNSCOPE_TRY_STATUS(
            runAnalysisCase(cuda, name, 1000, 128, {0, 1000, 0, 1000}, 100, 40, rng, report, false, false));
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 1536, 128, {136, 1416, 8, 1288}, 160, 80, rng, report));
        // Cells of whole multiples of 128 keys: pass 2 on wgmma too (mapSm90PoolTakes), a whole
        // sequence (256-key cells) and a zoomed rect (128-key cells) past the last tile of T.
        ATTNSCOPE_TRY_STATUS(
            runAnalysisCase(cuda, name, 2560, 64, {0, 2560, 0, 2560}, 10, 160, rng, report, false, false));
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 1200, 128, {64, 1088, 128, 1152}, 8, 64, rng, report));
    }
    // Learned sinks (GPT-OSS): the lse passes fold the sink logit in (pass-kernel lse, never the
    // forward kernel's), so maps and block mass take exp(s - L').
    for (const char* name : {"causal", "sliding:50", "full"}) {
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 300, 64, {0, 300, 0, 300}, 37, 23, rng, report, true));
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 400, 128, {48, 336, 24, 280}, 32, 9, rng, report, true));
    }
    // Whole-layer analysis (tensor-core passes + finishHead) against the CPU analysis: T not a
    // multiple of 64, GQA, a head dim that is padded (80), sinks excluded.
    struct LayerCase {
        int64_t T;
        int d, groups;
        DType dtype;
        bool excludeSinks;
    };
    const LayerCase layerCases[] = {{300, 64, 1, DType::F16, false},
                                    {257, 128, 2, DType::BF16, false},
                                    {200, 80, 1, DType::BF16, true},
                                    {640, 64, 4, DType::F16, false},
                                    {1000, 128, 1, DType::BF16, true}};
    const int nLayerCases = quick ? 2 : int(sizeof layerCases / sizeof layerCases[0]);
    for (int c = 0; c < nLayerCases; ++c) {
        const LayerCase& lc = layerCases[c];
        ATTNSCOPE_TRY_STATUS(runLayerCase(cuda, lc.T, lc.d, lc.groups, lc.dtype, lc.excludeSinks, rng(), report));
    }
    // The profiler's accuracy with a learned sink (forward output rescaled by exp(L - L')).
    for (const char* name : {"causal", "sliding:64"})
        ATTNSCOPE_TRY_STATUS(runSinkOutputCase(cuda, name, 300, 64, GpuDType::BF16, rng, report));
    // Learned sinks through the whole layer (lse passes, stats, masks, finishHead's sink share).
    ATTNSCOPE_TRY_STATUS(runLayerCase(cuda, 300, 64, 2, DType::BF16, false, rng(), report, true));
    ATTNSCOPE_TRY_STATUS(runLayerCase(cuda, 257, 128, 1, DType::F16, false, rng(), report, true));
    // User variants (NVRTC): the example programs against their references and built-in twins.
    ATTNSCOPE_TRY_STATUS(runUserVariantSelfTest(cuda, quick, rng, report));
    // Injected faults (fault_injection.h): each fails as the real error would, and the engine
    // runs the same job cleanly after it.
    ATTNSCOPE_TRY_STATUS(runFaultCases(cuda, rng, report));
    return report;
}

}  // namespace attnscope
