#pragma once
// Pass 1 of the analysis (the row logsumexp) through the attention forward kernel (wgmma on
// Hopper, mma.sync elsewhere): for the masks it compiles in (full, causal, causal sliding window)
// without score mods or excluded keys, at head dims 64 and 128, it computes the same lse several
// times faster than the analysis pass kernel, whose S tiles go through shared memory. The output
// it also writes (O) is discarded.
#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <string>

#include "attnscope/attention.h"
#include "device_memory.h"
#include "launch.h"

namespace attnscope::gpu {

struct DeviceVariant;

/// Where pass 1 (the row logsumexp) runs, for the analysis and the map alike: the attention
/// forward kernel where it takes the head's mask (default), else the register-fragment lse pass;
/// or always the fragment pass, or the wmma pass (ATTNSCOPE_ANALYSIS_LSE=forward|fragments|wmma).
enum class LsePath { Forward, Fragments, Wmma };

/// ATTNSCOPE_ANALYSIS_LSE read from the environment (Forward when unset or unknown).
LsePath lsePathFromEnvironment();

class ForwardLse {
public:
    explicit ForwardLse(ForwardPath path);
    ~ForwardLse();
    ForwardLse(const ForwardLse&) = delete;
    ForwardLse& operator=(const ForwardLse&) = delete;

    /// Whether `spec` is one the forward kernel computes exactly as the analysis defines it.
    static bool takes(const AttentionSpec& spec, int dim);

    /// lse [heads, T] of query heads q [heads, T, dim] against k/v [kvHeads, T, dim] (any v of
    /// the same dtype: only the lse is kept), asynchronously on `stream`.
    Status run(const void* q, const void* k, const void* v, ElemType elem, int heads, int kvHeads, int tokens, int dim,
               const AttentionSpec& spec, float* lse, cudaStream_t stream);

private:
    ForwardPath m_path;
    std::map<std::string, std::unique_ptr<DeviceVariant>> m_variants;  ///< block masks by (mask, T)
    DeviceArray m_out;                                                 ///< O, discarded
};

}  // namespace attnscope::gpu
