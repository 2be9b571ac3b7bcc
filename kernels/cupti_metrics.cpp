// Hardware metrics from the CUPTI range profiler (CUDA 13: cupti_range_profiler.h +
// cupti_profiler_host.h), auto range + kernel replay, one range per kernel.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <cupti.h>
#include <cupti_profiler_host.h>
#include <cupti_profiler_target.h>
#include <cupti_range_profiler.h>
#include <cupti_target.h>

#include <algorithm>

#include "cupti_session.h"
#include "fault_injection.h"

namespace attnscope::gpu {
namespace {
constexpr size_t kMaxRanges = 64;  // kernels per variant run, with room to spare
constexpr int kDriverApiVersion = 12000;
constexpr const char* kTimeMetric = "gpu__time_duration.sum";

const char* kHowToEnable =
    "GPU performance counters are restricted to administrators by the driver. To collect metrics run as root, "
    "or grant the binary CAP_SYS_ADMIN (or CAP_PERFMON), or load the driver with "
    "NVreg_RestrictProfilingToAdminUsers=0 (e.g. 'options nvidia NVreg_RestrictProfilingToAdminUsers=0' in "
    "/etc/modprobe.d, then reboot; check with: grep RmProfilingAdminOnly /proc/driver/nvidia/params). "
    "Timings above are unaffected.";

std::string unitOf(const std::string& metric) {
    if (metric.find("pct") != std::string::npos) return "%";
    if (metric.find("bytes") != std::string::npos) return "bytes";
    if (metric.find("time_duration") != std::string::npos) return "ns";
    return "";
}

bool isSum(const std::string& metric) { return metric.size() > 4 && metric.substr(metric.size() - 4) == ".sum"; }

/// Failure text naming the call; adds the permission advice for privilege errors.
std::string failure(const char* call, CUptiResult r) {
    std::string s = std::string(call) + " failed: " + cuptiResultText(r);
    if (r == CUPTI_ERROR_INSUFFICIENT_PRIVILEGES) s += ". " + std::string(kHowToEnable);
    if (r == CUPTI_ERROR_NOT_SUPPORTED) s += ". This device or configuration does not support the range profiler.";
    return s;
}

Result<CUcontext> currentContext() {
    using GetCurrent = CUresult (*)(CUcontext*);
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaFree(nullptr) != cudaSuccess ||
        cudaGetDriverEntryPointByVersion("cuCtxGetCurrent", &fn, kDriverApiVersion, cudaEnableDefault, &q) !=
            cudaSuccess ||
        !fn)
        return Result<CUcontext>(ErrorCode::Device, "cannot resolve cuCtxGetCurrent from the CUDA driver");
    CUcontext ctx = nullptr;
    if (reinterpret_cast<GetCurrent>(fn)(&ctx) != CUDA_SUCCESS || !ctx)
        return Result<CUcontext>(ErrorCode::Device, "no current CUDA context for the range profiler");
    return ctx;
}

/// Owns the host object and the range profiler object; releases them on every exit path.
struct Session {
    CUpti_Profiler_Host_Object* host = nullptr;
    CUpti_RangeProfiler_Object* profiler = nullptr;
    ~Session() {
        if (profiler) {
            CUpti_RangeProfiler_Disable_Params p{CUpti_RangeProfiler_Disable_Params_STRUCT_SIZE};
            p.pRangeProfilerObject = profiler;
            cuptiRangeProfilerDisable(&p);
        }
        if (host) {
            CUpti_Profiler_Host_Deinitialize_Params p{CUpti_Profiler_Host_Deinitialize_Params_STRUCT_SIZE};
            p.pHostObject = host;
            cuptiProfilerHostDeinitialize(&p);
        }
    }
};

// In the steps below: a CUPTI call that fails ends the step with its failure text.
#define ATTNSCOPE_CUPTI_STEP(call, params)                  \
    do {                                                    \
        CUptiResult r_ = call(&params);                     \
        if (r_ != CUPTI_SUCCESS) return failure(#call, r_); \
    } while (0)

/// One range-profiler measurement, in the order CUPTI requires. Each step returns an empty
/// string, or what failed and why.
class RangeRun {
public:
    explicit RangeRun(int deviceIndex) : m_deviceIndex(deviceIndex) {}

    /// The profiler, the chip's name and its counter availability image.
    std::string openDevice() {
        auto ctx = currentContext();
        if (!ctx) return ctx.message();
        m_ctx = *ctx;
        CUpti_Profiler_Initialize_Params init{CUpti_Profiler_Initialize_Params_STRUCT_SIZE};
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerInitialize, init);
        CUpti_Device_GetChipName_Params chip{CUpti_Device_GetChipName_Params_STRUCT_SIZE};
        chip.deviceIndex = size_t(m_deviceIndex);
        ATTNSCOPE_CUPTI_STEP(cuptiDeviceGetChipName, chip);
        m_chip = chip.pChipName;
        CUpti_Profiler_GetCounterAvailability_Params avail{CUpti_Profiler_GetCounterAvailability_Params_STRUCT_SIZE};
        avail.ctx = m_ctx;
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerGetCounterAvailability, avail);
        m_availability.resize(avail.counterAvailabilityImageSize);
        avail.pCounterAvailabilityImage = m_availability.data();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerGetCounterAvailability, avail);
        return {};
    }

    /// Keeps the metrics this chip knows (one unknown name would otherwise fail them all);
    /// the others are listed in unsupported().
    std::string chooseMetrics(const std::vector<std::string>& names) {
        if (addable(names)) {
            m_usable = names;
        } else {
            for (const auto& n : names) {
                if (addable({n}))
                    m_usable.push_back(n);
                else
                    m_unsupported += (m_unsupported.empty() ? "" : ", ") + n;
            }
        }
        if (m_usable.empty())
            return "none of the requested metrics is known on " + std::string(m_chip ? m_chip : "this chip") + " (" +
                   m_unsupported + ")";
        for (const auto& n : m_usable) m_names.push_back(n.c_str());
        return {};
    }

    /// The host object with the chosen metrics, its configuration image and the number of passes.
    std::string configure(int& passesOut) {
        CUpti_Profiler_Host_Initialize_Params hostInit{CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE};
        hostInit.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
        hostInit.pChipName = m_chip;
        hostInit.pCounterAvailabilityImage = m_availability.data();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostInitialize, hostInit);
        m_session.host = hostInit.pHostObject;
        CUpti_Profiler_Host_ConfigAddMetrics_Params add{CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE};
        add.pHostObject = m_session.host;
        add.ppMetricNames = m_names.data();
        add.numMetrics = m_names.size();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostConfigAddMetrics, add);
        CUpti_Profiler_Host_GetConfigImageSize_Params size{CUpti_Profiler_Host_GetConfigImageSize_Params_STRUCT_SIZE};
        size.pHostObject = m_session.host;
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetConfigImageSize, size);
        m_config.resize(size.configImageSize);
        CUpti_Profiler_Host_GetConfigImage_Params cfg{CUpti_Profiler_Host_GetConfigImage_Params_STRUCT_SIZE};
        cfg.pHostObject = m_session.host;
        cfg.configImageSize = m_config.size();
        cfg.pConfigImage = m_config.data();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetConfigImage, cfg);
        CUpti_Profiler_Host_GetNumOfPasses_Params passes{CUpti_Profiler_Host_GetNumOfPasses_Params_STRUCT_SIZE};
        passes.configImageSize = m_config.size();
        passes.pConfigImage = m_config.data();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetNumOfPasses, passes);
        passesOut = int(passes.numOfPasses);
        return {};
    }

    /// Enables the range profiler on the context (privilege refusals, CUPTI_ERROR_INSUFFICIENT_
    /// PRIVILEGES, surface here), sizes the counter data and sets auto range + kernel replay.
    std::string enable() {
        CUpti_RangeProfiler_Enable_Params enable{CUpti_RangeProfiler_Enable_Params_STRUCT_SIZE};
        enable.ctx = m_ctx;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerEnable, enable);
        m_session.profiler = enable.pRangeProfilerObject;
        CUpti_RangeProfiler_GetCounterDataSize_Params size{CUpti_RangeProfiler_GetCounterDataSize_Params_STRUCT_SIZE};
        size.pRangeProfilerObject = m_session.profiler;
        size.pMetricNames = m_names.data();
        size.numMetrics = m_names.size();
        size.maxNumOfRanges = kMaxRanges;
        size.maxNumRangeTreeNodes = kMaxRanges;
        if (const std::string injected = faultFires(FaultSite::CuptiMetrics); !injected.empty())  // tests
            return failure("cuptiRangeProfilerGetCounterDataSize", CUPTI_ERROR_INSUFFICIENT_PRIVILEGES) + injected;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerGetCounterDataSize, size);
        m_counterData.resize(size.counterDataSize);
        CUpti_RangeProfiler_CounterDataImage_Initialize_Params init{
            CUpti_RangeProfiler_CounterDataImage_Initialize_Params_STRUCT_SIZE};
        init.pRangeProfilerObject = m_session.profiler;
        init.counterDataSize = m_counterData.size();
        init.pCounterData = m_counterData.data();
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerCounterDataImageInitialize, init);
        CUpti_RangeProfiler_SetConfig_Params set{CUpti_RangeProfiler_SetConfig_Params_STRUCT_SIZE};
        set.pRangeProfilerObject = m_session.profiler;
        set.configSize = m_config.size();
        set.pConfig = m_config.data();
        set.counterDataImageSize = m_counterData.size();
        set.pCounterDataImage = m_counterData.data();
        set.range = CUPTI_AutoRange;          // one range per kernel launch
        set.replayMode = CUPTI_KernelReplay;  // CUPTI replays each kernel for every pass
        set.maxRangesPerPass = kMaxRanges;
        set.numNestingLevels = 1;
        set.minNestingLevel = 1;
        set.passIndex = 0;
        set.targetNestingLevel = 1;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerSetConfig, set);
        return {};
    }

    /// Runs `launch` once per pass until CUPTI has every pass, then decodes the counter data.
    std::string replay(const std::function<Status()>& launch) {
        for (bool allSubmitted = false; !allSubmitted;) {
            CUpti_RangeProfiler_Start_Params start{CUpti_RangeProfiler_Start_Params_STRUCT_SIZE};
            start.pRangeProfilerObject = m_session.profiler;
            ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerStart, start);
            if (Status st = launch(); !st) return "the replayed launch failed: " + st.message();
            CUpti_RangeProfiler_Stop_Params stop{CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE};
            stop.pRangeProfilerObject = m_session.profiler;
            ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerStop, stop);
            allSubmitted = stop.isAllPassSubmitted != 0;
        }
        CUpti_RangeProfiler_DecodeData_Params decode{CUpti_RangeProfiler_DecodeData_Params_STRUCT_SIZE};
        decode.pRangeProfilerObject = m_session.profiler;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerDecodeData, decode);
        return {};
    }

    /// The metric values over the recorded ranges: sums add over the variant's kernels,
    /// percentages are weighted by each kernel's duration.
    std::string evaluate(std::vector<MetricValue>& out) {
        CUpti_RangeProfiler_GetCounterDataInfo_Params info{CUpti_RangeProfiler_GetCounterDataInfo_Params_STRUCT_SIZE};
        info.pCounterDataImage = m_counterData.data();
        info.counterDataImageSize = m_counterData.size();
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerGetCounterDataInfo, info);
        if (info.numTotalRanges == 0) return "the range profiler recorded no kernel ranges";
        const size_t n = m_usable.size();
        std::vector<double> total(n, 0.0), weighted(n, 0.0), values(n);
        double totalTime = 0;
        const auto timeIt = std::find(m_usable.begin(), m_usable.end(), std::string(kTimeMetric));
        for (size_t range = 0; range < info.numTotalRanges; ++range) {
            CUpti_Profiler_Host_EvaluateToGpuValues_Params eval{
                CUpti_Profiler_Host_EvaluateToGpuValues_Params_STRUCT_SIZE};
            eval.pHostObject = m_session.host;
            eval.pCounterDataImage = m_counterData.data();
            eval.counterDataImageSize = m_counterData.size();
            eval.rangeIndex = range;
            eval.ppMetricNames = m_names.data();
            eval.numMetrics = m_names.size();
            eval.pMetricValues = values.data();
            ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostEvaluateToGpuValues, eval);
            const double t = timeIt != m_usable.end() ? values[size_t(timeIt - m_usable.begin())] : 1.0;
            totalTime += t;
            for (size_t i = 0; i < n; ++i) {
                total[i] += values[i];
                weighted[i] += values[i] * t;
            }
        }
        for (size_t i = 0; i < n; ++i) {
            MetricValue m;
            m.name = m_usable[i];
            m.unit = unitOf(m_usable[i]);
            m.value = isSum(m_usable[i]) ? total[i] : (totalTime > 0 ? weighted[i] / totalTime : 0.0);
            out.push_back(std::move(m));
        }
        return {};
    }

    const std::string& unsupported() const { return m_unsupported; }

private:
    /// Whether a host object accepts these metric names on this chip.
    bool addable(const std::vector<std::string>& list) const {
        std::vector<const char*> names;  // CUPTI takes a non-const array
        for (const auto& n : list) names.push_back(n.c_str());
        Session probe;
        CUpti_Profiler_Host_Initialize_Params hi{CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE};
        hi.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
        hi.pChipName = m_chip;
        hi.pCounterAvailabilityImage = m_availability.data();
        if (cuptiProfilerHostInitialize(&hi) != CUPTI_SUCCESS) return false;
        probe.host = hi.pHostObject;
        CUpti_Profiler_Host_ConfigAddMetrics_Params a{CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE};
        a.pHostObject = probe.host;
        a.ppMetricNames = names.data();
        a.numMetrics = names.size();
        return cuptiProfilerHostConfigAddMetrics(&a) == CUPTI_SUCCESS;
    }

    int m_deviceIndex;
    CUcontext m_ctx = nullptr;
    const char* m_chip = nullptr;
    std::vector<uint8_t> m_availability, m_config, m_counterData;
    std::vector<std::string> m_usable;
    std::vector<const char*> m_names;  // m_usable's c_str(), for CUPTI
    std::string m_unsupported;
    Session m_session;  // declared last: released first, before the images it used
};
#undef ATTNSCOPE_CUPTI_STEP
}  // namespace

MetricsResult measureRangeMetrics(int deviceIndex, const std::vector<std::string>& names,
                                  const std::function<Status()>& launch) {
    MetricsResult out;
    RangeRun run(deviceIndex);
    std::string error = run.openDevice();
    if (error.empty()) error = run.chooseMetrics(names);
    if (error.empty()) error = run.configure(out.passes);
    if (error.empty()) error = run.enable();
    if (error.empty()) error = run.replay(launch);
    if (error.empty()) error = run.evaluate(out.values);
    if (!error.empty()) {
        out.collected = false;
        out.values.clear();
        out.reason = "metrics not collected: " + error;
        return out;
    }
    out.collected = true;
    if (!run.unsupported().empty()) out.reason = "not available on this chip: " + run.unsupported();
    return out;
}

}  // namespace attnscope::gpu
