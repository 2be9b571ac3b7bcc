#pragma once
// Progress and cancellation for long core work. Core functions are synchronous; the caller
// (a GUI worker, the CLI's progress line) passes a callback.
#include <atomic>
#include <functional>
#include <string_view>

namespace attnscope {

/// Called with a fraction in [0,1] and a short stage label. Return false to cancel; the core
/// function then returns ErrorCode::Cancelled. May be called from worker threads, but never
/// concurrently (implementations serialise calls), and the fractions one core call reports never
/// decrease.
using ProgressFn = std::function<bool(double fraction, std::string_view stage)>;

/// A thread-safe wrapper used inside core implementations.
class ProgressReporter {
public:
    explicit ProgressReporter(const ProgressFn& fn) : m_fn(fn) {}
    /// Returns false once cancellation was requested (sticky). A fraction below one already
    /// reported is dropped: workers finish items out of order (item 6 may report before item 5).
    bool report(double fraction, std::string_view stage);
    bool cancelled() const { return m_cancelled.load(std::memory_order_relaxed); }

private:
    const ProgressFn& m_fn;
    std::atomic<bool> m_cancelled{false};
    std::atomic<bool> m_busy{false};
    double m_last = -1.0;  ///< the last fraction passed on; guarded by m_busy
};

}  // namespace attnscope
