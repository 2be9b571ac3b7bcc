// An engine for when no GPU work can run (a build without CUDA, or no usable device): info()
// carries the reason and every call fails with Unsupported and that reason.
#include <string>
#include <utility>

#include "attnscope/gpu.h"

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

std::unique_ptr<GpuEngine> createUnavailableGpuEngine(std::string reason) {
    return std::make_unique<UnavailableEngine>(std::move(reason));
}
}  // namespace attnscope
