// CUPTI activity tracing: buffers, records, external correlation and demangling.
#include "cupti_session.h"

#include <cupti.h>
#include <cupti_activity.h>
#include <cxxabi.h>

#include <cstdlib>
#include <memory>

namespace attnscope::gpu {
namespace {
// Kineto's buffer size: large enough that a profile's records fit in a few buffers (each record
// is ~200 bytes), small enough that requesting one stays cheap.
constexpr size_t kBufferBytes = size_t(4) << 20;
constexpr size_t kRecordAlignment = 8;  // CUPTI requires 8-byte aligned buffers
constexpr CUpti_ExternalCorrelationKind kExternalKind = CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0;
// Kernel and external-correlation records are required; runtime/driver API records only help
// CUPTI correlate launches, so failing to enable them is not fatal.
constexpr CUpti_ActivityKind kRequiredKinds[] = {CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL,
                                                 CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION};
constexpr CUpti_ActivityKind kOptionalKinds[] = {CUPTI_ACTIVITY_KIND_RUNTIME, CUPTI_ACTIVITY_KIND_DRIVER};

Status cuptiStatus(CUptiResult r, const char* what) {
    if (r == CUPTI_SUCCESS) return Status::success();
    return {ErrorCode::Device, std::string(what) + " failed: " + cuptiResultText(r)};
}

void CUPTIAPI requestThunk(uint8_t** buffer, size_t* size, size_t* maxNumRecords) {
    CuptiActivity::instance();  // keep the instance alive before the first buffer
    *buffer = static_cast<uint8_t*>(std::aligned_alloc(kRecordAlignment, kBufferBytes));
    *size = *buffer ? kBufferBytes : 0;
    *maxNumRecords = 0;  // as many as fit
}
}  // namespace

std::string cuptiResultText(int result) {
    const char* s = nullptr;
    if (cuptiGetResultString(static_cast<CUptiResult>(result), &s) != CUPTI_SUCCESS || !s) s = "unknown CUPTI error";
    return std::string(s) + " (" + std::to_string(result) + ")";
}

std::string demangleName(const char* name) {
    if (!name) return "<unnamed kernel>";
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
    return status == 0 && d ? std::string(d.get()) : std::string(name);
}

CuptiActivity& CuptiActivity::instance() {
    static CuptiActivity* a = new CuptiActivity;  // never destroyed: CUPTI may call back at exit
    return *a;
}

void CuptiActivity::bufferRequested(uint8_t** buffer, size_t* size, size_t* maxNumRecords) {
    requestThunk(buffer, size, maxNumRecords);
}

void CuptiActivity::bufferCompleted(void* context, uint32_t streamId, uint8_t* buffer, size_t, size_t validSize) {
    instance().consume(context, streamId, buffer, validSize);
    std::free(buffer);
}

void CuptiActivity::consume(void* context, uint32_t streamId, uint8_t* buffer, size_t validSize) {
    std::vector<KernelRecord> kernels;
    std::vector<std::pair<uint32_t, uint64_t>> external;
    CUpti_Activity* record = nullptr;
    while (validSize > 0 && cuptiActivityGetNextRecord(buffer, validSize, &record) == CUPTI_SUCCESS) {
        if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL || record->kind == CUPTI_ACTIVITY_KIND_KERNEL) {
            const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
            if (k->start == 0 && k->end == 0) continue;  // no timing collected for this launch
            KernelRecord r;
            r.name = demangleName(k->name);
            r.correlationId = k->correlationId;
            r.deviceId = k->deviceId;
            r.streamId = k->streamId;
            r.startUs = double(k->start) * 1e-3;
            r.durationUs = double(k->end - k->start) * 1e-3;
            r.grid[0] = k->gridX, r.grid[1] = k->gridY, r.grid[2] = k->gridZ;
            r.block[0] = k->blockX, r.block[1] = k->blockY, r.block[2] = k->blockZ;
            r.registers = k->registersPerThread;
            r.staticSharedBytes = k->staticSharedMemory;
            r.dynamicSharedBytes = k->dynamicSharedMemory;
            kernels.push_back(std::move(r));
        } else if (record->kind == CUPTI_ACTIVITY_KIND_EXTERNAL_CORRELATION) {
            const auto* e = reinterpret_cast<const CUpti_ActivityExternalCorrelation*>(record);
            if (e->externalKind == kExternalKind) external.push_back({e->correlationId, e->externalId});
        }
    }
    size_t dropped = 0;
    cuptiActivityGetNumDroppedRecords(static_cast<CUcontext>(context), streamId, &dropped);
    std::lock_guard lock(m_mutex);
    m_dropped += dropped;
    for (auto& k : kernels) m_kernels.push_back(std::move(k));
    for (auto [c, id] : external) m_external[c] = id;
}

Status CuptiActivity::enable() {
    std::lock_guard lock(m_mutex);
    if (m_enabled) return Status::success();
    if (!m_registered) {
        auto completed = [](CUcontext ctx, uint32_t streamId, uint8_t* buffer, size_t size, size_t validSize) {
            bufferCompleted(ctx, streamId, buffer, size, validSize);
        };
        Status st =
            cuptiStatus(cuptiActivityRegisterCallbacks(requestThunk, completed), "cuptiActivityRegisterCallbacks");
        if (!st) return st;
        m_registered = true;
    }
    for (CUpti_ActivityKind k : kRequiredKinds) {
        Status st = cuptiStatus(cuptiActivityEnable(k), "cuptiActivityEnable");
        if (!st) return {st.code(), st.message() + " (kind " + std::to_string(int(k)) + ")"};
    }
    for (CUpti_ActivityKind k : kOptionalKinds) (void)cuptiActivityEnable(k);
    m_enabled = true;
    return Status::success();
}

Status CuptiActivity::disable() {
    if (Status st = flush(); !st) return st;
    std::lock_guard lock(m_mutex);
    for (CUpti_ActivityKind k : kRequiredKinds) cuptiActivityDisable(k);
    for (CUpti_ActivityKind k : kOptionalKinds) cuptiActivityDisable(k);
    m_enabled = false;
    return Status::success();
}

Status CuptiActivity::pushExternalId(uint64_t id) {
    return cuptiStatus(cuptiActivityPushExternalCorrelationId(kExternalKind, id),
                       "cuptiActivityPushExternalCorrelationId");
}

Status CuptiActivity::popExternalId() {
    uint64_t last = 0;
    return cuptiStatus(cuptiActivityPopExternalCorrelationId(kExternalKind, &last),
                       "cuptiActivityPopExternalCorrelationId");
}

Status CuptiActivity::flush() {
    // Not under m_mutex: the flush calls bufferCompleted, which takes it.
    return cuptiStatus(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
}

std::vector<KernelRecord> CuptiActivity::take() {
    std::lock_guard lock(m_mutex);
    std::vector<KernelRecord> out;
    out.swap(m_kernels);
    for (auto& r : out)
        if (auto it = m_external.find(r.correlationId); it != m_external.end()) r.externalId = it->second;
    m_external.clear();
    return out;
}

size_t CuptiActivity::droppedRecords() const {
    std::lock_guard lock(m_mutex);
    return m_dropped;
}

}  // namespace attnscope::gpu
