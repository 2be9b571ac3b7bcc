// runGpuSelfTest: every variant × dtype × head dim against a float64 CPU reference computed from
// the same rounded inputs, on fresh random data, with poisoned outputs; plus the GPU block mask
// against the CPU block classification and the GPU analysis passes against brute force.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "cuda_engine.h"
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

const char* const kVariants[] = {"full",      "causal",     "sliding:64",          "prefix:48",
                                 "document:3", "jagged",    "dilated:20:3",        "alibi",
                                 "softcap:5",  "relbias:0.05", "blocks",          "linear",
                                 "linear:0.05", "decode",   "sliding:80&document:2", "prefix:32|sliding:16",
                                 "document:3&softcap:5"};

constexpr double kLseTolerance = 1e-2;      ///< absolute, natural-log units
constexpr double kMapTolerance = 1e-4;      ///< relative to the largest reference value
constexpr float kInputSigma = 1.5f;          ///< scores ~ N(0, 2.25): peaky enough to matter

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

std::vector<float> randomRounded(size_t n, GpuDType t, std::mt19937_64& rng) {
    std::normal_distribution<float> nd(0.0f, kInputSigma);
    std::vector<float> x(n);
    for (auto& e : x) e = gpu::roundToDType(nd(rng), t);
    return x;
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
Status runCase(CudaEngine& engine, const std::string& name, const Shape& s, GpuDType dtype, int D,
               std::mt19937_64& rng, SelfTestReport& report) {
    auto vr = makeVariant(name, s.tokens, rng);
    if (!vr) return vr.status();
    const VariantSpec& v = *vr;
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
    if (!linear && !decode) {
        // The GPU BlockMask must compute exactly the blocks the CPU classification finds non-empty.
        auto gpuBlocks = engine.computedBlocks(v, **buffers);
        const int64_t nb = (s.tokens + flex::kMaskBlock - 1) / flex::kMaskBlock;
        const long long cpuBlocks = std::llround(blockDensity(v, s.tokens) * double(nb * nb));
        const bool same = gpuBlocks && *gpuBlocks == cpuBlocks;
        ok = ok && same;
        blocks = "  blocks " + (gpuBlocks ? std::to_string(*gpuBlocks) : std::string("?")) + "/" +
                 std::to_string(cpuBlocks);
    }
    char tail[128];
    std::snprintf(tail, sizeof tail, "  err %.2e (tol %.0e)  lse %.1e%s", e.out, tolerance(dtype), e.lse,
                  e.nan ? "  NaN!" : "");
    addLine(report, ok, std::string(desc) + tail + blocks);
    return {};
}

/// GPU map and block mass of one head vs the float64 brute force.
Status runAnalysisCase(CudaEngine& engine, const std::string& name, int64_t T, int d, MapRect rect, int width,
                       int height, std::mt19937_64& rng, SelfTestReport& report) {
    auto v = makeVariant(name, T, rng);
    if (!v) return v.status();
    const float scale = 1.0f / std::sqrt(float(d));
    auto spec = referenceSpec(*v, T, 1, 4, scale);
    if (!spec) return spec.status();
    if (name == "causal") spec->mask.excludedKeys = {0, 3};  // sinks excluded and renormalised
    std::normal_distribution<float> nd(0.0f, kInputSigma);
    MatrixRM q(T, d), k(T, d);
    for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] = nd(rng), k.data()[i] = nd(rng);
    auto map = engine.attentionMap(q, k, *spec, rect, width, height);
    auto mass = engine.blockMass(q, k, *spec, 64);
    char desc[160];
    std::snprintf(desc, sizeof desc, "map %-18s T=%-4lld d=%d rect [%lld,%lld)x[%lld,%lld) %dx%d", v->label.c_str(),
                  static_cast<long long>(T), d, static_cast<long long>(rect.q0), static_cast<long long>(rect.q1),
                  static_cast<long long>(rect.k0), static_cast<long long>(rect.k1), width, height);
    if (!map || !mass) {
        addLine(report, false, std::string(desc) + "  error: " + (map ? mass.message() : map.message()));
        return {};
    }
    const MapReference ref = mapReference(q, k, *spec, rect, map->width, map->height, 64);
    const double meanErr = maxRelativeError(map->mean, ref.mean);
    const double maxErr = maxRelativeError(map->max, ref.max);
    const double allowedErr = maxRelativeError(map->allowed, ref.allowed);
    const double massErr = maxRelativeError(*mass, ref.blockMass);
    const bool ok = meanErr <= kMapTolerance && maxErr <= kMapTolerance && allowedErr <= kMapTolerance &&
                    massErr <= kMapTolerance;
    char tail[160];
    std::snprintf(tail, sizeof tail, "  mean %.1e max %.1e allowed %.1e blockmass %.1e (tol %.0e)", meanErr, maxErr,
                  allowedErr, massErr, kMapTolerance);
    addLine(report, ok, std::string(desc) + tail);
    return {};
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
    const char* const mapVariants[] = {"causal", "sliding:50", "document:3", "softcap:5", "alibi", "blocks", "full"};
    for (const char* name : mapVariants) {
        ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 300, 64, {0, 300, 0, 300}, 37, 23, rng, report));
        if (!quick)
            ATTNSCOPE_TRY_STATUS(runAnalysisCase(cuda, name, 300, 128, {100, 260, 40, 300}, 160, 300, rng, report));
    }
    return report;
}

}  // namespace attnscope
