#pragma once
// cuDNN's fused scaled-dot-product attention, the vendor baseline behind the cudnn:* variants:
// one operation graph per variant and shape (Q·Kᵀ, scale, score mod, mask, softmax with stats,
// P·V) built through cuDNN 9's backend API, planned by its heuristics and executed on the
// engine's stream, so CUPTI records cuDNN's kernels like the engine's own. libcudnn.so.9 is
// loaded at run time (dlopen): without it the variants fail with the reason, nothing else does.
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/gpu.h"
#include "attnscope/variants.h"

namespace attnscope::gpu {

struct CudnnApi;

/// The engine's device tensors for one problem: q [B,H,T,D], k/v [B,Hkv,T,D], o like q (the
/// problem's 16-bit dtype), lse [B,H,T] float32 (cuDNN's softmax stats, natural log).
struct SdpaTensors {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* o = nullptr;
    float* lse = nullptr;
};

/// cuDNN SDPA for one engine (one device, one stream). Plans are cached per variant and shape;
/// a shape cuDNN has no engine for fails with the shape, the dtype and cuDNN's message.
class CudnnSdpa {
public:
    CudnnSdpa();
    ~CudnnSdpa();
    CudnnSdpa(const CudnnSdpa&) = delete;
    CudnnSdpa& operator=(const CudnnSdpa&) = delete;

    /// Runs `v` (impl == Cudnn) asynchronously on `stream`. Returns one pseudo launch naming the
    /// cuDNN engine (the kernels themselves show in the CUPTI records).
    Result<std::vector<KernelLaunchInfo>> run(const VariantSpec& v, const AttentionProblem& p, const SdpaTensors& t,
                                              cudaStream_t stream);

private:
    struct Plan;
    Result<Plan*> planFor(const VariantSpec& v, const AttentionProblem& p);

    const CudnnApi* m_api = nullptr;
    void* m_handle = nullptr;  // cudnnHandle_t
    std::map<std::string, std::unique_ptr<Plan>> m_plans;
    std::map<std::string, std::string> m_failed;  // plan key -> why no plan (not retried)
};

}  // namespace attnscope::gpu
