#pragma once
// Whole-layer analysis on the GPU (GpuEngine::analyzeLayerSums): streams a layer's Q/K/V from
// the mapped trace through pinned memory to the device (the next layer's upload runs on its own
// thread and copy stream while this one computes), runs the tensor-core passes for groups of
// query heads sized to the free device memory, and hands the sums back as HeadSums.
#include <cuda_runtime_api.h>

#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "attnscope/gpu.h"
#include "device_memory.h"
#include "forward_lse.h"

namespace attnscope::gpu {

class LayerAnalyzer {
public:
    LayerAnalyzer(int device, cudaStream_t compute, int smCount, ForwardPath forwardPath);
    ~LayerAnalyzer();
    LayerAnalyzer(const LayerAnalyzer&) = delete;
    LayerAnalyzer& operator=(const LayerAnalyzer&) = delete;

    Result<std::vector<HeadSums>> run(const Trace& trace, int layer, const std::vector<AttentionSpec>& specs,
                                      const HeadContext& context, const HeadAnalysisOptions& options, int nextLayer,
                                      const ProgressFn& progress);
    GpuEngine::LayerTimes times() const { return m_times; }

private:
    /// A layer's raw Q/K/V on the device (one of two slots).
    struct Slot {
        uint64_t traceId = 0;  ///< Trace::openId of the trace it holds (0: none)
        int layer = -1;
        DeviceArray q, k, v;
        std::future<Status> ready;  ///< the upload (host read + copy) of this slot
        double readMs = 0, uploadMs = 0;
    };
    Status startUpload(Slot& slot, const Trace& trace, int layer);
    Slot* slotFor(const Trace& trace, int layer);

    struct HeadBuffers;  ///< one query head's device sums (kept between layers: no allocation per layer)

    /// Token ids, n-gram ids and the template pairs on the device for this context (kept while
    /// the ids and role options stay the same, i.e. across the layers of a trace).
    Status prepareTemplates(const std::vector<int64_t>& tokenIds, const RoleOptions& roles);
    /// Pairs listed per token at most; more and the stats pass compares ids per element.
    static constexpr size_t kPairsPerToken = 64;

    int m_device = 0;
    cudaStream_t m_compute = nullptr;
    cudaStream_t m_copy = nullptr;
    cudaStream_t m_aux = nullptr;          ///< sums back to the host while the next passes run
    LsePath m_lsePath = LsePath::Forward;  ///< read at construction (forward_lse.h)
    int m_smCount = 0;
    Slot m_slots[2];
    void* m_pinned = nullptr;  ///< staging for host → device copies
    size_t m_pinnedBytes = 0;
    std::mutex m_stagingMutex;
    DeviceArray m_vBf16;  ///< V of an f16 layer converted for P·V
    std::vector<std::unique_ptr<HeadBuffers>> m_heads;
    DeviceArray m_lse;  ///< [group heads × T], contiguous for the forward kernel's lse
    DeviceArray m_args, m_counts, m_ids, m_ngram, m_docs;
    DeviceArray m_pairs;  ///< template pairs (uint2, analysis_tc.h)
    long long m_pairCount = 0;
    bool m_pairsListed = false, m_templateReady = false;
    std::vector<int64_t> m_templateIds;
    RoleOptions m_templateRoles;
    DeviceArray m_maskError;  ///< [group heads][4 masks][2] Σ diff², Σ ref²
    void* m_host = nullptr;   ///< pinned: every sum that comes back
    size_t m_hostBytes = 0;
    void* m_upload = nullptr;  ///< pinned: pass arguments and candidate masks going up
    size_t m_uploadBytes = 0;
    ForwardLse m_forwardLse;
    GpuEngine::LayerTimes m_times;
};

}  // namespace attnscope::gpu
