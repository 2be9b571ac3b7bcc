#pragma once
// CUPTI activity tracing (CUDA 13): CONCURRENT_KERNEL records (CUpti_ActivityKernel10) joined to
// the external correlation id pushed around each variant run. One process-wide instance, since
// CUPTI's buffer callbacks are global.
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "attnscope/profiler.h"

namespace attnscope::gpu {

/// "cuptiX failed: CUPTI_ERROR_… (text)" for a CUPTI result code.
std::string cuptiResultText(int result);
/// Demangled C++ name (the input when it is not a mangled name).
std::string demangleName(const char* name);

class CuptiActivity {
public:
    static CuptiActivity& instance();

    /// Registers the buffer callbacks (once) and enables the kernel, runtime, driver and external
    /// correlation kinds. Fails with the CUPTI error when CUPTI cannot trace.
    Status enable();
    /// Flushes, then disables the kinds (records already delivered are kept).
    Status disable();
    bool enabled() const { return m_enabled; }

    /// Tags the launches that follow with `id` (CUPTI_EXTERNAL_CORRELATION_KIND_CUSTOM0).
    Status pushExternalId(uint64_t id);
    Status popExternalId();

    /// Delivers every buffered record. Call after synchronizing the device, never from a
    /// buffer callback.
    Status flush();
    /// Kernel records gathered so far (startUs on CUPTI's clock, in µs), with externalId joined
    /// from the correlation records; clears the store.
    std::vector<KernelRecord> take();
    /// Records CUPTI dropped because buffers were full (cumulative).
    size_t droppedRecords() const;

private:
    CuptiActivity() = default;
    static void bufferRequested(uint8_t** buffer, size_t* size, size_t* maxNumRecords);
    static void bufferCompleted(void* context, uint32_t streamId, uint8_t* buffer, size_t size, size_t validSize);
    void consume(void* context, uint32_t streamId, uint8_t* buffer, size_t validSize);

    mutable std::mutex m_mutex;
    bool m_registered = false, m_enabled = false;
    std::vector<KernelRecord> m_kernels;
    std::unordered_map<uint32_t, uint64_t> m_external;  // correlation id -> external id
    size_t m_dropped = 0;
};

/// Metrics of the kernels `launch` starts, from the CUPTI range profiler (auto range, kernel
/// replay). `launch` runs once per pass and must synchronize. Never mix with timing: replay
/// serialises kernels. When the driver refuses, collected is false and reason says why and how
/// to allow it.
MetricsResult measureRangeMetrics(int deviceIndex, const std::vector<std::string>& names,
                                  const std::function<Status()>& launch);

}  // namespace attnscope::gpu
