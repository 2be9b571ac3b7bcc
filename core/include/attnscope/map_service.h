#pragma once
// The map service: the one place that turns "layer L, head H, this rectangle, at this size" into
// a pooled attention map. The CLI (`map`, `export`), the GUI's map canvases and thumbnails and
// the reports all call `headMap`, so they draw the same numbers:
//   - Q/K traces: the two-pass map on the GPU when the caller passes an engine (Q/K stay on the
//     device between zooms), else on the CPU reusing the head's cached row logsumexp;
//   - a row-sampled preview (exact rows, pooled over keys) for first views of long sequences;
//   - weights-only traces: pooling of the stored probabilities;
//   - sink exclusion ("exclude and renormalise", analysis-metrics.md) on every path.
// The caller picks the backend (core never creates a GPU engine).
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/head_cache.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

class GpuEngine;

/// The largest map side the service computes (absurd sizes are refused, not allocated).
inline constexpr int kMaxMapSide = 16384;

struct MapRequest {
    int layer = 0, head = 0;
    MapRect rect;                       ///< a rectangle with q1 == 0 (the default) means the whole T×T map
    int width = 512, height = 512;      ///< cells; clamped to the rectangle
    std::vector<int64_t> excludedKeys;  ///< keys masked out, rows renormalised
    /// Also exclude the head's sinks: keys whose sink score alpha_k exceeds kSinkScoreThreshold.
    bool excludeSinks = false;
    /// Compute only `height` evenly spaced query rows (exact rows, pooled over keys) instead of
    /// every row: O(height·T·d) rather than O(T²·d). A preview, flagged as not exact. Ignored
    /// for weights-only traces (pooling stored probabilities is cheap).
    bool sampledRows = false;
};

enum class MapBackend { Gpu, Cpu, CpuSampledRows, StoredProbabilities };

struct HeadMap {
    AttentionMap map;
    bool exact = true;  ///< false for sampled-row previews
    MapBackend backend = MapBackend::Cpu;
    /// "GPU <name>", "CPU", "CPU (NaN/Inf in Q/K)", "CPU, sampled rows", "stored probabilities".
    std::string backendLabel;
    std::vector<int64_t> sinks;  ///< the sink keys found and excluded (excludeSinks)
    int64_t nonFinite = 0;       ///< NaN/Inf values in the head's Q/K (those cells are NaN)
};

/// Computes one head's map. `gpu` (optional, used only when available and the head's Q/K are
/// finite) must be called from the thread that owns it. Errors name the layer/head, the
/// rectangle or the size that is out of range.
///   HeadCache cache(trace); auto m = headMap(cache, {.layer = 3, .head = 7}, progress, gpu.get());
Result<HeadMap> headMap(HeadCache& cache, const MapRequest& request, const ProgressFn& progress = {},
                        GpuEngine* gpu = nullptr);

/// The rectangle a request covers on a trace of `tokens` tokens (the whole map for the default).
MapRect requestRect(const MapRequest& request, int64_t tokens);

/// Score products the CPU path of `request` computes (cpu_budget.h's unit): pass 1 over every
/// key of the rect's rows (their lse), pass 2 over the rect; for sampledRows, `height` rows of
/// every key. 0 for weights-only traces (pooling stored probabilities). The CLI's `map --cpu`
/// and the GUI's map canvas weigh it against the CPU budget before they start.
double cpuMapScoreProducts(const Trace& trace, const MapRequest& request);

}  // namespace attnscope
