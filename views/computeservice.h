#pragma once
// Runs engine work off the GUI thread and hands each result to the object that asked for it.
// CPU jobs go to a QThreadPool; GPU jobs go to one worker thread that owns the GpuEngine (and so
// the CUDA context); long background work (the whole-model analysis) has a lane of its own so that
// interactive jobs (maps, thumbnails) never queue behind it. Jobs carry a tag: a newer job with the
// same tag replaces one still queued and cancels one running ("the newest zoom wins"). A job is a
// function returning a core Result<T>; the requester names a receiver and a callback, which gets
// that Result<T> on the GUI thread (by value, through a queued call) exactly once while the
// receiver lives: the value or the job's own error, or ErrorCode::Cancelled when a newer job of
// its tag or cancelAll() took its place. Errors are core's ErrorCode (attnscope/status.h), one
// enum for the engine and the GUI. The GUI thread never waits.
#include <QObject>
#include <QPointer>
#include <QSet>
#include <QString>

#include <atomic>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <type_traits>
#include <utility>

#include "attnscope/progress.h"
#include "attnscope/status.h"

class QThread;
class QThreadPool;

namespace attnscope {

class GpuEngine;
class GpuWorker;

/// Shared cancel flag of one job; core ProgressFns return !cancelled().
class CancelToken {
public:
    bool cancelled() const { return m_flag->load(std::memory_order_relaxed); }
    void cancel() const { m_flag->store(true, std::memory_order_relaxed); }

private:
    std::shared_ptr<std::atomic<bool>> m_flag = std::make_shared<std::atomic<bool>>(false);
};

/// A core ProgressFn that only watches `cancel`.
ProgressFn cancelOnly(const CancelToken& cancel);

namespace detail {
template <typename R>
struct IsResult : std::false_type {};
template <typename T>
struct IsResult<Result<T>> : std::true_type {};
/// The Status of an exception a job let escape: OutOfMemory for std::bad_alloc, else Internal.
Status statusOfException(std::exception_ptr e);
}  // namespace detail

class ComputeService : public QObject {
    Q_OBJECT
public:
    explicit ComputeService(QObject* parent = nullptr);
    ~ComputeService() override;

    /// What a GPU job does while background work holds the GPU worker.
    enum class WhileGpuBusy {
        Wait,      ///< queue behind it (work that needs the GPU thread: CUPTI profiles)
        RunOnCpu,  ///< run now on the CPU pool with a null engine (jobs with a CPU path: maps)
    };

    /// Runs `job(cancel)` (returning a Result<T>) on the CPU pool under `tag`, then calls
    /// `done(Result<T>)` on the GUI thread if `receiver` (an object of the GUI thread) still lives.
    /// Higher `priority` runs first (the visible map before grid thumbnails). Returns the job's id.
    ///   compute->submitCpu(tag, [](const CancelToken& c) { return work(cancelOnly(c)); }, this,
    ///                      [this](Result<Work> r) { if (r) show(*r); });
    template <typename Job, typename Done>
    quint64 submitCpu(const QString& tag, Job job, QObject* receiver, Done done, int priority = 0) {
        auto run = [job = std::move(job)](GpuEngine*, const CancelToken& cancel) { return job(cancel); };
        auto p = makePending(std::move(run), receiver, std::move(done));
        p->priority = priority;
        return submit(tag, std::move(p));
    }
    /// Runs `job(engine, cancel)` on the GPU worker under `tag`; `engine` is null when no GPU is
    /// available (the job then runs its CPU path). Delivery as submitCpu.
    template <typename Job, typename Done>
    quint64 submitGpu(const QString& tag, Job job, QObject* receiver, Done done,
                      WhileGpuBusy whileBusy = WhileGpuBusy::Wait) {
        auto p = makePending(std::move(job), receiver, std::move(done));
        p->lane = Lane::Gpu;
        p->whileBusy = whileBusy;
        return submit(tag, std::move(p));
    }
    /// Runs long background work `job(engine, cancel)` under `tag`: on the GPU worker when a GPU
    /// is present, else on a background thread with a fork-join pool of its own that holds back
    /// while interactive fork-join work runs (setBackgroundParallelism). Interactive jobs never
    /// wait for it. Delivery as submitCpu.
    template <typename Job, typename Done>
    quint64 submitBackground(const QString& tag, Job job, QObject* receiver, Done done) {
        auto p = makePending(std::move(job), receiver, std::move(done));
        p->lane = Lane::Background;
        return submit(tag, std::move(p));
    }
    /// Cancels every job whose tag starts with `prefix` (e.g. when a trace closes): running jobs
    /// are told to stop, and each requester gets ErrorCode::Cancelled instead of a result.
    void cancelAll(const QString& prefix = {});

    bool gpuAvailable() const { return m_gpuAvailable; }
    QString gpuDescription() const { return m_gpuDescription; }
    /// Jobs queued or running, for tests and the busy indicator.
    int pendingJobs() const;

signals:
    void busyChanged(bool busy);

private:
    /// Hands a finished job's result to its requester; runs on the GUI thread.
    using Delivery = std::function<void()>;
    /// Runs a job on a worker and returns the delivery of its result.
    using Work = std::function<Delivery(GpuEngine* engine, const CancelToken& cancel)>;
    /// Tells the requester why no result comes (Cancelled when replaced or cancelled).
    using Refusal = std::function<void(Status)>;

    enum class Lane { Cpu, Gpu, Background };
    /// Who waits for a job's answer.
    struct Requester {
        QPointer<QObject> receiver;
        const QObject* identity = nullptr;  ///< the receiver's address, to match it once destroyed
        Refusal refuse;                     ///< empty once the requester was answered or is gone
    };
    struct Pending {
        quint64 id = 0;
        Lane lane = Lane::Cpu;
        int priority = 0;
        WhileGpuBusy whileBusy = WhileGpuBusy::Wait;
        Work work;
        Requester requester;
    };
    struct TagState {
        quint64 runningId = 0;
        CancelToken runningToken;
        Requester runningRequester;       ///< answered at the finish unless refused before
        std::unique_ptr<Pending> queued;  ///< the newest job, waiting for the running one to stop
    };

    template <typename Job, typename Done>
    std::unique_ptr<Pending> makePending(Job job, QObject* receiver, Done done) {
        using R = std::invoke_result_t<Job&, GpuEngine*, const CancelToken&>;
        static_assert(detail::IsResult<R>::value, "a ComputeService job returns a Result<T>");
        static_assert(std::is_invocable_v<Done&, R>, "the callback takes the job's Result<T>");
        // Shared: the job's copy runs on a worker, the delivery and the refusal on the GUI thread.
        auto callback = std::make_shared<Done>(std::move(done));
        auto p = std::make_unique<Pending>();
        p->work = [job = std::move(job), callback](GpuEngine* engine, const CancelToken& cancel) -> Delivery {
            auto result = std::make_shared<R>(runGuarded<R>(job, engine, cancel));
            return [callback, result] { (*callback)(std::move(*result)); };
        };
        p->requester.receiver = receiver;
        p->requester.identity = receiver;
        p->requester.refuse = [callback](Status why) { (*callback)(R(std::move(why))); };
        return p;
    }
    template <typename R, typename Job>
    static R runGuarded(Job& job, GpuEngine* engine, const CancelToken& cancel) {
        try {
            return job(engine, cancel);
        } catch (...) {  // no exception crosses a worker thread: it becomes the job's error
            return R(detail::statusOfException(std::current_exception()));
        }
    }

    quint64 submit(const QString& tag, std::unique_ptr<Pending> p);
    void start(const QString& tag, TagState& state, std::unique_ptr<Pending> p);
    void finished(const QString& tag, quint64 id, const Delivery& delivery, bool heldGpu);
    /// Answers `requester` with `why` through its receiver's event queue (never from inside a
    /// call into the service), unless it was answered already or its receiver is gone.
    void refuse(Requester& requester, const Status& why);
    void watch(QObject* receiver);
    void receiverDestroyed(const QObject* receiver);

    QThreadPool* m_pool = nullptr;
    QThreadPool* m_backgroundPool = nullptr;  ///< one thread: background work without a GPU
    int m_gpuBackground = 0;                  ///< background jobs posted to the GPU worker, not finished
    QThread* m_gpuThread = nullptr;
    GpuWorker* m_gpuWorker = nullptr;
    bool m_gpuAvailable = false;
    QString m_gpuDescription;
    quint64 m_nextId = 1;
    std::map<QString, TagState> m_tags;  ///< tags with a running job
    QSet<const QObject*> m_watched;      ///< receivers whose destruction cancels their jobs
    int m_running = 0;
};

}  // namespace attnscope
