// The GPU engine of a build without CUDA: reports why no GPU work can run.
#include "attnscope/gpu.h"

namespace attnscope {
namespace {
class NoGpuEngine final : public GpuEngine {
public:
    GpuInfo info() const override {
        GpuInfo i;
        i.reason = "attnscope was built without CUDA (nvcc not found or ATTNSCOPE_CUDA=OFF)";
        return i;
    }
    Status unavailable() const { return {ErrorCode::Unsupported, info().reason}; }
    Result<std::unique_ptr<GpuBuffers>> upload(const AttentionProblem&, const std::vector<float>&,
                                               const std::vector<float>&, const std::vector<float>&) override {
        return unavailable();
    }
    Result<std::vector<KernelLaunchInfo>> run(const VariantSpec&, GpuBuffers&) override { return unavailable(); }
    Status synchronize() override { return unavailable(); }
    Status download(GpuBuffers&, std::vector<float>&, std::vector<float>&) override { return unavailable(); }
    Status poisonOutput(GpuBuffers&) override { return unavailable(); }
    Status flushL2() override { return unavailable(); }
    Result<double> timeVariant(const VariantSpec&, GpuBuffers&, int, int) override { return unavailable(); }
    Result<AttentionMap> attentionMap(const MatrixRM&, const MatrixRM&, const AttentionSpec&, MapRect, int,
                                      int) override {
        return unavailable();
    }
    Result<std::vector<double>> blockMass(const MatrixRM&, const MatrixRM&, const AttentionSpec&, int64_t) override {
        return unavailable();
    }
};
}  // namespace

std::unique_ptr<GpuEngine> createGpuEngine() { return std::make_unique<NoGpuEngine>(); }

Result<SelfTestReport> runGpuSelfTest(bool) {
    return Status{ErrorCode::Unsupported, "no GPU self-test: attnscope was built without CUDA"};
}
}  // namespace attnscope
