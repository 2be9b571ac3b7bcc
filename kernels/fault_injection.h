#pragma once
// GPU fault injection for tests: the one home of ATTNSCOPE_INJECT_FAULT=<site>:<n>.
//
// The n-th CUDA call at <site> (counted from when the fault is armed, 1 = the first) fails with
// the CUDA error a real failure there gives, through the same Status the real error would take
// (cudaStatus: the call, file:line, the CUDA error's name and text), with " [injected:
// ATTNSCOPE_INJECT_FAULT=site:n]" appended so a log says it was a test. The call is not issued
// (a refused launch or copy). The fault fires once, then the site works again, so a test can
// check that the next job succeeds. Sites:
//   profile-launch   CudaEngine::run: the kernel launch of a profiled variant (also the self-test's
//                    forward runs)                           -> cudaErrorLaunchOutOfResources
//   map-pass         CudaEngine::pool: the map's pass launches (pass 1 and pass 2)
//                                                            -> cudaErrorLaunchOutOfResources
//   analysis-upload  LayerAnalyzer: a Q/K/V host-to-device copy of a layer
//                                                            -> cudaErrorMemoryAllocation
//   analysis-launch  LayerAnalyzer: an analysis pass launch  -> cudaErrorLaunchOutOfResources
//   cupti-metrics    the CUPTI range profiler of `profile --metrics` (cupti_metrics.cpp), where a
//                    driver that restricts counters to administrators refuses (ERR_NVGPUCTRPERM):
//                    cuptiRangeProfilerGetCounterDataSize -> CUPTI_ERROR_INSUFFICIENT_PRIVILEGES,
//                    with the text that says how to enable counters; timing is unaffected
// The environment variable is read when the first site is reached; tests arm a site in process
// with armFault(). Thread-safe (the analysis uploads run on their own thread).
#include <cuda_runtime_api.h>

#include <string>

#include "attnscope/status.h"

namespace attnscope::gpu {

enum class FaultSite { ProfileLaunch, MapPass, AnalysisUpload, AnalysisLaunch, CuptiMetrics, Count };

/// "profile-launch", "map-pass", "analysis-upload", "analysis-launch", "cupti-metrics".
const char* faultSiteName(FaultSite site);
/// The error injected at a site.
cudaError_t faultSiteError(FaultSite site);

/// Arms `site` to fail at its n-th call from now (n >= 1); disarms every other site.
void armFault(FaultSite site, int n);
/// Disarms every site.
void disarmFaults();
/// Parses "<site>:<n>" (the environment variable's value); false with `error` set otherwise.
bool parseFaultSpec(const std::string& text, FaultSite& site, int& n, std::string* error);

/// Counts one call at `site`: when this is the armed call, " [injected: ATTNSCOPE_INJECT_FAULT=
/// site:n]" (the caller fails as the real error would and appends it), else "".
std::string faultFires(FaultSite site);

/// Counts one call at `site`: the Status its injected error gives when this is the armed call,
/// else success. `what` names the call as cudaStatus would.
Status faultAt(FaultSite site, const std::string& what, const char* file, int line);

}  // namespace attnscope::gpu

/// Returns the injected failure of `site` from the enclosing function when this call is the one.
#define ATTNSCOPE_FAULT_POINT(site, what)                                                                    \
    do {                                                                                                     \
        ::attnscope::Status attnscopeFault_ = ::attnscope::gpu::faultAt((site), (what), __FILE__, __LINE__); \
        if (!attnscopeFault_) return attnscopeFault_;                                                        \
    } while (0)
