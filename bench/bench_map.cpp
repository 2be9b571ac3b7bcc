// attnscope-bench-map: the CPU multiscale map against the machine's matrix rate.
// For T = 8k, 32k, 128k (d = 64, random float32 Q/K) it times a full-overview 512×512 map
// (mean + max, both passes) and an Eigen GEMM doing the same number of FLOPs on the same
// number of threads, and prints the fraction of the GEMM rate the map reaches.
// FLOPs counted: 2 passes × 2·T²·d for a full map (the two Q·Kᵀ products), half that causal.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/parallel.h"

using namespace attnscope;

namespace {
constexpr int kHeadDim = 64;
constexpr int kMapSize = 512;
constexpr int kGemmN = 1024;  ///< square GEMM block: large enough for Eigen's peak, small enough to share out

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

double peakRssMiB() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string cpuModel() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
    return "unknown CPU";
}

MatrixRM randomMatrix(std::mt19937_64& rng, int64_t rows, int64_t cols) {
    std::normal_distribution<float> n(0.0f, 1.0f);
    MatrixRM m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
    return m;
}

/// Eigen GEMMs spread over the engine's workers (each worker multiplies its own kGemmN² blocks,
/// the way the map spreads query tiles). Buffers are allocated once, before any map runs.
class GemmBench {
public:
    GemmBench() : m_c(static_cast<size_t>(workerCount()), MatrixRM::Zero(kGemmN, kGemmN)) {
        std::mt19937_64 rng{7};
        m_a = randomMatrix(rng, kGemmN, kGemmN);
        m_b = randomMatrix(rng, kGemmN, kGemmN);
    }
    /// Seconds for GEMMs totalling `flops`.
    double seconds(double flops) {
        const double perGemm = 2.0 * double(kGemmN) * kGemmN * kGemmN;
        const int64_t count = std::max<int64_t>(1, std::llround(flops / perGemm));
        const auto t0 = std::chrono::steady_clock::now();
        parallelFor(count, [&](int64_t, int worker) { m_c[size_t(worker)].noalias() = m_a * m_b; });
        const auto t1 = std::chrono::steady_clock::now();
        return ::seconds(t0, t1) * flops / (double(count) * perGemm);  // scaled to exactly `flops`
    }

private:
    MatrixRM m_a, m_b;
    std::vector<MatrixRM> m_c;
};

struct Row {
    int64_t tokens;
    bool causal;
    double pass1Ms, mapMs, flops, rssMiB, gemmMs;
};
}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (!std::strcmp(argv[i], "--quick"))
            quick = true;
        else {
            std::printf(
                "usage: attnscope-bench-map [--quick]\n  --quick  skip T = 128k (the full run takes a few "
                "minutes on 2 cores)\n  ATTNSCOPE_THREADS=N overrides the worker count\n");
            return std::strcmp(argv[i], "--help") ? 1 : 0;
        }
    }
    std::vector<int64_t> sizes = {8192, 32768};
    if (!quick) sizes.push_back(131072);
    std::printf("attnscope-bench-map: %s, %d worker threads, d = %d, map %dx%d (mean+max)\n", cpuModel().c_str(),
                workerCount(), kHeadDim, kMapSize, kMapSize);

    GemmBench gemm;
    const double baseRss = peakRssMiB();
    std::vector<Row> rows;
    for (int64_t t : sizes) {
        std::mt19937_64 rng{static_cast<uint64_t>(t)};
        const MatrixRM q = randomMatrix(rng, t, kHeadDim), k = randomMatrix(rng, t, kHeadDim);
        for (bool causal : {false, true}) {
            AttentionSpec spec;
            spec.scale = 1.0f / std::sqrt(float(kHeadDim));
            spec.mask.causal = causal;
            auto t0 = std::chrono::steady_clock::now();
            auto lse = rowLogSumExp(q, k, spec, 0, t);
            auto t1 = std::chrono::steady_clock::now();
            auto map = attentionMap(q, k, spec, {0, t, 0, t}, kMapSize, kMapSize);
            auto t2 = std::chrono::steady_clock::now();
            if (!lse || !map) {
                std::fprintf(stderr, "bench-map: %s\n", (!lse ? lse.message() : map.message()).c_str());
                return 1;
            }
            const double pairs = causal ? double(t) * double(t + 1) / 2 : double(t) * double(t);
            const double flops = 2 * 2 * pairs * kHeadDim;
            const double rss = peakRssMiB();
            // The GEMM runs right after its map so both see the same load on a shared machine.
            rows.push_back(
                {t, causal, seconds(t0, t1) * 1e3, seconds(t1, t2) * 1e3, flops, rss, gemm.seconds(flops) * 1e3});
            std::fprintf(stderr, "  T=%lld %s: map %.0f ms\n", static_cast<long long>(t), causal ? "causal" : "full",
                         rows.back().mapMs);
        }
    }
    std::printf("\n%8s %-7s %10s %10s %10s %10s %10s %9s %9s\n", "T", "mask", "pass1 ms", "map ms", "GFLOP/s",
                "GEMM ms", "GEMM GF/s", "fraction", "RSS MiB");
    for (const Row& r : rows) {
        const double mapRate = r.flops / (r.mapMs * 1e-3) / 1e9, gemmRate = r.flops / (r.gemmMs * 1e-3) / 1e9;
        std::printf("%8lld %-7s %10.1f %10.1f %10.1f %10.1f %10.1f %8.0f%% %9.1f\n", static_cast<long long>(r.tokens),
                    r.causal ? "causal" : "full", r.pass1Ms, r.mapMs, mapRate, r.gemmMs, gemmRate,
                    100.0 * mapRate / gemmRate, r.rssMiB);
    }
    std::printf(
        "\nFLOPs: 2 passes x 2*T^2*d (full) or x 2*T(T+1)/2*d (causal). map ms includes both passes;\n"
        "pass1 ms is rowLogSumExp alone. RSS is the process peak after that map (Q/K are T*d floats each);\n"
        "%.1f MiB before any Q/K (GEMM buffers, thread pool).\n",
        baseRss);
    return 0;
}
