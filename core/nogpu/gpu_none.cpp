// The GPU engine of a build without CUDA: reports why no GPU work can run.
#include "attnscope/gpu.h"

namespace attnscope {

std::unique_ptr<GpuEngine> createGpuEngine() {
    return createUnavailableGpuEngine("attnscope was built without CUDA (nvcc not found or ATTNSCOPE_CUDA=OFF)");
}

std::vector<std::unique_ptr<GpuEngine>> createGpuEngines() { return {}; }

VendorLibraryInfo probeCudnn() {
    VendorLibraryInfo info;
    info.reason = "attnscope was built without CUDA: cuDNN's SDPA runs through the CUDA engine";
    return info;
}

Result<SelfTestReport> runGpuSelfTest(bool) {
    return Status{ErrorCode::Unsupported, "no GPU self-test: attnscope was built without CUDA"};
}
}  // namespace attnscope
