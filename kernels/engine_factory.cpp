// createGpuEngine for builds with kernels/: the CUDA engine when a device exists, otherwise an
// engine whose info() says why (every call then fails with Unsupported and that reason).
#include "cuda_engine.h"

namespace attnscope {

std::unique_ptr<GpuEngine> createGpuEngine() {
    std::string reason;
    if (auto engine = gpu::createCudaEngine(&reason)) return engine;
    return createUnavailableGpuEngine(reason);
}

}  // namespace attnscope
