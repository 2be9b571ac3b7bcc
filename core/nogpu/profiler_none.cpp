// The profiler's GPU backend in a build without CUDA: the profile falls back to the CPU and says why.
#include "attnscope/profiler.h"

namespace attnscope {
namespace {
constexpr const char* kNoCuda =
    "attnscope was built without CUDA/CUPTI (nvcc not found or ATTNSCOPE_CUDA=OFF): GPU profiling is unavailable";
}

Result<std::unique_ptr<ProfilerBackend>> createGpuProfilerBackend() { return Status{ErrorCode::Unsupported, kNoCuda}; }

Result<OverheadReport> measureCuptiOverhead(const ShapeSource&, const std::vector<std::string>&, int, int,
                                            const ProgressFn&) {
    return Status{ErrorCode::Unsupported, kNoCuda};
}
}  // namespace attnscope
