// createGpuEngine for builds with kernels/: the CUDA engine when a device exists, otherwise an
// engine whose info() says why (every call then fails with Unsupported and that reason).
#include "cuda_engine.h"

namespace attnscope {

std::unique_ptr<GpuEngine> createGpuEngine() {
    std::string reason;
    if (auto engine = gpu::createCudaEngine(&reason)) return engine;
    return createUnavailableGpuEngine(reason);
}

std::vector<std::unique_ptr<GpuEngine>> createGpuEngines() {
    std::vector<std::unique_ptr<GpuEngine>> engines;
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return engines;
    }
    for (int d = 0; d < count; ++d) {
        auto engine = std::make_unique<gpu::CudaEngine>(d);
        if (engine->info().available) engines.push_back(std::move(engine));
    }
    return engines;
}

}  // namespace attnscope
