#pragma once
// A minimal fork-join helper for core (no Qt): runs fn(i, worker) for i in [0, n) on
// workerCount() threads; `worker` indexes per-thread accumulators. Items are handed out
// dynamically (an atomic counter), so uneven items (causal rows) balance.
#include <cstdint>
#include <functional>

namespace attnscope {
void parallelFor(int64_t n, const std::function<void(int64_t i, int worker)>& fn, int maxWorkers = 0);
}  // namespace attnscope
