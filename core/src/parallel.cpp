// A persistent fork-join pool: workerCount() - 1 helper threads plus the calling thread.
// Creating threads per call costs ~50 µs each, which matters for the many small maps a GUI
// asks for while zooming, so the helpers are started once and parked on a condition variable.
#include "attnscope/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "attnscope/attention.h"

namespace attnscope {

namespace {

/// Set on pool threads (and on a caller while it runs a job) so that nested parallelFor calls
/// run inline instead of waiting for workers that are busy running their parent.
thread_local bool t_insideJob = false;
/// The calling thread's parallelFor calls use the background pool (setBackgroundParallelism).
thread_local bool t_background = false;

/// Interactive work (shared-pool jobs) running or waiting to run: background workers hold back
/// between items while there is any, so interactive work gets the cores first.
class InteractiveGate {
public:
    void enter() { m_jobs.fetch_add(1, std::memory_order_relaxed); }
    void leave() {
        if (m_jobs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard lock(m_mutex);  // pairs with the waiter's check under the lock
            m_idle.notify_all();
        }
    }
    void waitUntilIdle() {
        if (m_jobs.load(std::memory_order_acquire) == 0) return;
        std::unique_lock lock(m_mutex);
        m_idle.wait(lock, [this] { return m_jobs.load(std::memory_order_acquire) == 0; });
    }

private:
    std::atomic<int> m_jobs{0};
    std::mutex m_mutex;
    std::condition_variable m_idle;
};

InteractiveGate& interactiveGate() {
    static InteractiveGate gate;
    return gate;
}

class Pool {
public:
    enum class Kind { Interactive, Background };

    Pool(int workers, Kind kind) : m_workers(workers), m_kind(kind) {
        for (int w = 1; w < workers; ++w) m_threads.emplace_back([this, w] { threadMain(w); });
    }
    ~Pool() {
        {
            std::lock_guard lock(m_mutex);
            m_stop = true;
        }
        m_wake.notify_all();
        for (auto& t : m_threads) t.join();
    }

    int workers() const { return m_workers; }

    void run(int64_t n, const std::function<void(int64_t, int)>& fn, int used) {
        if (m_kind == Kind::Interactive) interactiveGate().enter();
        struct Leave {
            Kind kind;
            ~Leave() {
                if (kind == Kind::Interactive) interactiveGate().leave();
            }
        } leave{m_kind};
        std::lock_guard submit(m_submitMutex);  // one job at a time; other callers wait their turn
        {
            std::lock_guard lock(m_mutex);
            m_fn = &fn;
            m_n = n;
            m_next.store(0);
            m_used = used;
            m_active = used - 1;
            ++m_generation;
        }
        m_wake.notify_all();
        t_insideJob = true;
        drain(0);
        t_insideJob = false;
        std::unique_lock lock(m_mutex);
        m_done.wait(lock, [this] { return m_active == 0; });
        m_fn = nullptr;
    }

private:
    void drain(int worker) {
        for (;;) {
            if (m_kind == Kind::Background) interactiveGate().waitUntilIdle();
            const int64_t i = m_next.fetch_add(1, std::memory_order_relaxed);
            if (i >= m_n) break;
            (*m_fn)(i, worker);
        }
    }

    void threadMain(int worker) {
        t_insideJob = true;
        uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock lock(m_mutex);
                m_wake.wait(lock, [&] { return m_stop || m_generation != seen; });
                if (m_stop) return;
                seen = m_generation;
                if (worker >= m_used) continue;  // this job asked for fewer workers
            }
            drain(worker);
            {
                std::lock_guard lock(m_mutex);
                --m_active;
            }
            m_done.notify_all();
        }
    }

    const int m_workers;
    const Kind m_kind;
    std::vector<std::thread> m_threads;
    std::mutex m_submitMutex;
    std::mutex m_mutex;
    std::condition_variable m_wake, m_done;
    const std::function<void(int64_t, int)>* m_fn = nullptr;
    int64_t m_n = 0;
    std::atomic<int64_t> m_next{0};
    int m_used = 1;
    int m_active = 0;
    uint64_t m_generation = 0;
    bool m_stop = false;
};

Pool& pool() {
    static Pool p(workerCount(), Pool::Kind::Interactive);
    return p;
}

/// Created on the first background caller's thread, so its helpers inherit that thread's priority.
Pool& backgroundPool() {
    static Pool p(workerCount(), Pool::Kind::Background);
    return p;
}

}  // namespace

int workerCount() {
    // ATTNSCOPE_THREADS overrides the hardware count (benchmarks, shared machines).
    static const int count = [] {
        if (const char* env = std::getenv("ATTNSCOPE_THREADS")) {
            const int n = std::atoi(env);
            if (n > 0) return n;
        }
        return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    }();
    return count;
}

void parallelFor(int64_t n, const std::function<void(int64_t i, int worker)>& fn, int maxWorkers) {
    if (n <= 0) return;
    int used = workerCount();
    if (maxWorkers > 0) used = std::min(used, maxWorkers);
    used = static_cast<int>(std::min<int64_t>(used, n));
    if (used <= 1 || t_insideJob) {
        for (int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    (t_background ? backgroundPool() : pool()).run(n, fn, used);
}

void setBackgroundParallelism(bool background) { t_background = background; }

}  // namespace attnscope
