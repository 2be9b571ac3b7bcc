#pragma once
// The profiler: attention variants run side by side on one shape (a trace's own Q/K/V
// or a synthetic B,H,T,D), timed by a backend (CUPTI activity records on the GPU, wall clock on
// the CPU fallback), summarised with robust statistics, and scored for accuracy against the dense
// float32 reference. Qt-free and CUDA-free: the CUPTI backend lives in kernels/ behind
// createGpuProfilerBackend().
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/gpu.h"
#include "attnscope/json.h"
#include "attnscope/matrix.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"
#include "attnscope/trace.h"
#include "attnscope/variants.h"

namespace attnscope {

// ---------------------------------------------------------------------------------------------
// Statistics and the stopping rule (profiler_stats.cpp)

/// Summary of timing samples (milliseconds). Quartiles use linear interpolation between order
/// statistics (numpy's default); relStdDev is the sample standard deviation over the mean.
struct SampleStats {
    int n = 0;
    double median = 0, min = 0, max = 0, mean = 0, stddev = 0;
    double q1 = 0, q3 = 0, iqr = 0;
    double relStdDev = 0;
};

/// Statistics of `samples` (any order). Empty input gives n = 0 and zeros.
SampleStats computeStats(const std::vector<double>& samples);

/// The q-quantile (q in [0,1]) of sorted values, linear interpolation.
double quantileSorted(const std::vector<double>& sorted, double q);

/// When to stop sampling a variant (nvbench practice): converged once relStdDev ≤ target with at
/// least minSamples and minTotalMs of measured time; never more than maxSamples or timeoutSeconds.
struct StoppingRule {
    double targetRelStdDev = 0.005;
    int minSamples = 10;
    int maxSamples = 200;
    double minTotalMs = 0;       ///< measured time to accumulate before convergence counts
    double timeoutSeconds = 15;  ///< wall time spent on one variant (samples + overheads)
};

enum class StopReason { Continue, Converged, MaxSamples, Timeout };
const char* stopReasonName(StopReason r);  ///< "running", "converged", "max-samples", "timeout"

/// Applies the rule to the samples gathered so far (`elapsedSeconds`: wall time spent on them).
StopReason evaluateStop(const StoppingRule& rule, const std::vector<double>& samples, double elapsedSeconds);

/// Checks a rule's fields (positive target, 1 ≤ minSamples ≤ maxSamples, positive timeout).
Status validateStoppingRule(const StoppingRule& rule);

// ---------------------------------------------------------------------------------------------
// Records

/// One kernel execution (GPU: a CUPTI CONCURRENT_KERNEL record; CPU: one timed reference call).
struct KernelRecord {
    std::string name;            ///< demangled
    int variantIndex = -1;       ///< index into ShapeProfile::variants
    int sample = -1;             ///< sample number (-1: warmup or metrics pass)
    uint64_t externalId = 0;     ///< external correlation id of the variant run
    uint32_t correlationId = 0;  ///< runtime API correlation id (0 on the CPU)
    uint32_t deviceId = 0, streamId = 0;
    double startUs = 0;  ///< relative to the session's first record
    double durationUs = 0;
    int grid[3] = {0, 0, 0};
    int block[3] = {0, 0, 0};
    int registers = 0;
    int staticSharedBytes = 0, dynamicSharedBytes = 0;
};

/// A metric from the CUPTI range profiler, summed (bytes, time) or time-weighted (percentages)
/// over the variant's kernels.
struct MetricValue {
    std::string name;  ///< e.g. "dram__bytes_read.sum"
    double value = 0;
    std::string unit;  ///< "ns", "bytes", "%"
};

struct MetricsResult {
    bool collected = false;
    std::string reason;  ///< why not collected, and how to enable it
    int passes = 0;
    std::vector<MetricValue> values;
};

/// The metric names asked for by default (gpu-notes.md: verified on the H200).
std::vector<std::string> defaultMetricNames();

// ---------------------------------------------------------------------------------------------
// Shapes and inputs

/// Where a profiled shape comes from.
struct ShapeSource {
    // Synthetic when `trace` is null.
    int batch = 1, heads = 16, kvHeads = 16;
    int64_t tokens = 4096;
    int headDim = 128;
    uint64_t seed = 1;
    // From a trace: one layer, one head (or all heads when head < 0).
    std::shared_ptr<const Trace> trace;
    int layer = 0, head = 0;
    GpuDType dtype = GpuDType::BF16;
};

/// Parses "B,H,T,D" (optionally "B,H,Hkv,T,D") into a synthetic source; the error names `what`.
Result<ShapeSource> parseShape(const std::string& text);

/// Host inputs of one shape: q [B,H,T,D], k/v [B,Hkv,T,D] as floats.
struct ProfileInputs {
    AttentionProblem problem;
    std::string description;  ///< "synthetic B=1 H=16 T=16384 D=128 bf16" or "trace.attn…: layer 3 head 5"
    bool causal = true;       ///< the data's native mask (decides the dense baseline)
    std::vector<float> q, k, v;
    /// Learned sink logit per query head of the problem (a trace layer with sinks, GPT-OSS);
    /// empty = none. Every softmax variant's reference then holds the sink, and GPU outputs
    /// (computed without it) are rescaled O' = O·exp(L − L') before they are scored.
    std::vector<float> sinks;

    /// One head as a [T, D] matrix (b, h: query head; K/V map h to its kv head).
    MatrixRM headMatrix(int b, int h, Which which) const;
};

/// The problem a source describes, checked, before any input exists.
struct ProfileProblem {
    AttentionProblem problem;
    std::string description;  ///< as ProfileInputs::description
    bool causal = true;
    uint64_t hostBytes = 0;  ///< Q, K, V as float32 on the host
};
Result<ProfileProblem> profileProblem(const ShapeSource& source);

/// Builds the inputs: N(0,1) values for synthetic sources (seeded), the trace's Q/K/V otherwise.
/// Refuses (OutOfMemory, naming the bytes needed and available) before generating or reading
/// anything when they do not fit in the host's available memory.
Result<ProfileInputs> loadProfileInputs(const ShapeSource& source);

// ---------------------------------------------------------------------------------------------
// Backends

struct BackendSample {
    double ms = 0;                      ///< the sample's time (kernel span on the GPU)
    std::vector<KernelRecord> kernels;  ///< absolute startUs on the backend's clock
};

/// Runs variants on prepared inputs. GPU: CUDA engine + CUPTI; CPU: the reference implementations.
class ProfilerBackend {
public:
    virtual ~ProfilerBackend() = default;
    virtual std::string label() const = 0;        ///< "GPU" or "CPU"
    virtual std::string description() const = 0;  ///< device, clocks, library versions
    virtual Json environment() const = 0;

    /// Ok when a problem of this shape fits the backend's memory (the GPU: its free memory);
    /// asked before the inputs are generated or loaded. Errors name the bytes needed and free.
    virtual Status checkFits(const AttentionProblem&) const { return Status::success(); }
    /// Uploads / keeps the inputs for the following calls.
    virtual Status prepare(const ProfileInputs& inputs) = 0;
    /// One timed run of `v` (cold: flush the L2/LLC first). `externalId` tags its records.
    virtual Result<BackendSample> runSample(const VariantSpec& v, uint64_t externalId, bool cold) = 0;
    /// Output rows [q0, q1) of head (b, h) from a run of `v` (decode: its single row; q0/q1
    /// are ignored). Rows the kernel left unwritten come back as NaN (the output is poisoned).
    virtual Result<MatrixRM> headOutput(const VariantSpec& v, int b, int h, int64_t q0, int64_t q1) = 0;
    /// Block mass [nb × nb] (block `blockSize`) of head (b, h) under `spec`, row-normalised mass.
    virtual Result<std::vector<double>> blockMass(int b, int h, const AttentionSpec& spec, int64_t blockSize) = 0;
    /// Hardware metrics of one run of `v`, in a replay pass separate from timing.
    virtual MetricsResult collectMetrics(const VariantSpec& v, const std::vector<std::string>& names) = 0;
};

/// Wall-clock CPU backend (referenceAttention / linearAttentionReference). Always available.
std::unique_ptr<ProfilerBackend> createCpuProfilerBackend();

/// The CUDA + CUPTI backend, or Unsupported with the reason (built without CUDA, no device,
/// CUPTI failed). Implemented in kernels/ (or core/nogpu/profiler_none.cpp).
Result<std::unique_ptr<ProfilerBackend>> createGpuProfilerBackend();

/// CUPTI overhead on measured kernel time: the same kernels timed with CUDA events with CUPTI
/// activity tracing off and on, interleaved, in one run.
struct OverheadRow {
    std::string variant;
    double msWithout = 0, msWith = 0;  ///< medians over rounds
    double percent = 0;                ///< (with - without) / without · 100
};
struct OverheadReport {
    int rounds = 0, repsPerRound = 0;
    std::vector<OverheadRow> rows;
    double meanPercent = 0;
};
/// Measures it on the GPU backend's device (Unsupported without CUDA).
Result<OverheadReport> measureCuptiOverhead(const ShapeSource& shape, const std::vector<std::string>& variants,
                                            int rounds, int reps, const ProgressFn& progress = {});

// ---------------------------------------------------------------------------------------------
// Profile runs (profiler_run.cpp)

enum class BackendChoice { Auto, Gpu, Cpu };

struct ProfileRequest {
    std::vector<ShapeSource> shapes;
    std::vector<std::string> variants;  ///< CLI tokens (parseVariant)
    std::string dense;                  ///< the baseline; "" = causal (or full for non-causal data)
    BackendChoice backend = BackendChoice::Auto;
    bool cold = false;  ///< flush L2 before every sample
    int warmup = 3;     ///< untimed runs per variant before sampling
    StoppingRule stop;
    bool metrics = false;
    std::vector<std::string> metricNames;  ///< empty: defaultMetricNames()
    bool accuracy = true;
    int64_t accuracyRows = 2048;  ///< query rows scored per head (evenly spaced chunks)
    int accuracyHeads = 1;        ///< heads scored (b = 0, h = 0…)
};

struct KernelSummary {
    std::string name;
    int grid[3] = {0, 0, 0}, block[3] = {0, 0, 0};
    int registers = 0, staticSharedBytes = 0, dynamicSharedBytes = 0;
    int launches = 0;
    double medianUs = 0;
};

struct VariantResult {
    std::string label;
    std::string backend;  ///< "GPU" / "CPU"
    bool isDense = false;
    std::string error;            ///< non-empty when the variant could not run (the row shows why)
    std::vector<double> samples;  ///< ms, in run order
    SampleStats stats;
    StopReason stop = StopReason::Continue;
    double flops = 0, bytes = 0;  ///< dense-equivalent FLOPs × density; minimal bytes moved
    double tflops = 0, gbps = 0;
    double ratioToDense = 0;   ///< median / dense median
    double density = 0;        ///< blockDensity
    double relError = -1;      ///< ‖O − O_dense‖/‖O_dense‖ (-1: not measured, see accuracyNote)
    double recall = -1;        ///< dense attention mass inside the mask (-1: not defined)
    std::string accuracyNote;  ///< why relError is not given when the variant ran (linear attention)
    std::vector<KernelSummary> kernels;
    MetricsResult metrics;
};

struct ShapeProfile {
    std::string description;
    AttentionProblem problem;
    std::string denseLabel;
    std::vector<VariantResult> variants;
    std::vector<KernelRecord> records;  ///< startUs relative to the report's first record
};

struct ProfileReport {
    std::string backend;  ///< label of the backend used
    std::string backendDescription;
    std::string fallbackReason;  ///< why the CPU was used when the GPU was wanted
    std::string mode;            ///< "hot" / "cold"
    std::string metricsNote;     ///< why metrics are missing (empty when collected or not asked)
    Json environment;
    std::vector<ShapeProfile> shapes;
    double wallSeconds = 0;
};

/// FLOPs the variant does on the problem: 4·B·H·T²·D × blockDensity for softmax variants,
/// the chunked-recurrence count for linear attention, 4·B·H·T·D for decode.
double variantFlops(const VariantSpec& v, const AttentionProblem& p);
/// Fewest bytes moved: Q, K, V read once, O (and lse) written once, at the problem's dtype.
double variantBytes(const VariantSpec& v, const AttentionProblem& p);

/// Runs the profile on the backend the caller picked (core never creates a GPU backend): `gpu`
/// when the request allows it and it is given, else the CPU (always available). `gpuUnavailable`
/// says why the caller has none: the report's fallback reason, or the error when the request
/// demands the GPU. Variants are warmed up, then sampled interleaved until each stops; accuracy
/// is computed on the CPU against the dense float32 reference; metrics (if asked) in a separate
/// replay pass. Cancellable through `progress`.
Result<ProfileReport> runProfile(const ProfileRequest& request, ProfilerBackend* gpu, const std::string& gpuUnavailable,
                                 const ProgressFn& progress = {});

/// The CLI's and the GUI's choice: the GPU backend (createGpuProfilerBackend, from the GPU
/// library the caller links) unless the request says CPU. Inline, so core's own objects never
/// reference the GPU library.
inline Result<ProfileReport> runProfileOnBestBackend(const ProfileRequest& request, const ProgressFn& progress = {}) {
    if (request.backend == BackendChoice::Cpu) return runProfile(request, nullptr, {}, progress);
    auto gpu = createGpuProfilerBackend();
    return runProfile(request, gpu ? gpu->get() : nullptr, gpu ? std::string() : gpu.message(), progress);
}

/// Same with a given backend (tests; the GUI's worker).
Result<ProfileReport> runProfileWith(ProfilerBackend& backend, const ProfileRequest& request,
                                     const ProgressFn& progress = {});

// ---------------------------------------------------------------------------------------------
// Exports (profiler_export.cpp)

/// Everything: environment, request summary, per-variant statistics, samples, metrics, records.
Json profileToJson(const ProfileReport& report);
/// The table, one row per shape × variant, with a header row.
std::string profileToCsv(const ProfileReport& report);
/// Chrome/Perfetto trace JSON: one pid per shape, one tid per (variant, stream) track, "M" name
/// events, "X" kernel slices with ts/dur in microseconds and the launch configuration as args.
Json profileToPerfetto(const ProfileReport& report);
/// A fixed-width text table for the terminal.
std::string profileToText(const ProfileReport& report);

/// Writes the export atomically; `format` is "json", "csv" or "perfetto".
Status writeProfile(const ProfileReport& report, const std::string& path, const std::string& format);

}  // namespace attnscope
