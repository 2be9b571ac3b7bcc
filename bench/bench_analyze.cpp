// attnscope-bench-analyze: analyzeTrace time and memory against T on one synthetic layer.
// For T = 2k, 8k, 32k (d = 64, heads: sink, previous-token, induction, noise) it writes a
// synthetic trace, runs the full analysis (every per-head metric, candidate masks, similarity)
// and prints the wall time, user CPU time, time / (H·T²·d) (constant when the cost grows as
// T²·d) and the peak RSS (O(T·d + blocks²): a single T×T float map would be 4·T² bytes).
//   attnscope-bench-analyze [T ...]
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/attention.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"

using namespace attnscope;

namespace {
constexpr int kHeadDim = 64;
constexpr double kNanosecond = 1e9;
constexpr double kMiB = 1024.0 * 1024.0;

double peakRssMiB() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

double userSeconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_utime.tv_sec) + double(u.ru_utime.tv_usec) / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
    std::vector<int64_t> sizes = {2048, 8192, 32768};
    if (argc > 1) {
        sizes.clear();
        for (int i = 1; i < argc; ++i) sizes.push_back(std::atoll(argv[i]));
    }
    const auto dir = std::filesystem::temp_directory_path() / ("attnscope-bench-analyze-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::printf("attnscope-bench-analyze: one layer, d=%d, %d worker threads\n", kHeadDim, workerCount());
    std::printf("%8s %6s %9s %9s %15s %15s %12s %14s %10s\n", "T", "heads", "wall_s", "user_s", "wall/(H*T^2*d)",
                "user/(H*T^2*d)", "peak_RSS_MiB", "T*T_float_MiB", "trace_MiB");
    for (int64_t T : sizes) {
        SynthOptions so;
        so.tokens = T;
        so.layers = 1;
        so.headDim = kHeadDim;
        so.heads = {SynthHead::FirstTokenSink, SynthHead::PreviousToken, SynthHead::Induction, SynthHead::Noise};
        const std::string path = (dir / ("t" + std::to_string(T) + ".attn.safetensors")).string();
        auto truth = writeSyntheticTrace(path, so);
        if (!truth) {
            std::fprintf(stderr, "synth T=%lld: %s\n", static_cast<long long>(T), truth.message().c_str());
            return 1;
        }
        auto trace = Trace::open(path);
        if (!trace) {
            std::fprintf(stderr, "%s\n", trace.message().c_str());
            return 1;
        }
        const double user0 = userSeconds();
        const auto t0 = std::chrono::steady_clock::now();
        auto model = analyzeTrace(**trace);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double user = userSeconds() - user0;
        if (!model) {
            std::fprintf(stderr, "analyze T=%lld: %s\n", static_cast<long long>(T), model.message().c_str());
            return 1;
        }
        const double H = double(so.heads.size());
        const double work = H * double(T) * double(T) * kHeadDim;
        std::printf("%8lld %6d %9.3f %9.3f %12.3f ns %12.3f ns %12.1f %14.1f %10.1f\n", static_cast<long long>(T),
                    int(H), wall, user, wall / work * kNanosecond, user / work * kNanosecond, peakRssMiB(),
                    double(T) * double(T) * 4.0 / kMiB, double((*trace)->fileSize()) / kMiB);
        std::fflush(stdout);
        std::filesystem::remove(path);
    }
    std::filesystem::remove_all(dir);
    return 0;
}
