// Forward kernel instantiations for bf16 inputs (head dims 64 and 128).
#include "flex_dispatch.cuh"

namespace attnscope::gpu {

Status forwardBf16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    return a.headDim == 64 ? forwardDispatch<__nv_bfloat16, 64>(a, stream, log) : forwardDispatch<__nv_bfloat16, 128>(a, stream, log);
}

}  // namespace attnscope::gpu
