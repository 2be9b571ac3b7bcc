#include "computeservice.h"

#include <QPointer>
#include <QThread>
#include <QThreadPool>

#include "attnscope/gpu.h"
#include "attnscope/parallel.h"

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace attnscope {

namespace {
/// Niceness of compute threads: below the GUI thread, so on a loaded machine the event loop is
/// scheduled first. The engine's own fork-join threads, created from these, inherit it.
constexpr int kWorkerNice = 5;
void lowerCurrentThreadPriority(int nice)
{
#ifdef __linux__
    thread_local bool done = false;
    if (!done) {
        setpriority(PRIO_PROCESS, id_t(syscall(SYS_gettid)), nice);  // per thread on Linux
        done = true;
    }
#else
    Q_UNUSED(nice);
#endif
}
}  // namespace

ProgressFn cancelOnly(const CancelToken& cancel)
{
    return [cancel](double, std::string_view) { return !cancel.cancelled(); };
}

/// Lives on the GPU thread; creates and owns the engine there so the CUDA context is bound to it.
class GpuWorker : public QObject {
public:
    std::unique_ptr<GpuEngine> engine;
    bool available = false;
};

ComputeService::ComputeService(QObject* parent) : QObject(parent)
{
    m_pool = new QThreadPool(this);
    // Leave one hardware thread to the GUI when the machine has more than one; core functions
    // parallelise internally as well, so a small pool is enough.
    m_pool->setMaxThreadCount(std::max(1, QThread::idealThreadCount() - 1));
    m_backgroundPool = new QThreadPool(this);
    m_backgroundPool->setMaxThreadCount(1);

    m_gpuThread = new QThread(this);
    m_gpuThread->setObjectName(QStringLiteral("attnscope-gpu"));
    m_gpuWorker = new GpuWorker;
    m_gpuWorker->moveToThread(m_gpuThread);
    m_gpuThread->start();
    // Engine creation is quick (a device query); wait for it once so gpuAvailable() is known.
    GpuInfo info;
    QMetaObject::invokeMethod(
        m_gpuWorker,
        [w = m_gpuWorker, &info] {
            w->engine = createGpuEngine();
            info = w->engine ? w->engine->info() : GpuInfo{};
            w->available = info.available;
        },
        Qt::BlockingQueuedConnection);
    m_gpuAvailable = info.available;
    m_gpuDescription = info.available ? QString::fromStdString(info.name)
                                      : QStringLiteral("CPU (no GPU: %1)").arg(QString::fromStdString(info.reason));
}

ComputeService::~ComputeService()
{
    cancelAll();
    m_pool->waitForDone();
    m_backgroundPool->waitForDone();
    QMetaObject::invokeMethod(m_gpuWorker, [w = m_gpuWorker] { w->engine.reset(); }, Qt::BlockingQueuedConnection);
    m_gpuThread->quit();
    m_gpuThread->wait();
    delete m_gpuWorker;
}

quint64 ComputeService::submitCpu(const QString& tag, CpuJob job, int priority)
{
    auto p = std::make_unique<Pending>();
    p->cpu = std::move(job);
    p->priority = priority;
    return submit(tag, std::move(p));
}

quint64 ComputeService::submitGpu(const QString& tag, GpuJob job, WhileGpuBusy whileBusy)
{
    auto p = std::make_unique<Pending>();
    p->lane = Lane::Gpu;
    p->whileBusy = whileBusy;
    p->gpuJob = std::move(job);
    return submit(tag, std::move(p));
}

quint64 ComputeService::submitBackground(const QString& tag, GpuJob job)
{
    auto p = std::make_unique<Pending>();
    p->lane = Lane::Background;
    p->gpuJob = std::move(job);
    return submit(tag, std::move(p));
}

quint64 ComputeService::submit(const QString& tag, std::unique_ptr<Pending> p)
{
    p->id = m_nextId++;
    const quint64 id = p->id;
    TagState& state = m_tags[tag];
    state.newest = id;
    if (state.running) {
        state.runningToken.cancel();
        state.queued = std::move(p);  // replaces an older queued job of this tag
    } else {
        start(tag, state, std::move(p));
    }
    return id;
}

void ComputeService::start(const QString& tag, TagState& state, std::unique_ptr<Pending> p)
{
    state.running = true;
    state.runningToken = CancelToken{};
    if (m_running++ == 0)
        emit busyChanged(true);
    const CancelToken token = state.runningToken;
    const quint64 id = p->id;
    // Background work holds the GPU worker while it runs (a GPU is present): GPU jobs that have a
    // CPU path run on the CPU pool meanwhile instead of queueing behind it.
    const bool heldGpu = p->lane == Lane::Background && m_gpuAvailable;
    if (p->lane == Lane::Gpu && m_gpuBackground > 0 && p->whileBusy == WhileGpuBusy::RunOnCpu) {
        p->lane = Lane::Cpu;
        p->cpu = [job = std::move(p->gpuJob)](const CancelToken& cancel) { return job(nullptr, cancel); };
    }
    QPointer<ComputeService> self(this);
    auto deliver = [self, tag, id, heldGpu](QVariant result) {
        QMetaObject::invokeMethod(
            self.data(), [self, tag, id, result, heldGpu] { if (self) self->finished(tag, id, result, heldGpu); },
            Qt::QueuedConnection);
    };
    switch (p->lane) {
    case Lane::Background:
        if (!heldGpu) {
            m_backgroundPool->start([job = std::move(p->gpuJob), token, deliver] {
                // Its fork-join work yields to interactive work between items (core's parallelFor),
                // so it needs no lower priority, which would starve it on a busy machine.
                lowerCurrentThreadPriority(kWorkerNice);
                setBackgroundParallelism(true);
                deliver(job(nullptr, token));
            });
            break;
        }
        ++m_gpuBackground;
        [[fallthrough]];
    case Lane::Gpu:
        QMetaObject::invokeMethod(
            m_gpuWorker,
            [w = m_gpuWorker, job = std::move(p->gpuJob), token, deliver] {
                deliver(job(w->available ? w->engine.get() : nullptr, token));
            },
            Qt::QueuedConnection);
        break;
    case Lane::Cpu:
        m_pool->start(
            [job = std::move(p->cpu), token, deliver] {
                lowerCurrentThreadPriority(kWorkerNice);
                deliver(job(token));
            },
            p->priority);
        break;
    }
}

void ComputeService::finished(const QString& tag, quint64 id, const QVariant& result, bool heldGpu)
{
    if (heldGpu)
        --m_gpuBackground;
    if (--m_running == 0)
        emit busyChanged(false);
    auto it = m_tags.find(tag);
    if (it == m_tags.end())
        return;  // forgotten by cancelAll
    TagState& state = it->second;
    state.running = false;
    const bool newest = id == state.newest;
    if (state.queued)
        start(tag, state, std::move(state.queued));
    else
        m_tags.erase(it);
    if (newest)
        emit jobFinished(id, tag, result);
}

void ComputeService::cancelAll(const QString& prefix)
{
    for (auto it = m_tags.begin(); it != m_tags.end();) {
        if (it->first.startsWith(prefix)) {
            it->second.runningToken.cancel();
            if (it->second.running) {
                // Keep the entry so the running job's finish is counted, but make it stale.
                it->second.queued.reset();
                it->second.newest = 0;
                ++it;
            } else {
                it = m_tags.erase(it);
            }
        } else {
            ++it;
        }
    }
}

int ComputeService::pendingJobs() const
{
    int n = 0;
    for (const auto& [tag, s] : m_tags)
        n += int(s.running) + int(bool(s.queued));
    return n;
}

}  // namespace attnscope
