#pragma once
// The GPU engine's interface, declared in core so nothing above includes CUDA headers.
// Implemented in kernels/ (built when nvcc is found); without it, createGpuEngine() returns an
// engine whose info().available is false with the reason.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/analysis_sums.h"
#include "attnscope/attention.h"
#include "attnscope/status.h"
#include "attnscope/trace.h"
#include "attnscope/variants.h"

namespace attnscope {

struct GpuInfo {
    bool available = false;
    std::string reason;  ///< why not available ("built without CUDA", "no CUDA device: …")
    std::string name;    ///< "NVIDIA H200"
    int computeMajor = 0, computeMinor = 0;
    int smCount = 0;
    uint64_t memoryBytes = 0;
    uint64_t l2Bytes = 0;
    int driverVersion = 0, runtimeVersion = 0;
    int smClockMHz = 0, memClockMHz = 0;
    std::string forwardKernel;  ///< the attention forward kernel family in use: "wgmma (sm_90a)" or "mma.sync"
};

enum class GpuDType { BF16, F16 };

/// Host-side batch of attention inputs: [B, H, T, D] for q and [B, Hkv, T, D] for k/v, floats.
struct AttentionProblem {
    int batch = 1, heads = 1, kvHeads = 1;
    int64_t tokens = 0;       ///< T (for Decode: the KV length; q has one token)
    int64_t queryTokens = 0;  ///< query rows per head: 0 = tokens; 1 for Decode
    int headDim = 128;
    float scale = 0;  ///< 0 = 1/sqrt(headDim)
    GpuDType dtype = GpuDType::BF16;
};

/// Device-resident inputs/outputs so the profiler can time kernels without host copies.
class GpuBuffers {
public:
    virtual ~GpuBuffers() = default;
    virtual const AttentionProblem& problem() const = 0;
};

struct KernelLaunchInfo {
    std::string name;
    int grid[3] = {1, 1, 1};
    int block[3] = {1, 1, 1};
    int registers = 0;
    int sharedBytes = 0;
};

/// One head's Q/K resident on the device (GpuEngine::uploadHead).
class GpuHead {
public:
    virtual ~GpuHead() = default;
    virtual int64_t tokens() const = 0;
    virtual int dim() const = 0;
};

class GpuEngine {
public:
    virtual ~GpuEngine() = default;
    virtual GpuInfo info() const = 0;

    /// Uploads q/k/v (floats, converted to the problem's dtype). qHost is [B,H,Tq,D] row-major,
    /// k/v [B,Hkv,T,D]. Fails with OutOfMemory (and the sizes) when the device cannot hold them.
    virtual Result<std::unique_ptr<GpuBuffers>> upload(const AttentionProblem& p, const std::vector<float>& qHost,
                                                       const std::vector<float>& kHost,
                                                       const std::vector<float>& vHost) = 0;
    /// Builds the variant's block mask and runs its forward kernel(s) asynchronously on the
    /// engine's stream. Returns the launches made (for the profiler's records).
    virtual Result<std::vector<KernelLaunchInfo>> run(const VariantSpec& v, GpuBuffers& buffers) = 0;
    virtual Status synchronize() = 0;
    /// Output O [B,H,Tq,D] and lse [B,H,Tq] as floats (after run + synchronize).
    virtual Status download(GpuBuffers& buffers, std::vector<float>& out, std::vector<float>& lse) = 0;
    /// Fills the output with NaN so unwritten elements fail checks.
    virtual Status poisonOutput(GpuBuffers& buffers) = 0;
    /// Flushes L2 by writing a buffer at least the L2 size (cold-mode timing).
    virtual Status flushL2() = 0;
    /// Times `v` with CUDA events: median milliseconds over `reps` runs after `warmup`.
    virtual Result<double> timeVariant(const VariantSpec& v, GpuBuffers& buffers, int warmup, int reps) = 0;

    /// GPU analysis passes: the multiscale map (pooled mean/max) and the block mass matrix of one
    /// head, two-pass from Q/K (floats [T, d]).
    virtual Result<AttentionMap> attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                              MapRect rect, int width, int height) = 0;
    virtual Result<std::vector<double>> blockMass(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                  int64_t blockSize) = 0;

    /// Q/K of one head kept on the device, so zooming into its map uploads nothing.
    ///   auto head = gpu->uploadHead(q, k); auto map = gpu->attentionMap(**head, spec, rect, 512, 512);
    virtual Result<std::shared_ptr<GpuHead>> uploadHead(const MatrixRM& q, const MatrixRM& k) {
        (void)q, (void)k;
        return Status{ErrorCode::Unsupported, "this GPU engine keeps no heads on the device"};
    }
    virtual Result<AttentionMap> attentionMap(GpuHead& head, const AttentionSpec& spec, MapRect rect, int width,
                                              int height) {
        (void)head, (void)spec, (void)rect, (void)width, (void)height;
        return Status{ErrorCode::Unsupported, "this GPU engine keeps no heads on the device"};
    }

    /// Pass sums of every query head of `layer` for analyzeTrace (finishHead turns them into the
    /// metrics): Q/K/V are read from the mapped trace in its own dtype and uploaded while the
    /// previous layer computes; `nextLayer` (or -1) is prefetched the same way. Fails with
    /// Unsupported when the layer cannot run here (the caller then uses the CPU) and with
    /// NumericValues when Q/K/V hold NaN/Inf.
    virtual Result<std::vector<HeadSums>> analyzeLayerSums(const Trace& trace, int layer,
                                                           const std::vector<AttentionSpec>& specs,
                                                           const HeadContext& context,
                                                           const HeadAnalysisOptions& options, int nextLayer,
                                                           const ProgressFn& progress) {
        (void)trace, (void)layer, (void)specs, (void)context, (void)options, (void)nextLayer, (void)progress;
        return Status{ErrorCode::Unsupported,
                      info().reason.empty() ? "this GPU engine has no analysis passes" : info().reason};
    }
    /// Split of the last analyzeLayerSums call: host reading + upload vs kernels, milliseconds.
    struct LayerTimes {
        double readMs = 0, uploadMs = 0, computeMs = 0;      ///< read + upload overlap the previous layer's compute
        std::vector<std::pair<std::string, double>> passes;  ///< kernel milliseconds per pass, then host time
    };
    virtual LayerTimes lastLayerTimes() const { return {}; }
};

/// The engine of this build: CUDA when kernels/ was built and a device is present.
std::unique_ptr<GpuEngine> createGpuEngine();
/// One engine per visible CUDA device, device 0 first (empty without devices or without CUDA).
std::vector<std::unique_ptr<GpuEngine>> createGpuEngines();
/// An engine that runs nothing: info().reason says why, every call fails with Unsupported.
std::unique_ptr<GpuEngine> createUnavailableGpuEngine(std::string reason);

/// The vendor library behind the cudnn:* variants, loaded at run time (dlopen), so attnscope runs
/// without it and those rows say why. ATTNSCOPE_CUDNN_LIB names the file to load; otherwise
/// libcudnn.so.9 is searched for (the loader's paths, then CUDNN_PATH, CUDA_HOME, /usr/local/cuda).
struct VendorLibraryInfo {
    bool available = false;
    std::string path;     ///< the file loaded
    std::string version;  ///< "9.19.0"
    std::string reason;   ///< why not usable: not found (what was tried), not cuDNN, too old
};
/// Loads cuDNN (once per path) and reports it. Never throws or aborts.
VendorLibraryInfo probeCudnn();

/// Runs the GPU self-check (every variant × dtype × head dim vs the float64 CPU reference);
/// prints one line per case to `log` when given. Fails with Unsupported when there is no GPU.
struct SelfTestReport {
    int cases = 0, failures = 0;
    std::vector<std::string> lines;
};
Result<SelfTestReport> runGpuSelfTest(bool quick = false);

}  // namespace attnscope
