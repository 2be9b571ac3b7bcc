// attnscope-cli selftest: checks the engine against float64 brute force. Without --gpu a quick
// CPU check (the tiled reference attention vs brute force over the variants); with --gpu every
// variant × dtype × head dim on the GPU (runGpuSelfTest).
#include <cmath>
#include <cstdio>
#include <random>

#include "attnscope/gpu.h"
#include "attnscope/variants.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "selftest";
constexpr int kExitFailed = 1;
constexpr int kExitNoGpu = kExitIncomplete;
constexpr double kCpuTolerance = 1e-4;  ///< float32 tiled reference vs float64

/// One CPU case: referenceAttention(referenceSpec(v)) vs variantReferenceAttention, one head.
bool cpuCase(const std::string& name, int64_t T, int d, std::mt19937_64& rng, std::string& line) {
    auto v = parseVariant(name);
    if (!v) {
        line = v.message();
        return false;
    }
    const float scale = 1.0f / std::sqrt(float(d));
    auto spec = referenceSpec(*v, T, 0, 1, scale);
    if (!spec) {
        line = spec.message();
        return false;
    }
    std::normal_distribution<float> nd;
    std::vector<float> q(size_t(T * d)), k(q.size()), vv(q.size());
    for (auto* x : {&q, &k, &vv})
        for (auto& e : *x) e = nd(rng);
    auto view = [&](const std::vector<float>& x) { return Eigen::Map<const MatrixRM>(x.data(), T, d); };
    auto fast = referenceAttention(view(q), view(k), view(vv), *spec);
    VariantProblem p;
    p.tokens = T, p.headDim = d, p.scale = scale;
    auto brute = variantReferenceAttention(*v, p, q, k, vv);
    if (!fast || !brute) {
        line = !fast ? fast.message() : brute.message();
        return false;
    }
    double num = 0, den = 0, lseErr = 0;
    for (size_t i = 0; i < brute->out.size(); ++i) {
        const double diff = double(fast->out.data()[i]) - brute->out[i];
        num += std::isfinite(diff) ? diff * diff : INFINITY;
        den += brute->out[i] * brute->out[i];
    }
    for (size_t i = 0; i < brute->lse.size(); ++i)
        if (std::isfinite(brute->lse[i])) lseErr = std::max(lseErr, std::fabs(double(fast->lse[i]) - brute->lse[i]));
    const double err = std::sqrt(num / std::max(den, 1e-300));
    char buf[160];
    std::snprintf(buf, sizeof buf, "%-14s cpu T=%-4lld d=%-3d err %.2e lse %.1e (tol %.0e)", name.c_str(),
                  static_cast<long long>(T), d, err, lseErr, kCpuTolerance);
    line = buf;
    return err <= kCpuTolerance && lseErr <= kCpuTolerance * 10;
}

struct SelftestArgs {
    bool gpu = false, quick = false;
};

/// The command-line step (Verb::parse).
int parseSelftestArgs(Args& args, SelftestArgs& o) {
    args.description(
            "Checks results against float64 brute force on fresh random inputs. --gpu runs every "
            "variant, dtype and head dim on the GPU. Exit status: 0 all passed, 1 a check failed, 2 the "
            "command line is wrong, 3 --gpu without a usable GPU.")
        .flag("gpu", "run the GPU self-test (kernels vs float64 CPU reference)")
        .flag("quick", "fewer shapes per variant");
    if (!args.parse()) return args.exitCode();
    o.gpu = args.has("gpu");
    o.quick = args.has("quick");
    return kRun;
}

int run(Args&, SelftestArgs& o) {
    int passed = 0, failed = 0;
    auto print = [&](bool ok, const std::string& line) {
        (ok ? passed : failed)++;
        std::printf("%s  %s\n", ok ? "PASS" : "FAIL", line.c_str());
    };
    if (o.gpu) {
        auto engine = createGpuEngine();
        const GpuInfo info = engine->info();
        if (!info.available) {
            std::fprintf(stderr, "attnscope-cli %s: no GPU: %s\n", kVerb, info.reason.c_str());
            return kExitNoGpu;
        }
        engine.reset();
        std::printf("GPU: %s (sm_%d%d, %d SMs, %.0f GiB), forward kernel %s\n", info.name.c_str(), info.computeMajor,
                    info.computeMinor, info.smCount, double(info.memoryBytes) / double(1ull << 30),
                    info.forwardKernel.c_str());
        auto report = runGpuSelfTest(o.quick);
        if (!report) {
            if (report.status().code() == ErrorCode::Unsupported) {
                std::fprintf(stderr, "attnscope-cli %s: no GPU: %s\n", kVerb, report.message().c_str());
                return kExitNoGpu;
            }
            return fail(kVerb, report.status());
        }
        for (const std::string& line : report->lines) std::printf("%s\n", line.c_str());
        passed = report->cases - report->failures;
        failed = report->failures;
    } else {
        std::mt19937_64 rng(std::random_device{}());
        const int64_t tokens = o.quick ? 97 : 300;
        for (const char* name : {"full", "causal", "sliding:40", "prefix:30", "document:3", "dilated:10:3", "alibi",
                                 "softcap:5", "relbias:0.05", "sliding:50&document:2"}) {
            std::string line;
            const bool ok = cpuCase(name, tokens, 32, rng, line);
            print(ok, line);
        }
        const auto info = createGpuEngine()->info();
        if (!info.available)
            std::printf("GPU check skipped: %s\n", info.reason.c_str());
        else
            std::printf("GPU present (%s): run with --gpu for the kernel checks\n", info.name.c_str());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed > 0 ? kExitFailed : 0;
}

}  // namespace

ATTNSCOPE_CLI_VERB_PARSED(kVerb, "selftest [--gpu] [--quick]",
                          "check the engine (and with --gpu the kernels) vs float64", SelftestArgs, parseSelftestArgs,
                          run);

}  // namespace attnscope::cli
