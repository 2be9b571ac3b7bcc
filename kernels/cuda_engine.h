#pragma once
// The CUDA implementation of GpuEngine (see attnscope/gpu.h for the contract).
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "attnscope/gpu.h"
#include "device_memory.h"
#include "launch.h"

namespace attnscope::gpu {

struct DeviceVariant;

class CudaEngine final : public GpuEngine {
public:
    explicit CudaEngine(int device);
    ~CudaEngine() override;

    GpuInfo info() const override { return m_info; }
    Result<std::unique_ptr<GpuBuffers>> upload(const AttentionProblem& p, const std::vector<float>& qHost,
                                               const std::vector<float>& kHost,
                                               const std::vector<float>& vHost) override;
    Result<std::vector<KernelLaunchInfo>> run(const VariantSpec& v, GpuBuffers& buffers) override;
    Status synchronize() override;
    Status download(GpuBuffers& buffers, std::vector<float>& out, std::vector<float>& lse) override;
    Status poisonOutput(GpuBuffers& buffers) override;
    Status flushL2() override;
    Result<double> timeVariant(const VariantSpec& v, GpuBuffers& buffers, int warmup, int reps) override;
    Result<AttentionMap> attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect,
                                      int width, int height) override;
    Result<std::vector<double>> blockMass(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                          int64_t blockSize) override;

    /// Partial + full key blocks of the variant's BlockMask at the buffers' T (builds it if needed).
    Result<long long> computedBlocks(const VariantSpec& v, GpuBuffers& buffers);

private:
    Status requireDevice() const;
    Result<const DeviceVariant*> variantFor(GpuBuffers& buffers, const VariantSpec& v, LaunchLog* log);
    /// Shared by attentionMap and blockMass: uploads q/k and the mask data, runs both passes.
    struct PoolResult {
        std::vector<double> sums;
        std::vector<float> maxima;
        std::vector<unsigned long long> allowed;
    };
    Result<PoolResult> pool(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, const CellGrid& grid);

    int m_device = 0;
    GpuInfo m_info;
    ForwardPath m_forwardPath = ForwardPath::MmaSync;
    cudaStream_t m_stream = nullptr;
    DeviceArray m_flush;
};

/// A CUDA engine for device 0, or nullptr with the reason when there is no usable device.
std::unique_ptr<GpuEngine> createCudaEngine(std::string* reason);

}  // namespace attnscope::gpu
