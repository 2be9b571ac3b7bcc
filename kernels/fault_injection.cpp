#include "fault_injection.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "cuda_check.h"

namespace attnscope::gpu {
namespace {

struct Armed {
    std::mutex mutex;
    bool envRead = false;
    int site = -1;  ///< FaultSite, -1 = none
    int remaining = 0;
    std::string spec;  ///< as given, for the message
};

Armed& armed() {
    static Armed a;
    return a;
}

void readEnvLocked(Armed& a) {
    if (a.envRead) return;
    a.envRead = true;
    const char* env = std::getenv("ATTNSCOPE_INJECT_FAULT");
    if (!env || !*env) return;
    FaultSite site;
    int n = 0;
    std::string error;
    if (!parseFaultSpec(env, site, n, &error)) {  // said once, and nothing is injected
        std::fprintf(stderr, "attnscope: %s; no fault injected\n", error.c_str());
        return;
    }
    a.site = int(site), a.remaining = n, a.spec = env;
}

}  // namespace

const char* faultSiteName(FaultSite site) {
    switch (site) {
    case FaultSite::ProfileLaunch: return "profile-launch";
    case FaultSite::MapPass: return "map-pass";
    case FaultSite::AnalysisUpload: return "analysis-upload";
    case FaultSite::AnalysisLaunch: return "analysis-launch";
    case FaultSite::CuptiMetrics: return "cupti-metrics";
    case FaultSite::Count: break;
    }
    return "?";
}

cudaError_t faultSiteError(FaultSite site) {
    return site == FaultSite::AnalysisUpload ? cudaErrorMemoryAllocation : cudaErrorLaunchOutOfResources;
}

bool parseFaultSpec(const std::string& text, FaultSite& site, int& n, std::string* error) {
    const size_t colon = text.rfind(':');
    const std::string name = text.substr(0, colon);
    for (int s = 0; s < int(FaultSite::Count); ++s) {
        if (name != faultSiteName(FaultSite(s))) continue;
        char* end = nullptr;
        const std::string count = colon == std::string::npos ? "" : text.substr(colon + 1);
        const long v = std::strtol(count.c_str(), &end, 10);
        if (count.empty() || *end != '\0' || v < 1 || v > 1000000000) break;
        site = FaultSite(s), n = int(v);
        return true;
    }
    if (error)
        *error = "ATTNSCOPE_INJECT_FAULT=" + text +
                 ": expected SITE:N with SITE one of profile-launch, map-pass, analysis-upload, analysis-launch, "
                 "cupti-metrics and N >= 1";
    return false;
}

void armFault(FaultSite site, int n) {
    Armed& a = armed();
    std::lock_guard lock(a.mutex);
    a.envRead = true;  // an explicit arm replaces the environment's
    a.site = int(site), a.remaining = n;
    a.spec = std::string(faultSiteName(site)) + ":" + std::to_string(n);
}

void disarmFaults() {
    Armed& a = armed();
    std::lock_guard lock(a.mutex);
    a.envRead = true;
    a.site = -1, a.remaining = 0;
}

std::string faultFires(FaultSite site) {
    Armed& a = armed();
    std::lock_guard lock(a.mutex);
    readEnvLocked(a);
    if (a.site != int(site) || a.remaining <= 0) return {};
    if (--a.remaining > 0) return {};
    a.site = -1;  // once: the next job runs
    return " [injected: ATTNSCOPE_INJECT_FAULT=" + a.spec + "]";
}

Status faultAt(FaultSite site, const std::string& what, const char* file, int line) {
    const std::string injected = faultFires(site);
    if (injected.empty()) return {};
    Status s = cudaStatus(faultSiteError(site), what.c_str(), file, line);
    return {s.code(), s.message() + injected};
}

}  // namespace attnscope::gpu
