// The GPU self-test of user variants (runUserVariantSelfTest): every example program in
// resources/variants against the float64 CPU reference of the same program, against its built-in
// twin run on the GPU on the same inputs, and its BlockMask against the CPU block classification;
// plus what each NVRTC module cost (compiled, loaded from the disk cache, or in memory).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <random>

#include "attnscope/variant_expr.h"
#include "attnscope/variant_twin.h"
#include "cuda_engine.h"
#include "jit_selftest.h"
#include "jit_variant.h"
#include "selftest_reference.h"

namespace attnscope {
namespace {

double tolerance(GpuDType t) { return t == GpuDType::BF16 ? 1e-2 : 5e-3; }
constexpr double kLseTolerance = 1e-2;
/// The program and its twin run the same arithmetic on the same inputs: their outputs may
/// differ only by float rounding of the score mod (tanh.approx, an FMA contracted or not).
constexpr double kTwinTolerance = 2e-3;

std::string variantsDirectory() {
    if (const char* d = std::getenv("ATTNSCOPE_VARIANTS_DIR"); d && *d) return d;
    return "resources/variants";
}

void addLine(SelfTestReport& report, bool ok, const std::string& text) {
    ++report.cases;
    if (!ok) ++report.failures;
    report.lines.push_back(std::string(ok ? "PASS  " : "FAIL  ") + text);
}

struct GpuRun {
    std::vector<float> out, lse;
    long long blocks = -1;
    Status status;
};

GpuRun runOnGpu(gpu::CudaEngine& engine, const VariantSpec& v, GpuBuffers& buffers) {
    GpuRun r;
    r.status = engine.poisonOutput(buffers);
    if (r.status) {
        auto launched = engine.run(v, buffers);
        r.status = launched ? engine.synchronize() : launched.status();
    }
    if (r.status) r.status = engine.download(buffers, r.out, r.lse);
    if (r.status) {
        auto b = engine.computedBlocks(v, buffers);
        if (b)
            r.blocks = *b;
        else
            r.status = b.status();
    }
    return r;
}

/// Relative L2 error of `out` against `ref` and the worst lse difference (both -inf allowed).
std::pair<double, double> errors(const std::vector<float>& out, const std::vector<float>& lse,
                                 const std::vector<double>& refOut, const std::vector<double>& refLse) {
    double num = 0, den = 0, lseErr = 0;
    for (size_t i = 0; i < out.size() && i < refOut.size(); ++i) {
        const double d = double(out[i]) - refOut[i];
        num += std::isfinite(d) ? d * d : INFINITY;
        den += refOut[i] * refOut[i];
    }
    for (size_t i = 0; i < lse.size() && i < refLse.size(); ++i) {
        if (std::isinf(refLse[i])) {
            if (!(std::isinf(lse[i]) && lse[i] < 0)) lseErr = INFINITY;
        } else {
            lseErr = std::max(lseErr, std::fabs(double(lse[i]) - refLse[i]));
        }
    }
    return {den > 0 ? std::sqrt(num / den) : std::sqrt(num), lseErr};
}

void reportTimings(SelfTestReport& report) {
    for (const auto& t : gpu::takeJitTimings()) {
        if (t.source == gpu::JitTiming::Source::Memory) continue;
        char line[200];
        std::snprintf(
            line, sizeof line, "INFO  jit %-26s %s in %.2f ms", t.what.c_str(),
            t.source == gpu::JitTiming::Source::Compiled ? "compiled (NVRTC) and loaded" : "loaded from the disk cache",
            t.seconds * 1e3);
        report.lines.push_back(line);
    }
}

/// One example file on one shape / dtype / head dim.
Status runExample(gpu::CudaEngine& engine, const std::string& file, int batch, int heads, int kvHeads, int64_t T,
                  GpuDType dtype, int D, std::mt19937_64& rng, SelfTestReport& report) {
    auto custom = parseVariant("custom:" + file);
    if (!custom) {
        addLine(report, false, file + ": " + custom.message());
        return {};
    }
    const std::string twinToken = variantTwinToken(file);
    AttentionProblem p;
    p.batch = batch, p.heads = heads, p.kvHeads = kvHeads, p.tokens = T, p.headDim = D, p.dtype = dtype;
    p.queryTokens = T;
    const size_t qn = size_t(batch) * heads * T * D, kvn = size_t(batch) * kvHeads * T * D;
    const auto q = randomRounded(qn, dtype, rng), k = randomRounded(kvn, dtype, rng),
               vv = randomRounded(kvn, dtype, rng);
    auto buffers = engine.upload(p, q, k, vv);
    if (!buffers) return buffers.status();
    const std::string name = file.substr(file.find_last_of('/') + 1);
    char desc[200];
    std::snprintf(desc, sizeof desc, "user %-24s %-4s D=%-3d B=%d H=%d Hkv=%d T=%-5lld", name.c_str(),
                  gpu::dtypeLabel(dtype), D, batch, heads, kvHeads, static_cast<long long>(T));
    const GpuRun mine = runOnGpu(engine, *custom, **buffers);
    if (!mine.status) {
        addLine(report, false, std::string(desc) + "  error: " + mine.status.message());
        return mine.status.code() == ErrorCode::Device ? mine.status : Status{};
    }
    VariantProblem vp;
    vp.batch = batch, vp.heads = heads, vp.kvHeads = kvHeads, vp.tokens = T, vp.headDim = D;
    auto ref = variantReferenceAttention(*custom, vp, q, k, vv);
    if (!ref) return ref.status();
    const auto [err, lseErr] = errors(mine.out, mine.lse, ref->out, ref->lse);
    const int64_t nb = (T + flex::kMaskBlock - 1) / flex::kMaskBlock;
    const long long cpuBlocks = std::llround(blockDensity(*custom, T) * double(nb * nb));
    bool ok = err <= tolerance(dtype) && lseErr <= kLseTolerance && mine.blocks == cpuBlocks;
    char tail[200];
    std::snprintf(tail, sizeof tail, "  err %.2e (tol %.0e) lse %.1e blocks %lld/%lld", err, tolerance(dtype), lseErr,
                  mine.blocks, cpuBlocks);
    std::string text = std::string(desc) + tail;
    if (!twinToken.empty()) {
        auto twin = parseVariant(twinToken);
        if (!twin) return twin.status();
        const GpuRun other = runOnGpu(engine, *twin, **buffers);
        if (!other.status) return other.status;
        double diff = 0;
        for (size_t i = 0; i < other.out.size(); ++i)
            diff = std::max(diff, double(std::fabs(other.out[i] - mine.out[i])));
        ok = ok && diff <= kTwinTolerance && other.blocks == mine.blocks;
        char twinText[120];
        std::snprintf(twinText, sizeof twinText, "  vs %s on the GPU: max |dO| %.1e (tol %.0e) blocks %lld",
                      twinToken.c_str(), diff, kTwinTolerance, other.blocks);
        text += twinText;
    }
    addLine(report, ok, text);
    return {};
}

}  // namespace

Status runUserVariantSelfTest(gpu::CudaEngine& engine, bool quick, std::mt19937_64& rng, SelfTestReport& report) {
    const std::string dir = variantsDirectory();
    std::vector<std::string> files;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            const std::string n = e->d_name;
            if (n.size() > 8 && n.substr(n.size() - 8) == ".attnvar") files.push_back(dir + "/" + n);
        }
        closedir(d);
    }
    std::sort(files.begin(), files.end());
    if (files.empty()) {
        report.lines.push_back("SKIP  user variants: no *.attnvar in " + dir +
                               " (run from the repository root or set ATTNSCOPE_VARIANTS_DIR)");
        return {};
    }
    report.lines.push_back("INFO  user variants: NVRTC kernels cached in " + gpu::jitCacheDirectory());
    (void)gpu::takeJitTimings();
    struct Case {
        int batch, heads, kvHeads;
        int64_t T;
        GpuDType dtype;
        int D;
    };
    // Long enough to cross the 1024 window and prefix; GQA; a ragged last block; both dtypes and dims.
    const Case cases[] = {{1, 4, 2, 1300, GpuDType::BF16, 128},
                          {2, 4, 4, 700, GpuDType::F16, 64},
                          {1, 2, 1, 2100, GpuDType::BF16, 64},
                          {1, 8, 8, 257, GpuDType::F16, 128}};
    const int nCases = quick ? 2 : int(sizeof cases / sizeof cases[0]);
    for (const auto& f : files)
        for (int c = 0; c < nCases; ++c) {
            const Case& x = cases[c];
            ATTNSCOPE_TRY_STATUS(runExample(engine, f, x.batch, x.heads, x.kvHeads, x.T, x.dtype, x.D, rng, report));
            reportTimings(report);
        }
    return {};
}

bool userVariantSelfTestOnly() {
    const char* only = std::getenv("ATTNSCOPE_SELFTEST");
    return only && std::string(only) == "user";
}

}  // namespace attnscope
