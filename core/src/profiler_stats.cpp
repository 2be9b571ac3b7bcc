// Timing statistics and the stopping rule of the profiler.
#include <algorithm>
#include <cmath>

#include "attnscope/profiler.h"

namespace attnscope {

double quantileSorted(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    const double pos = std::clamp(q, 0.0, 1.0) * double(sorted.size() - 1);
    const size_t lo = size_t(std::floor(pos));
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    const double frac = pos - double(lo);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

SampleStats computeStats(const std::vector<double>& samples) {
    SampleStats s;
    s.n = int(samples.size());
    if (samples.empty()) return s;
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    s.min = sorted.front();
    s.max = sorted.back();
    s.median = quantileSorted(sorted, 0.5);
    s.q1 = quantileSorted(sorted, 0.25);
    s.q3 = quantileSorted(sorted, 0.75);
    s.iqr = s.q3 - s.q1;
    double sum = 0;
    for (double x : sorted) sum += x;
    s.mean = sum / s.n;
    if (s.n > 1) {
        double ss = 0;
        for (double x : sorted) ss += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(ss / (s.n - 1));  // sample (Bessel-corrected) deviation
    }
    s.relStdDev = s.mean > 0 ? s.stddev / s.mean : 0;
    return s;
}

const char* stopReasonName(StopReason r) {
    switch (r) {
    case StopReason::Continue: return "running";
    case StopReason::Converged: return "converged";
    case StopReason::MaxSamples: return "max-samples";
    case StopReason::Timeout: return "timeout";
    }
    return "?";
}

Status validateStoppingRule(const StoppingRule& rule) {
    if (!(rule.targetRelStdDev > 0)) return {ErrorCode::InvalidArgument, "stopping rule: targetRelStdDev must be > 0"};
    if (rule.minSamples < 1 || rule.maxSamples < rule.minSamples)
        return {ErrorCode::InvalidArgument, "stopping rule: expected 1 <= minSamples (" +
                                                std::to_string(rule.minSamples) + ") <= maxSamples (" +
                                                std::to_string(rule.maxSamples) + ")"};
    if (!(rule.timeoutSeconds > 0)) return {ErrorCode::InvalidArgument, "stopping rule: timeoutSeconds must be > 0"};
    if (rule.minTotalMs < 0) return {ErrorCode::InvalidArgument, "stopping rule: minTotalMs must be >= 0"};
    return Status::success();
}

StopReason evaluateStop(const StoppingRule& rule, const std::vector<double>& samples, double elapsedSeconds) {
    const int n = int(samples.size());
    if (n >= rule.maxSamples) return StopReason::MaxSamples;
    // Convergence is checked before the timeout so a variant that met its target right at the
    // limit is reported as converged.
    if (n >= rule.minSamples) {
        double total = 0;
        for (double x : samples) total += x;
        if (total >= rule.minTotalMs && computeStats(samples).relStdDev <= rule.targetRelStdDev)
            return StopReason::Converged;
    }
    if (elapsedSeconds >= rule.timeoutSeconds && n >= 1) return StopReason::Timeout;
    return StopReason::Continue;
}

}  // namespace attnscope
