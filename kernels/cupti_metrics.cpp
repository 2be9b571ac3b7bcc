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
}  // namespace

MetricsResult measureRangeMetrics(int deviceIndex, const std::vector<std::string>& names,
                                  const std::function<Status()>& launch) {
    MetricsResult out;
    auto fail = [&](const std::string& why) {
        out.collected = false;
        out.reason = "metrics not collected: " + why;
        return out;
    };
#define ATTNSCOPE_CUPTI_STEP(call, params)                   \
    do {                                                     \
        CUptiResult r_ = call(&params);                      \
        if (r_ != CUPTI_SUCCESS) return fail(failure(#call, r_)); \
    } while (0)

    std::vector<const char*> metricNames;
    for (const auto& n : names) metricNames.push_back(n.c_str());
    auto ctx = currentContext();
    if (!ctx) return fail(ctx.message());

    CUpti_Profiler_Initialize_Params init{CUpti_Profiler_Initialize_Params_STRUCT_SIZE};
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerInitialize, init);
    CUpti_Device_GetChipName_Params chip{CUpti_Device_GetChipName_Params_STRUCT_SIZE};
    chip.deviceIndex = size_t(deviceIndex);
    ATTNSCOPE_CUPTI_STEP(cuptiDeviceGetChipName, chip);

    CUpti_Profiler_GetCounterAvailability_Params avail{CUpti_Profiler_GetCounterAvailability_Params_STRUCT_SIZE};
    avail.ctx = *ctx;
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerGetCounterAvailability, avail);
    std::vector<uint8_t> availability(avail.counterAvailabilityImageSize);
    avail.pCounterAvailabilityImage = availability.data();
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerGetCounterAvailability, avail);

    // Keep the metrics this chip knows: one unknown name would otherwise fail them all.
    auto addable = [&](std::vector<const char*> list) {  // by value: CUPTI takes a non-const array
        Session probe;
        CUpti_Profiler_Host_Initialize_Params hi{CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE};
        hi.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
        hi.pChipName = chip.pChipName;
        hi.pCounterAvailabilityImage = availability.data();
        if (cuptiProfilerHostInitialize(&hi) != CUPTI_SUCCESS) return false;
        probe.host = hi.pHostObject;
        CUpti_Profiler_Host_ConfigAddMetrics_Params a{CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE};
        a.pHostObject = probe.host;
        a.ppMetricNames = list.data();
        a.numMetrics = list.size();
        return cuptiProfilerHostConfigAddMetrics(&a) == CUPTI_SUCCESS;
    };
    std::vector<std::string> usable;
    std::string unsupported;
    if (addable(metricNames)) {
        usable = names;
    } else {
        for (const auto& n : names) {
            if (addable({n.c_str()})) usable.push_back(n);
            else unsupported += (unsupported.empty() ? "" : ", ") + n;
        }
    }
    if (usable.empty())
        return fail("none of the requested metrics is known on " + std::string(chip.pChipName ? chip.pChipName : "this chip") +
                    " (" + unsupported + ")");
    metricNames.clear();
    for (const auto& n : usable) metricNames.push_back(n.c_str());

    Session session;
    CUpti_Profiler_Host_Initialize_Params hostInit{CUpti_Profiler_Host_Initialize_Params_STRUCT_SIZE};
    hostInit.profilerType = CUPTI_PROFILER_TYPE_RANGE_PROFILER;
    hostInit.pChipName = chip.pChipName;
    hostInit.pCounterAvailabilityImage = availability.data();
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostInitialize, hostInit);
    session.host = hostInit.pHostObject;

    CUpti_Profiler_Host_ConfigAddMetrics_Params add{CUpti_Profiler_Host_ConfigAddMetrics_Params_STRUCT_SIZE};
    add.pHostObject = session.host;
    add.ppMetricNames = metricNames.data();
    add.numMetrics = metricNames.size();
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostConfigAddMetrics, add);
    CUpti_Profiler_Host_GetConfigImageSize_Params cfgSize{CUpti_Profiler_Host_GetConfigImageSize_Params_STRUCT_SIZE};
    cfgSize.pHostObject = session.host;
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetConfigImageSize, cfgSize);
    std::vector<uint8_t> config(cfgSize.configImageSize);
    CUpti_Profiler_Host_GetConfigImage_Params cfg{CUpti_Profiler_Host_GetConfigImage_Params_STRUCT_SIZE};
    cfg.pHostObject = session.host;
    cfg.configImageSize = config.size();
    cfg.pConfigImage = config.data();
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetConfigImage, cfg);
    CUpti_Profiler_Host_GetNumOfPasses_Params passes{CUpti_Profiler_Host_GetNumOfPasses_Params_STRUCT_SIZE};
    passes.configImageSize = config.size();
    passes.pConfigImage = config.data();
    ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostGetNumOfPasses, passes);
    out.passes = int(passes.numOfPasses);

    // Privilege refusals (CUPTI_ERROR_INSUFFICIENT_PRIVILEGES) surface here.
    CUpti_RangeProfiler_Enable_Params enable{CUpti_RangeProfiler_Enable_Params_STRUCT_SIZE};
    enable.ctx = *ctx;
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerEnable, enable);
    session.profiler = enable.pRangeProfilerObject;

    CUpti_RangeProfiler_GetCounterDataSize_Params dataSize{CUpti_RangeProfiler_GetCounterDataSize_Params_STRUCT_SIZE};
    dataSize.pRangeProfilerObject = session.profiler;
    dataSize.pMetricNames = metricNames.data();
    dataSize.numMetrics = metricNames.size();
    dataSize.maxNumOfRanges = kMaxRanges;
    dataSize.maxNumRangeTreeNodes = kMaxRanges;
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerGetCounterDataSize, dataSize);
    std::vector<uint8_t> counterData(dataSize.counterDataSize);
    CUpti_RangeProfiler_CounterDataImage_Initialize_Params dataInit{
        CUpti_RangeProfiler_CounterDataImage_Initialize_Params_STRUCT_SIZE};
    dataInit.pRangeProfilerObject = session.profiler;
    dataInit.counterDataSize = counterData.size();
    dataInit.pCounterData = counterData.data();
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerCounterDataImageInitialize, dataInit);

    CUpti_RangeProfiler_SetConfig_Params set{CUpti_RangeProfiler_SetConfig_Params_STRUCT_SIZE};
    set.pRangeProfilerObject = session.profiler;
    set.configSize = config.size();
    set.pConfig = config.data();
    set.counterDataImageSize = counterData.size();
    set.pCounterDataImage = counterData.data();
    set.range = CUPTI_AutoRange;          // one range per kernel launch
    set.replayMode = CUPTI_KernelReplay;  // CUPTI replays each kernel for every pass
    set.maxRangesPerPass = kMaxRanges;
    set.numNestingLevels = 1;
    set.minNestingLevel = 1;
    set.passIndex = 0;
    set.targetNestingLevel = 1;
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerSetConfig, set);

    for (bool allSubmitted = false; !allSubmitted;) {
        CUpti_RangeProfiler_Start_Params start{CUpti_RangeProfiler_Start_Params_STRUCT_SIZE};
        start.pRangeProfilerObject = session.profiler;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerStart, start);
        if (Status st = launch(); !st) return fail("the replayed launch failed: " + st.message());
        CUpti_RangeProfiler_Stop_Params stop{CUpti_RangeProfiler_Stop_Params_STRUCT_SIZE};
        stop.pRangeProfilerObject = session.profiler;
        ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerStop, stop);
        allSubmitted = stop.isAllPassSubmitted != 0;
    }
    CUpti_RangeProfiler_DecodeData_Params decode{CUpti_RangeProfiler_DecodeData_Params_STRUCT_SIZE};
    decode.pRangeProfilerObject = session.profiler;
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerDecodeData, decode);
    CUpti_RangeProfiler_GetCounterDataInfo_Params info{CUpti_RangeProfiler_GetCounterDataInfo_Params_STRUCT_SIZE};
    info.pCounterDataImage = counterData.data();
    info.counterDataImageSize = counterData.size();
    ATTNSCOPE_CUPTI_STEP(cuptiRangeProfilerGetCounterDataInfo, info);
    if (info.numTotalRanges == 0) return fail("the range profiler recorded no kernel ranges");

    // Sums add over the variant's kernels; percentages are weighted by each kernel's duration.
    std::vector<double> total(usable.size(), 0.0), weighted(usable.size(), 0.0);
    double totalTime = 0;
    const auto timeIt = std::find(usable.begin(), usable.end(), std::string(kTimeMetric));
    std::vector<double> values(usable.size());
    for (size_t range = 0; range < info.numTotalRanges; ++range) {
        CUpti_Profiler_Host_EvaluateToGpuValues_Params eval{CUpti_Profiler_Host_EvaluateToGpuValues_Params_STRUCT_SIZE};
        eval.pHostObject = session.host;
        eval.pCounterDataImage = counterData.data();
        eval.counterDataImageSize = counterData.size();
        eval.rangeIndex = range;
        eval.ppMetricNames = metricNames.data();
        eval.numMetrics = metricNames.size();
        eval.pMetricValues = values.data();
        ATTNSCOPE_CUPTI_STEP(cuptiProfilerHostEvaluateToGpuValues, eval);
        const double t = timeIt != usable.end() ? values[size_t(timeIt - usable.begin())] : 1.0;
        totalTime += t;
        for (size_t i = 0; i < usable.size(); ++i) {
            total[i] += values[i];
            weighted[i] += values[i] * t;
        }
    }
#undef ATTNSCOPE_CUPTI_STEP
    for (size_t i = 0; i < usable.size(); ++i) {
        MetricValue m;
        m.name = usable[i];
        m.unit = unitOf(usable[i]);
        m.value = isSum(usable[i]) ? total[i] : (totalTime > 0 ? weighted[i] / totalTime : 0.0);
        out.values.push_back(std::move(m));
    }
    out.collected = true;
    if (!unsupported.empty()) out.reason = "not available on this chip: " + unsupported;
    return out;
}

}  // namespace attnscope::gpu
