#pragma once
// Per-head Q/K as floats, and the row logsumexp of each (head, mask) pair, loaded on demand from
// any thread and kept for the most recently used heads. Pass 1 (the lse) is the expensive part of
// every map, so computing it once per head makes every later zoom a pass-2-only job. The map
// service (map_service.h) reads heads through this cache; the GUI keeps one per open trace, the
// CLI and the reports one per run.
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/gpu.h"
#include "attnscope/progress.h"
#include "attnscope/trace.h"

namespace attnscope {

struct HeadData {
    int layer = 0, head = 0;
    MatrixRM q, k;
    AttentionSpec spec;     ///< the head's native spec (no exclusions)
    int64_t nonFinite = 0;  ///< NaN/Inf values met while converting q and k
};

class HeadCache {
public:
    /// Keeps up to `capacity` heads; a 32k × 128 head takes 32 MB as floats (q and k).
    static constexpr size_t kDefaultCapacity = 24;

    explicit HeadCache(std::shared_ptr<const Trace> trace, size_t capacity = kDefaultCapacity);

    const std::shared_ptr<const Trace>& trace() const { return m_trace; }
    /// Q and K of one head (the trace must hold Q/K); thread-safe.
    Result<std::shared_ptr<const HeadData>> head(int layer, int head);
    /// Full row logsumexp [T] of the head under `spec`; computed on first use, thread-safe.
    Result<std::shared_ptr<const std::vector<float>>> lse(const HeadData& data, const AttentionSpec& spec,
                                                          const ProgressFn& progress = {});
    /// The lse when already computed, else null (never computes).
    std::shared_ptr<const std::vector<float>> cachedLse(const HeadData& data, const AttentionSpec& spec);
    /// The head's sink keys (sinkColumns at `threshold`), computed on first use; thread-safe.
    Result<std::vector<int64_t>> sinks(const HeadData& data, double threshold, const ProgressFn& progress = {});
    /// The head's Q/K on the GPU (uploaded on first use, kept for the last few heads), so zooming
    /// a head's map uploads nothing. Call from the thread that owns `engine` only.
    Result<std::shared_ptr<GpuHead>> deviceHead(const std::shared_ptr<const HeadData>& data, GpuEngine& engine);
    /// The head's spec with the chosen keys excluded ("exclude sinks and renormalize").
    static AttentionSpec specWithExclusions(const HeadData& data, const std::vector<int64_t>& excludedKeys);

private:
    static std::string headKey(int layer, int head);
    static std::string lseKey(const HeadData& data, const AttentionSpec& spec);

    std::shared_ptr<const Trace> m_trace;
    size_t m_capacity;
    std::mutex m_mutex;
    std::list<std::shared_ptr<const HeadData>> m_heads;  ///< most recent first
    std::map<std::string, std::shared_ptr<const std::vector<float>>> m_lse;
    std::map<std::string, std::vector<int64_t>> m_sinks;  ///< "layer.head:threshold"
    /// Device copies, most recent first (the engine's thread only).
    std::list<std::pair<std::weak_ptr<const HeadData>, std::shared_ptr<GpuHead>>> m_deviceHeads;
    static constexpr size_t kDeviceHeads = 4;
};

}  // namespace attnscope
