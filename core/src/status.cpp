#include "attnscope/status.h"

#include "attnscope/progress.h"

namespace attnscope {

const char* errorCodeName(ErrorCode code) {
    switch (code) {
    case ErrorCode::Ok: return "ok";
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::IoError: return "I/O error";
    case ErrorCode::Format: return "format error";
    case ErrorCode::Shape: return "shape error";
    case ErrorCode::NumericValues: return "non-finite values";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::OutOfMemory: return "out of memory";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Device: return "device error";
    case ErrorCode::Internal: return "internal error";
    }
    return "unknown";
}

bool ProgressReporter::report(double fraction, std::string_view stage) {
    if (m_cancelled.load(std::memory_order_relaxed)) return false;
    if (!m_fn) return true;
    // Serialise calls; a worker that finds another report in flight skips its own (progress is
    // advisory), but cancellation is never lost because the flag is sticky.
    bool expected = false;
    if (!m_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) return true;
    if (fraction < m_last) {
        m_busy.store(false, std::memory_order_release);
        return true;
    }
    m_last = fraction;
    const bool keepGoing = m_fn(fraction, stage);
    m_busy.store(false, std::memory_order_release);
    if (!keepGoing) m_cancelled.store(true, std::memory_order_relaxed);
    return keepGoing;
}

}  // namespace attnscope
