// Forward kernel instantiations for f16 inputs (head dims 64 and 128).
#include "flex_dispatch.cuh"

namespace attnscope::gpu {

Status forwardF16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    return a.headDim == 64 ? forwardDispatch<__half, 64>(a, stream, log) : forwardDispatch<__half, 128>(a, stream, log);
}

}  // namespace attnscope::gpu
