// createGpuEngine for builds with kernels/: the CUDA engine when a device exists, otherwise an
// engine whose info() says why (every call then fails with Unsupported and that reason).
#include "cuda_engine.h"

namespace attnscope {
namespace {

class UnavailableEngine final : public GpuEngine {
public:
    explicit UnavailableEngine(std::string reason) { m_info.reason = std::move(reason); }
    GpuInfo info() const override { return m_info; }
    Status unavailable() const { return {ErrorCode::Unsupported, m_info.reason}; }
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

private:
    GpuInfo m_info;
};

}  // namespace

std::unique_ptr<GpuEngine> createGpuEngine() {
    std::string reason;
    if (auto engine = gpu::createCudaEngine(&reason)) return engine;
    return std::make_unique<UnavailableEngine>(reason);
}

}  // namespace attnscope
