#pragma once
// Hand-offs between threads made visible to ThreadSanitizer. Qt is not built with
// -fsanitize=thread: its QMutex is a bare futex, so the happens-before that QThreadPool::start,
// posted events and BlockingQueuedConnection give (a mutex around each queue) is invisible to
// TSan, and every value handed through them looks like a race. A callable posted into a queue is
// wrapped in HandedOff: every copy or move of it (the last one made inside Qt's posting call, so
// after its captures are written) releases the queue, and the call acquires it first. That is
// the edge the queue's mutex makes (a release by every poster, an acquire by the taker), no
// stronger. handOff/takeOver alone serve the other direction (a worker's last writes before
// waitForDone or a blocking call returns). No-ops unless the build is a ThreadSanitizer build
// (scripts/test-sanitizers tsan).

#if defined(__SANITIZE_THREAD__)
#define ATTNSCOPE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ATTNSCOPE_TSAN 1
#endif
#endif

#include <QMetaObject>
#include <QObject>

#include <type_traits>
#include <utility>

#ifdef ATTNSCOPE_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace attnscope {

/// Before posting work or a result into `queue` (any address naming one queue).
inline void handOff([[maybe_unused]] const void* queue) {
#ifdef ATTNSCOPE_TSAN
    __tsan_release(const_cast<void*>(queue));
#endif
}

/// Where the work or result posted into `queue` starts running.
inline void takeOver([[maybe_unused]] const void* queue) {
#ifdef ATTNSCOPE_TSAN
    __tsan_acquire(const_cast<void*>(queue));
#endif
}

/// Names of the queues work is posted into (their addresses are the keys).
namespace queue {
inline const char cpuPool = 0, backgroundPool = 0, gpuThread = 0, guiThread = 0;
}

/// A callable posted into the queue `Queue` (QThreadPool::start, QMetaObject::invokeMethod): every
/// copy or move releases the queue; the call acquires it first and releases it at its end (for
/// the thread that destroys the callable or waits for it), and the destructor acquires it. The
/// key is a template argument, so nothing of the callable is read before the acquire.
template <const char* Queue, typename F>
class HandedOff {
public:
    explicit HandedOff(F f) : m_f(std::move(f)) { handOff(Queue); }
    HandedOff(HandedOff&& other) : m_f(std::move(other.m_f)) { handOff(Queue); }
    HandedOff(const HandedOff& other) : m_f(other.m_f) { handOff(Queue); }
    HandedOff& operator=(const HandedOff&) = delete;
    HandedOff& operator=(HandedOff&&) = delete;
    ~HandedOff() { takeOver(Queue); }

    decltype(auto) operator()() {
        takeOver(Queue);
        if constexpr (std::is_void_v<std::invoke_result_t<F&>>) {
            m_f();
            handOff(Queue);
        } else {
            auto result = m_f();
            handOff(Queue);
            return result;
        }
    }

private:
    F m_f;
};

template <const char* Queue, typename F>
HandedOff<Queue, F> handedOff(F f) {
    return HandedOff<Queue, F>(std::move(f));
}

/// Runs `f` on `receiver`'s (the GUI) thread through its event queue: progress and partial
/// results posted from a worker.
template <typename F>
void postToGuiThread(QObject* receiver, F f) {
    QMetaObject::invokeMethod(receiver, handedOff<&queue::guiThread>(std::move(f)), Qt::QueuedConnection);
}

}  // namespace attnscope
