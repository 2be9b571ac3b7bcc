#pragma once
// The CUDA implementation of GpuEngine (see attnscope/gpu.h for the contract).
#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "attnscope/gpu.h"
#include "analysis_layer.h"
#include "device_memory.h"
#include "forward_lse.h"
#include "launch.h"

namespace attnscope::gpu {

struct DeviceVariant;
class CudnnSdpa;
class MapStages;

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

    Result<std::shared_ptr<GpuHead>> uploadHead(const MatrixRM& q, const MatrixRM& k) override;
    Result<AttentionMap> attentionMap(GpuHead& head, const AttentionSpec& spec, MapRect rect, int width,
                                      int height) override;
    Result<std::vector<HeadSums>> analyzeLayerSums(const Trace& trace, int layer,
                                                   const std::vector<AttentionSpec>& specs, const HeadContext& context,
                                                   const HeadAnalysisOptions& options, int nextLayer,
                                                   const ProgressFn& progress) override;
    LayerTimes lastLayerTimes() const override;

    /// Partial + full key blocks of the variant's BlockMask at the buffers' T (builds it if needed).
    Result<long long> computedBlocks(const VariantSpec& v, GpuBuffers& buffers);

private:
    Status requireDevice() const;
    Result<const DeviceVariant*> variantFor(GpuBuffers& buffers, const VariantSpec& v, LaunchLog* log);
    /// Shared by attentionMap and blockMass: both passes into the head's cell buffers (sums,
    /// maxima, allowed counts stay on the device).
    Status pool(GpuHead& head, const AttentionSpec& spec, const CellGrid& grid, MapStages* stages = nullptr);
    /// Packs q/k into the head's buffers (reused when large enough) and uploads them.
    Status fillHead(GpuHead& head, const MatrixRM& q, const MatrixRM& k);
    Result<std::shared_ptr<GpuHead>> scratchHead(const MatrixRM& q, const MatrixRM& k);
    Result<AttentionMap> mapFromPool(GpuHead& head, const AttentionSpec& spec, MapRect rect, int width, int height);

    int m_device = 0;
    GpuInfo m_info;
    ForwardPath m_forwardPath = ForwardPath::MmaSync;
    LsePath m_lsePath = lsePathFromEnvironment();  ///< where the map's pass 1 runs (forward_lse.h)
    /// The map's passes on wgmma (kernels/sm90/map_sm90.cu) for head dims 64 and 128: on the
    /// wgmma forward path unless ATTNSCOPE_MAP_KERNEL=mma (the mma.sync / forward-kernel passes).
    bool m_mapWgmma = false;
    cudaStream_t m_stream = nullptr;
    DeviceArray m_flush;
    std::unique_ptr<LayerAnalyzer> m_layers;
    std::unique_ptr<ForwardLse> m_mapLse;    ///< the map's pass 1 on the forward kernel
    std::shared_ptr<GpuHead> m_scratchHead;  ///< host-in maps reuse its buffers
    std::unique_ptr<CudnnSdpa> m_cudnn;      ///< the cudnn:* variants (created on first use)
};

/// A CUDA engine for device 0, or nullptr with the reason when there is no usable device.
std::unique_ptr<GpuEngine> createCudaEngine(std::string* reason);

}  // namespace attnscope::gpu
