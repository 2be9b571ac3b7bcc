#include "computeservice.h"

#include <QPointer>
#include <QThread>
#include <QThreadPool>

#include <new>
#include <string>

#include "attnscope/gpu.h"
#include "attnscope/parallel.h"
#include "threadhandoff.h"

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
void lowerCurrentThreadPriority(int nice) {
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

namespace detail {
Status statusOfException(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::bad_alloc&) {
        return {ErrorCode::OutOfMemory, "out of memory"};
    } catch (const std::exception& x) {
        return {ErrorCode::Internal, std::string("unexpected error: ") + x.what()};
    } catch (...) {
        return {ErrorCode::Internal, "unexpected error"};
    }
}
}  // namespace detail

ProgressFn cancelOnly(const CancelToken& cancel) {
    return [cancel](double, std::string_view) { return !cancel.cancelled(); };
}

/// Lives on the GPU thread; creates and owns the engine there so the CUDA context is bound to it.
class GpuWorker : public QObject {
public:
    std::unique_ptr<GpuEngine> engine;
    bool available = false;
};

ComputeService::ComputeService(QObject* parent) : QObject(parent) {
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
    QMetaObject::invokeMethod(m_gpuWorker, handedOff<&queue::gpuThread>([w = m_gpuWorker, &info] {
                                  w->engine = createGpuEngine();
                                  info = w->engine ? w->engine->info() : GpuInfo{};
                                  w->available = info.available;
                              }),
                              Qt::BlockingQueuedConnection);
    takeOver(&queue::gpuThread);
    m_gpuAvailable = info.available;
    m_gpuDescription = info.available ? QString::fromStdString(info.name)
                                      : QStringLiteral("CPU (no GPU: %1)").arg(QString::fromStdString(info.reason));
}

ComputeService::~ComputeService() {
    // Requesters are not answered any more: the service and, usually, they are going away.
    for (auto& [tag, state] : m_tags) state.runningToken.cancel();
    m_tags.clear();
    m_pool->waitForDone();
    takeOver(&queue::cpuPool);
    m_backgroundPool->waitForDone();
    takeOver(&queue::backgroundPool);
    QMetaObject::invokeMethod(m_gpuWorker, handedOff<&queue::gpuThread>([w = m_gpuWorker] { w->engine.reset(); }),
                              Qt::BlockingQueuedConnection);
    m_gpuThread->quit();
    m_gpuThread->wait();
    takeOver(&queue::gpuThread);
    delete m_gpuWorker;
}

quint64 ComputeService::submit(const QString& tag, std::unique_ptr<Pending> p) {
    Q_ASSERT_X(p->requester.receiver && p->requester.receiver->thread() == thread(), "ComputeService",
               "a job has a receiver, living on the service's (GUI) thread");
    p->id = m_nextId++;
    const quint64 id = p->id;
    if (p->requester.receiver) watch(p->requester.receiver);
    auto it = m_tags.find(tag);
    if (it == m_tags.end()) {
        TagState& state = m_tags[tag];
        start(tag, state, std::move(p));
        return id;
    }
    // A job of this tag is running: it is told to stop, and the new job waits for it, replacing
    // an older waiting one. Both older requesters learn that their answer will not come.
    TagState& state = it->second;
    state.runningToken.cancel();
    const Status superseded(ErrorCode::Cancelled, "cancelled: a newer request took its place");
    refuse(state.runningRequester, superseded);
    if (state.queued) refuse(state.queued->requester, superseded);
    state.queued = std::move(p);
    return id;
}

void ComputeService::start(const QString& tag, TagState& state, std::unique_ptr<Pending> p) {
    state.runningId = p->id;
    state.runningToken = CancelToken{};
    state.runningRequester = std::move(p->requester);
    if (m_running++ == 0) emit busyChanged(true);
    const CancelToken token = state.runningToken;
    const quint64 id = p->id;
    // Background work holds the GPU worker while it runs (a GPU is present): GPU jobs that have a
    // CPU path run on the CPU pool meanwhile instead of queueing behind it.
    const bool heldGpu = p->lane == Lane::Background && m_gpuAvailable;
    if (p->lane == Lane::Gpu && m_gpuBackground > 0 && p->whileBusy == WhileGpuBusy::RunOnCpu)
        p->lane = Lane::Cpu;  // the job then sees a null engine and takes its CPU path
    QPointer<ComputeService> self(this);
    auto deliver = [self, tag, id, heldGpu](Delivery delivery) {
        QMetaObject::invokeMethod(
            self.data(), handedOff<&queue::guiThread>([self, tag, id, delivery = std::move(delivery), heldGpu] {
                if (self) self->finished(tag, id, delivery, heldGpu);
            }),
            Qt::QueuedConnection);
    };
    switch (p->lane) {
    case Lane::Background:
        if (!heldGpu) {
            m_backgroundPool->start(handedOff<&queue::backgroundPool>([work = std::move(p->work), token, deliver] {
                // Its fork-join work yields to interactive work between items (core's parallelFor),
                // so it needs no lower priority, which would starve it on a busy machine.
                lowerCurrentThreadPriority(kWorkerNice);
                setBackgroundParallelism(true);
                deliver(work(nullptr, token));
            }));
            break;
        }
        ++m_gpuBackground;
        [[fallthrough]];
    case Lane::Gpu:
        QMetaObject::invokeMethod(
            m_gpuWorker,
            handedOff<&queue::gpuThread>([w = m_gpuWorker, work = std::move(p->work), token, deliver, heldGpu] {
                // Background work on the GPU worker keeps its CPU parts on the background pool too,
                // so they yield to interactive maps; the worker's next (interactive) job does not.
                setBackgroundParallelism(heldGpu);
                auto delivery = work(w->available ? w->engine.get() : nullptr, token);
                setBackgroundParallelism(false);
                deliver(std::move(delivery));
            }),
            Qt::QueuedConnection);
        break;
    case Lane::Cpu:
        m_pool->start(handedOff<&queue::cpuPool>([work = std::move(p->work), token, deliver] {
                          lowerCurrentThreadPriority(kWorkerNice);
                          deliver(work(nullptr, token));
                      }),
                      p->priority);
        break;
    }
}

void ComputeService::finished(const QString& tag, quint64 id, const Delivery& delivery, bool heldGpu) {
    if (heldGpu) --m_gpuBackground;
    if (--m_running == 0) emit busyChanged(false);
    auto it = m_tags.find(tag);
    if (it == m_tags.end() || it->second.runningId != id) return;  // forgotten when the service closed
    TagState& state = it->second;
    // Answered already (replaced, cancelled) or its receiver is gone: the result is dropped.
    const bool answer = bool(state.runningRequester.refuse) && state.runningRequester.receiver;
    state.runningRequester = {};
    if (state.queued)
        start(tag, state, std::move(state.queued));
    else
        m_tags.erase(it);
    // Last: the callback may submit again.
    if (answer) delivery();
}

void ComputeService::refuse(Requester& requester, const Status& why) {
    Refusal refusal = std::exchange(requester.refuse, {});
    if (!refusal || !requester.receiver) return;
    QPointer<ComputeService> self(this);
    QMetaObject::invokeMethod(
        requester.receiver.data(),
        [self, refusal = std::move(refusal), why] {
            if (self) refusal(why);
        },
        Qt::QueuedConnection);
}

void ComputeService::cancelAll(const QString& prefix) {
    const Status cancelled(ErrorCode::Cancelled, "cancelled");
    for (auto& [tag, state] : m_tags) {
        if (!tag.startsWith(prefix)) continue;
        // The entry stays until the running job finishes, so its finish is counted.
        state.runningToken.cancel();
        refuse(state.runningRequester, cancelled);
        if (state.queued) refuse(state.queued->requester, cancelled);
        state.queued.reset();
    }
}

void ComputeService::watch(QObject* receiver) {
    if (m_watched.contains(receiver)) return;
    m_watched.insert(receiver);
    connect(receiver, &QObject::destroyed, this, [this](QObject* gone) { receiverDestroyed(gone); });
}

void ComputeService::receiverDestroyed(const QObject* receiver) {
    // Nobody waits for these jobs any more: the running ones stop, the waiting ones never run.
    m_watched.remove(receiver);
    for (auto& [tag, state] : m_tags) {
        if (state.runningRequester.identity == receiver) {
            state.runningToken.cancel();
            state.runningRequester = {};
        }
        if (state.queued && state.queued->requester.identity == receiver) state.queued.reset();
    }
}

int ComputeService::pendingJobs() const {
    int n = 0;
    for (const auto& [tag, s] : m_tags) n += 1 + int(bool(s.queued));  // every entry has a running job
    return n;
}

}  // namespace attnscope
