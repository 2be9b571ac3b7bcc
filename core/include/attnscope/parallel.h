#pragma once
// A minimal fork-join helper for core (no Qt): runs fn(i, worker) for i in [0, n) on
// workerCount() threads; `worker` indexes per-thread accumulators. Items are handed out
// dynamically (an atomic counter), so uneven items (causal rows) balance. Background work (a
// whole-model analysis behind an interactive viewer) marks its thread and gets a pool of its own.
#include <cstdint>
#include <functional>

namespace attnscope {
void parallelFor(int64_t n, const std::function<void(int64_t i, int worker)>& fn, int maxWorkers = 0);

/// Marks the calling thread's parallelFor calls as background work (or not, again): they run on
/// a pool of their own, whose threads start from the first background caller (on Linux they then
/// inherit that thread's scheduling priority), and hold back between items while any interactive
/// parallelFor (the shared pool's) runs or waits. One parallelFor at a time runs per pool, so
/// without this a long analysis would hold the shared pool and every map request would wait.
///   setBackgroundParallelism(true);  auto model = analyzeTrace(trace);  // on a worker thread
void setBackgroundParallelism(bool background);
}  // namespace attnscope
