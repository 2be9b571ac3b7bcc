// Launch shapes of the forward kernel families for the NVRTC-compiled user variants, read from
// the same headers the built-in dispatch uses (flex_dispatch.cuh's Family::kThreads and
// Family::sharedBytes), so the two never disagree.
#include "flex_forward.cuh"
#include "flex_forward_sm90.cuh"
#include "jit_variant.h"

namespace attnscope::gpu {

JitLaunchShape jitLaunchShape(ForwardPath path, int headDim) {
    if (path == ForwardPath::Wgmma)
        return {HopperFamily::kThreads,
                headDim == 64 ? HopperFamily::sharedBytes<64>() : HopperFamily::sharedBytes<128>()};
    return {MmaSyncFamily::kThreads,
            headDim == 64 ? MmaSyncFamily::sharedBytes<64>() : MmaSyncFamily::sharedBytes<128>()};
}

}  // namespace attnscope::gpu
