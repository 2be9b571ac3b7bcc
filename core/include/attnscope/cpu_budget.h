#pragma once
// Quadratic CPU work, estimated before it starts. The CPU path is exact but O(T²) per head: at
// T = 4M tokens one head is days of work on a laptop. Callers (the CLI's analyze and map) measure
// this machine's rate once, estimate the job, say how long it will take, and refuse what exceeds
// kCpuWorkLimitSeconds unless the user asks for it.
#include <cstdint>
#include <string>

namespace attnscope {

/// The most CPU time a command starts without being told to (`--allow-long`): one hour.
inline constexpr double kCpuWorkLimitSeconds = 3600;
/// Below this an estimate is not worth a line of output.
inline constexpr double kCpuWorkNoticeSeconds = 60;

/// Score products (q·k multiply-adds) of one pass over `rows` query rows × `keys` keys with head
/// dim `headDim`; a causal pass over a square visits about half the pairs.
double scoreProducts(int64_t rows, int64_t keys, int64_t headDim, bool causal);

/// Score products per second of the CPU reference's pass 1 (rowLogSumExp, every worker of the
/// pool) on this machine for head dim `headDim`, measured on a small random problem the first
/// time a head dim is asked for (tens of milliseconds) and remembered.
double measuredCpuScoreRate(int64_t headDim);

struct CpuWorkEstimate {
    double products = 0;           ///< score products over every pass of the job
    double productsPerSecond = 0;  ///< measured here
    double seconds = 0;
    bool overLimit() const { return seconds > kCpuWorkLimitSeconds; }
    /// "about 2.3 h (4.1e15 score products at 5.0e11 a second measured here)"
    std::string describe() const;
};

CpuWorkEstimate estimateCpuWork(double products, int64_t headDim);

/// "42 s", "3.4 min", "1.0 h", "9.1 days".
std::string describeSeconds(double seconds);

}  // namespace attnscope
