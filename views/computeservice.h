#pragma once
// Runs engine work off the GUI thread. CPU jobs go to a QThreadPool; GPU jobs go to one worker
// thread that owns the GpuEngine (and so the CUDA context); long background work (the whole-model
// analysis) has a lane of its own so that interactive jobs (maps, thumbnails) never queue behind
// it. Jobs carry a tag: a newer job with the same tag replaces one still queued and cancels one
// running, and a finished job whose id is no longer the newest for its tag is dropped ("the newest
// zoom wins"). Results come back by value in a QVariant through a queued signal; the GUI thread
// never waits.
#include <QObject>
#include <QString>
#include <QVariant>

#include <atomic>
#include <functional>
#include <map>
#include <memory>

#include "attnscope/progress.h"

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

class ComputeService : public QObject {
    Q_OBJECT
public:
    using CpuJob = std::function<QVariant(const CancelToken&)>;
    /// A GPU job; `engine` is null when no GPU is available (the job then runs its CPU path).
    using GpuJob = std::function<QVariant(GpuEngine* engine, const CancelToken&)>;

    explicit ComputeService(QObject* parent = nullptr);
    ~ComputeService() override;

    /// Queues `job` on the CPU pool under `tag`; returns its id. Higher `priority` runs first
    /// (the visible map before grid thumbnails).
    quint64 submitCpu(const QString& tag, CpuJob job, int priority = 0);
    /// What a GPU job does while background work holds the GPU worker.
    enum class WhileGpuBusy {
        Wait,      ///< queue behind it (work that needs the GPU thread: CUPTI profiles)
        RunOnCpu,  ///< run now on the CPU pool with a null engine (jobs with a CPU path: maps)
    };
    /// Queues `job` on the GPU worker under `tag`; returns its id.
    quint64 submitGpu(const QString& tag, GpuJob job, WhileGpuBusy whileBusy = WhileGpuBusy::Wait);
    /// Queues long background work under `tag`: on the GPU worker when a GPU is present, else on
    /// a background thread with a fork-join pool of its own that holds back while interactive
    /// fork-join work runs (setBackgroundParallelism). Interactive jobs never wait for it.
    quint64 submitBackground(const QString& tag, GpuJob job);
    /// Cancels and forgets every job whose tag starts with `prefix` (e.g. when a trace closes).
    void cancelAll(const QString& prefix = {});

    bool gpuAvailable() const { return m_gpuAvailable; }
    QString gpuDescription() const { return m_gpuDescription; }
    /// Jobs queued or running, for tests and the busy indicator.
    int pendingJobs() const;

signals:
    /// The newest job of `tag` finished. `result` is what the job returned (a Status message
    /// string when it failed, see isError()).
    void jobFinished(quint64 id, const QString& tag, const QVariant& result);
    void busyChanged(bool busy);

private:
    enum class Lane { Cpu, Gpu, Background };
    struct Pending {
        quint64 id = 0;
        Lane lane = Lane::Cpu;
        int priority = 0;
        WhileGpuBusy whileBusy = WhileGpuBusy::Wait;
        CpuJob cpu;
        GpuJob gpuJob;
    };
    struct TagState {
        quint64 newest = 0;
        bool running = false;
        CancelToken runningToken;
        std::unique_ptr<Pending> queued;
    };

    quint64 submit(const QString& tag, std::unique_ptr<Pending> p);
    void start(const QString& tag, TagState& state, std::unique_ptr<Pending> p);
    void finished(const QString& tag, quint64 id, const QVariant& result, bool heldGpu);

    QThreadPool* m_pool = nullptr;
    QThreadPool* m_backgroundPool = nullptr;  ///< one thread: background work without a GPU
    int m_gpuBackground = 0;                  ///< background jobs posted to the GPU worker, not finished
    QThread* m_gpuThread = nullptr;
    GpuWorker* m_gpuWorker = nullptr;
    bool m_gpuAvailable = false;
    QString m_gpuDescription;
    quint64 m_nextId = 1;
    std::map<QString, TagState> m_tags;
    int m_running = 0;
};

/// Wraps a failed core Status so a job can return it through a QVariant.
struct JobError {
    QString message;
};

}  // namespace attnscope

Q_DECLARE_METATYPE(attnscope::JobError)
