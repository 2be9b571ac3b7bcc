// wgmma (sm_90a) forward kernel instantiations for fp16 inputs (head dims 64 and 128).
#include "flex_dispatch.cuh"
#include "flex_forward_sm90.cuh"

namespace attnscope::gpu {

Status forwardSm90F16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    return forwardHeadDims<HopperFamily, __half>(a, stream, log);
}

}  // namespace attnscope::gpu
