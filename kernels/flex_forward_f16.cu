// mma.sync forward kernel instantiations for fp16 inputs (head dims 64 and 128).
#include "flex_dispatch.cuh"
#include "flex_forward.cuh"

namespace attnscope::gpu {

Status forwardF16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    return forwardHeadDims<MmaSyncFamily, __half>(a, stream, log);
}

}  // namespace attnscope::gpu
