// The CPU rate is measured, not assumed: the same pass the reference runs (rowLogSumExp with the
// pool's workers) on a 2,048 × 2,048 random problem, so the estimate follows the machine, its
// core count and its vector units.
#include "attnscope/cpu_budget.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>

#include "attnscope/attention.h"

namespace attnscope {
namespace {
constexpr int64_t kProbeTokens = 2048;
constexpr int kProbeRuns = 3;  // the best of three: the first warms the pool and the caches
}  // namespace

double scoreProducts(int64_t rows, int64_t keys, int64_t headDim, bool causal) {
    const double pairs = double(rows) * double(keys) * (causal ? 0.5 : 1.0);
    return pairs * double(headDim);
}

double measuredCpuScoreRate(int64_t headDim) {
    static std::mutex mutex;
    static std::map<int64_t, double> rates;
    const int64_t d = std::max<int64_t>(1, headDim);
    std::lock_guard lock(mutex);
    if (auto it = rates.find(d); it != rates.end()) return it->second;
    std::mt19937 rng(12345);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    MatrixRM q(kProbeTokens, d), k(kProbeTokens, d);
    for (int64_t i = 0; i < q.size(); ++i) q.data()[i] = normal(rng), k.data()[i] = normal(rng);
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(d));
    spec.mask.causal = false;
    double best = 1e30;
    for (int run = 0; run < kProbeRuns; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        auto lse = rowLogSumExp(q, k, spec, 0, kProbeTokens);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (lse) best = std::min(best, s);
    }
    const double rate = scoreProducts(kProbeTokens, kProbeTokens, d, false) / std::max(best, 1e-6);
    rates[d] = rate;
    return rate;
}

CpuWorkEstimate estimateCpuWork(double products, int64_t headDim) {
    CpuWorkEstimate e;
    e.products = products;
    e.productsPerSecond = measuredCpuScoreRate(headDim);
    e.seconds = products / e.productsPerSecond;
    return e;
}

std::string describeSeconds(double seconds) {
    char buf[64];
    if (seconds < 90)
        std::snprintf(buf, sizeof buf, "%.0f s", seconds);
    else if (seconds < 3600)
        std::snprintf(buf, sizeof buf, "%.1f min", seconds / 60);
    else if (seconds < 48 * 3600)
        std::snprintf(buf, sizeof buf, "%.1f h", seconds / 3600);
    else
        std::snprintf(buf, sizeof buf, "%.1f days", seconds / 86400);
    return buf;
}

std::string CpuWorkEstimate::describe() const {
    char buf[160];
    std::snprintf(buf, sizeof buf, "about %s (%.2g score products at %.2g a second measured here)",
                  describeSeconds(seconds).c_str(), products, productsPerSecond);
    return buf;
}

}  // namespace attnscope
