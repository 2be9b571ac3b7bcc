// ComputeService: tagged jobs where the newest wins (a queued job is replaced, a running one is
// cancelled and its result dropped); each result goes, by value on the GUI thread, to the receiver
// that asked for it and to no other, exactly once, and never to a destroyed receiver; replaced and
// cancelled jobs answer ErrorCode::Cancelled; a job's errors (and exceptions) arrive as typed
// codes; interactive jobs never wait for background work.
#include <QtTest>

#include <atomic>
#include <chrono>
#include <memory>
#include <new>
#include <stdexcept>
#include <thread>
#include <vector>

#include "attnscope/parallel.h"
#include "computeservice.h"

using attnscope::CancelToken;
using attnscope::ComputeService;
using attnscope::ErrorCode;
using attnscope::GpuEngine;
using attnscope::Result;
using attnscope::Status;

namespace {
constexpr int kTimeoutMs = 10000;
/// Time for answers that should not come to arrive if they were going to.
constexpr int kQuietMs = 100;

/// What one requester was answered, in order.
struct Answers {
    std::vector<Result<int>> results;
    int count() const { return int(results.size()); }
    /// A callback that records into this (which outlives the receivers of the tests).
    auto recorder() {
        return [this](Result<int> r) { results.push_back(std::move(r)); };
    }
};

enum class Lane { Cpu, Gpu, Background };

/// Submits a job returning Result<int> on `lane`.
template <typename Job>
quint64 submitOn(ComputeService& service, Lane lane, const QString& tag, Job job, QObject* receiver, Answers& answers) {
    switch (lane) {
    case Lane::Cpu: return service.submitCpu(tag, job, receiver, answers.recorder());
    case Lane::Gpu:
        return service.submitGpu(
            tag, [job](GpuEngine*, const CancelToken& c) { return job(c); }, receiver, answers.recorder());
    case Lane::Background:
        return service.submitBackground(
            tag, [job](GpuEngine*, const CancelToken& c) { return job(c); }, receiver, answers.recorder());
    }
    return 0;
}

/// A one-way gate for blocking a job: release() opens it for good (so a scope guard may open it
/// again after the test did), acquire() waits until it is open.
class Gate {
public:
    void release() {
        m_open = true;
        m_open.notify_all();
    }
    void acquire() { m_open.wait(false); }

private:
    std::atomic<bool> m_open{false};
};

/// Spins (without running the event loop) until `flag` is set.
bool waitWithoutEvents(const std::atomic<bool>& flag) {
    for (int i = 0; i < kTimeoutMs && !flag.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return flag.load();
}
}  // namespace

class TestComputeService : public QObject {
    Q_OBJECT
private slots:
    void resultArrivesOnGuiThread();
    void deliveredToTheRequesterOnly();
    void newestWins_data();
    void newestWins();
    void tagsAreIndependent();
    void cancelAllAnswersCancelled();
    void destroyedReceiverGetsNothing_data();
    void destroyedReceiverGetsNothing();
    void typedErrors_data();
    void typedErrors();
    void callbackMaySubmitAgain();
    void interactiveJobsPassBackgroundWork();
};

void TestComputeService::resultArrivesOnGuiThread() {
    ComputeService service;
    QObject receiver;
    QThread* gui = QThread::currentThread();
    std::atomic<bool> ranElsewhere{false};
    std::vector<int> values;
    int onGuiThread = 0;
    service.submitCpu(
        QStringLiteral("a"),
        [&](const CancelToken&) -> Result<int> {
            ranElsewhere = QThread::currentThread() != gui;
            return 42;
        },
        &receiver,
        [&](Result<int> r) {
            onGuiThread += QThread::currentThread() == gui;
            values.push_back(r ? *r : -1);
        });
    QTRY_COMPARE_WITH_TIMEOUT(values.size(), size_t(1), kTimeoutMs);
    QVERIFY(ranElsewhere);
    QCOMPARE(onGuiThread, 1);
    QCOMPARE(values.front(), 42);
    QCOMPARE(service.pendingJobs(), 0);
    // GPU jobs run on the GPU worker (with a null engine and their CPU path when there is no GPU).
    service.submitGpu(
        QStringLiteral("g"), [&](GpuEngine* engine, const CancelToken&) -> Result<int> { return engine ? 2 : 1; },
        &receiver, [&](Result<int> r) { values.push_back(r ? *r : -1); });
    QTRY_COMPARE_WITH_TIMEOUT(values.size(), size_t(2), kTimeoutMs);
    QCOMPARE(values.back(), service.gpuAvailable() ? 2 : 1);
}

void TestComputeService::deliveredToTheRequesterOnly() {
    // No broadcast: the service has no signal that carries results.
    const QMetaObject& meta = ComputeService::staticMetaObject;
    for (int i = meta.methodOffset(); i < meta.methodCount(); ++i)
        if (meta.method(i).methodType() == QMetaMethod::Signal)
            QCOMPARE(meta.method(i).name(), QByteArray("busyChanged"));

    Gate release;  // declared first: a failed check leaves no job blocked on a destroyed gate
    ComputeService service;
    auto openOnExit = qScopeGuard([&] { release.release(); });
    QObject a, b;
    Answers answersA, answersB;
    service.submitCpu(
        QStringLiteral("a"), [](const CancelToken&) -> Result<int> { return 1; }, &a, answersA.recorder());
    service.submitCpu(
        QStringLiteral("b"), [](const CancelToken&) -> Result<int> { return 2; }, &b, answersB.recorder());
    QTRY_VERIFY_WITH_TIMEOUT(answersA.count() == 1 && answersB.count() == 1, kTimeoutMs);
    QTest::qWait(kQuietMs);
    QCOMPARE(answersA.count(), 1);
    QCOMPARE(answersB.count(), 1);
    QCOMPARE(*answersA.results[0], 1);
    QCOMPARE(*answersB.results[0], 2);

    // One tag, two requesters: the newer request wins and the older requester hears Cancelled,
    // not the other's value.
    std::atomic<bool> started{false};
    Answers first, second;
    service.submitCpu(
        QStringLiteral("shared"),
        [&](const CancelToken&) -> Result<int> {
            started = true;
            release.acquire();
            return 10;
        },
        &a, first.recorder());
    QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
    service.submitCpu(
        QStringLiteral("shared"), [](const CancelToken&) -> Result<int> { return 20; }, &b, second.recorder());
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(second.count(), 1, kTimeoutMs);
    QTest::qWait(kQuietMs);
    QCOMPARE(first.count(), 1);
    QCOMPARE(first.results[0].status().code(), ErrorCode::Cancelled);
    QCOMPARE(second.count(), 1);
    QCOMPARE(*second.results[0], 20);
}

void TestComputeService::newestWins_data() {
    QTest::addColumn<int>("queued");
    QTest::newRow("one queued behind a running job") << 1;
    QTest::newRow("several queued: only the last runs") << 5;
}

void TestComputeService::newestWins() {
    QFETCH(int, queued);
    Gate release;  // declared first: a failed check leaves no job blocked on a destroyed gate
    ComputeService service;
    auto openOnExit = qScopeGuard([&] { release.release(); });
    QObject receiver;
    std::atomic<bool> firstCancelled{false};
    std::atomic<int> runs{0};
    // answers[0] is the running job's requester, answers[1 + i] the i-th queued one's.
    std::vector<Answers> answers(size_t(queued + 1));
    service.submitCpu(
        QStringLiteral("zoom"),
        [&](const CancelToken& cancel) -> Result<int> {
            ++runs;
            release.acquire();
            firstCancelled = cancel.cancelled();
            return -1;
        },
        &receiver, answers[0].recorder());
    QTRY_COMPARE_WITH_TIMEOUT(runs.load(), 1, kTimeoutMs);  // the first job is running
    for (int i = 0; i < queued; ++i)
        service.submitCpu(
            QStringLiteral("zoom"),
            [&, i](const CancelToken&) -> Result<int> {
                ++runs;
                return i;
            },
            &receiver, answers[size_t(i + 1)].recorder());
    QCOMPARE(service.pendingJobs(), 2);  // one running, one queued: older queued ones were replaced
    // The replaced requesters hear Cancelled at once, while the first job still runs.
    QTRY_COMPARE_WITH_TIMEOUT(answers[0].count(), 1, kTimeoutMs);
    for (int i = 0; i < queued - 1; ++i) QTRY_COMPARE_WITH_TIMEOUT(answers[size_t(i + 1)].count(), 1, kTimeoutMs);
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(answers.back().count(), 1, kTimeoutMs);
    QTest::qWait(kQuietMs);
    QVERIFY(firstCancelled);   // the running job was told to stop
    QCOMPARE(runs.load(), 2);  // the replaced jobs never ran
    for (size_t i = 0; i + 1 < answers.size(); ++i) {
        QCOMPARE(answers[i].count(), 1);  // exactly once: its result (-1) was dropped
        QCOMPARE(answers[i].results[0].status().code(), ErrorCode::Cancelled);
        QVERIFY(!answers[i].results[0].message().empty());
    }
    QCOMPARE(answers.back().count(), 1);
    QVERIFY(answers.back().results[0].ok());
    QCOMPARE(*answers.back().results[0], queued - 1);
    QCOMPARE(service.pendingJobs(), 0);
}

void TestComputeService::tagsAreIndependent() {
    ComputeService service;
    QObject receiver;
    Answers zero, one;
    service.submitCpu(
        QStringLiteral("thumb:0"), [](const CancelToken&) -> Result<int> { return 0; }, &receiver, zero.recorder());
    service.submitCpu(
        QStringLiteral("thumb:1"), [](const CancelToken&) -> Result<int> { return 1; }, &receiver, one.recorder());
    QTRY_VERIFY_WITH_TIMEOUT(zero.count() == 1 && one.count() == 1, kTimeoutMs);
    QCOMPARE(*zero.results[0], 0);
    QCOMPARE(*one.results[0], 1);
}

void TestComputeService::cancelAllAnswersCancelled() {
    Gate release;  // declared first: a failed check leaves no job blocked on a destroyed gate
    ComputeService service;
    auto openOnExit = qScopeGuard([&] { release.release(); });
    QObject receiver;
    std::atomic<bool> started{false}, cancelled{false}, queuedRan{false};
    Answers running, waiting, other;
    service.submitCpu(
        QStringLiteral("head:map"),
        [&](const CancelToken& cancel) -> Result<int> {
            started = true;
            release.acquire();
            cancelled = cancel.cancelled();
            return 1;
        },
        &receiver, running.recorder());
    QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 1, kTimeoutMs);
    service.submitCpu(
        QStringLiteral("head:map"),
        [&](const CancelToken&) -> Result<int> {
            queuedRan = true;
            return 3;
        },
        &receiver, waiting.recorder());
    QTRY_COMPARE_WITH_TIMEOUT(running.count(), 1, kTimeoutMs);  // replaced by the second
    service.submitCpu(
        QStringLiteral("other"), [](const CancelToken&) -> Result<int> { return 2; }, &receiver, other.recorder());
    service.cancelAll(QStringLiteral("head:"));
    QTRY_COMPARE_WITH_TIMEOUT(waiting.count(), 1, kTimeoutMs);  // answered before the job stops
    QCOMPARE(waiting.results[0].status().code(), ErrorCode::Cancelled);
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(other.count(), 1, kTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
    QTest::qWait(kQuietMs);
    QCOMPARE(running.count(), 1);
    QCOMPARE(running.results[0].status().code(), ErrorCode::Cancelled);
    QCOMPARE(waiting.count(), 1);
    QCOMPARE(*other.results[0], 2);
    QVERIFY(cancelled);
    QVERIFY(!queuedRan);
}

void TestComputeService::destroyedReceiverGetsNothing_data() {
    QTest::addColumn<QString>("when");
    QTest::newRow("while its job runs") << QStringLiteral("running");
    QTest::newRow("with the result on its way") << QStringLiteral("result posted");
    QTest::newRow("while its job waits behind another") << QStringLiteral("queued");
    QTest::newRow("with a Cancelled answer on its way") << QStringLiteral("refusal posted");
}

void TestComputeService::destroyedReceiverGetsNothing() {
    QFETCH(QString, when);
    Gate release;  // declared first: a failed check leaves no job blocked on a destroyed gate
    ComputeService service;
    auto openOnExit = qScopeGuard([&] { release.release(); });
    QObject survivor;
    auto receiver = std::make_unique<QObject>();
    Answers gone, kept;
    std::atomic<bool> started{false}, cancelSeen{false}, returned{false}, laterRan{false};
    auto blocking = [&](const CancelToken& cancel) -> Result<int> {
        started = true;
        release.acquire();
        cancelSeen = cancel.cancelled();
        return 1;
    };
    auto later = [&](const CancelToken&) -> Result<int> {
        laterRan = true;
        return 2;
    };
    if (when == QLatin1String("running")) {
        service.submitCpu(QStringLiteral("t"), blocking, receiver.get(), gone.recorder());
        QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
        receiver.reset();
        release.release();
        QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
        QVERIFY(cancelSeen);  // nobody waits for it: it was told to stop
    } else if (when == QLatin1String("result posted")) {
        service.submitCpu(
            QStringLiteral("t"),
            [&](const CancelToken&) -> Result<int> {
                returned = true;
                return 1;
            },
            receiver.get(), gone.recorder());
        QVERIFY(waitWithoutEvents(returned));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the finish is posted meanwhile
        receiver.reset();
        QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
    } else if (when == QLatin1String("queued")) {
        service.submitCpu(QStringLiteral("t"), blocking, &survivor, kept.recorder());
        QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
        service.submitCpu(QStringLiteral("t"), later, receiver.get(), gone.recorder());
        QCOMPARE(service.pendingJobs(), 2);
        receiver.reset();
        QCOMPARE(service.pendingJobs(), 1);  // the waiting job was dropped with its receiver
        release.release();
        QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
        QVERIFY(!laterRan);
        // The survivor's job had been replaced by the dropped one: it still hears Cancelled.
        QTRY_COMPARE_WITH_TIMEOUT(kept.count(), 1, kTimeoutMs);
        QCOMPARE(kept.results[0].status().code(), ErrorCode::Cancelled);
    } else {
        service.submitCpu(QStringLiteral("t"), blocking, receiver.get(), gone.recorder());
        QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
        service.submitCpu(QStringLiteral("t"), later, receiver.get(),
                          gone.recorder());  // posts Cancelled for the first
        receiver.reset();
        release.release();
        QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
        QVERIFY(!laterRan);
    }
    QTest::qWait(kQuietMs);
    QCOMPARE(gone.count(), 0);
    // The service carries on for other receivers.
    service.submitCpu(QStringLiteral("t"), later, &survivor, kept.recorder());
    QTRY_VERIFY_WITH_TIMEOUT(!kept.results.empty() && kept.results.back().ok(), kTimeoutMs);
    QCOMPARE(*kept.results.back(), 2);
    QCOMPARE(gone.count(), 0);
}

void TestComputeService::typedErrors_data() {
    QTest::addColumn<int>("kind");
    QTest::addColumn<int>("expected");
    QTest::addColumn<QString>("message");
    QTest::newRow("returned Unsupported") << 0 << int(ErrorCode::Unsupported) << QStringLiteral("no GPU here");
    QTest::newRow("returned OutOfMemory") << 1 << int(ErrorCode::OutOfMemory) << QStringLiteral("device full");
    QTest::newRow("returned Format") << 2 << int(ErrorCode::Format) << QStringLiteral("bad header");
    QTest::newRow("thrown std::bad_alloc") << 3 << int(ErrorCode::OutOfMemory) << QStringLiteral("out of memory");
    QTest::newRow("thrown std::runtime_error") << 4 << int(ErrorCode::Internal) << QStringLiteral("boom");
}

void TestComputeService::typedErrors() {
    QFETCH(int, kind);
    QFETCH(int, expected);
    QFETCH(QString, message);
    const std::string text = message.toStdString();
    auto job = [kind, text](const CancelToken&) -> Result<int> {
        switch (kind) {
        case 0: return Status{ErrorCode::Unsupported, text};
        case 1: return Status{ErrorCode::OutOfMemory, text};
        case 2: return Status{ErrorCode::Format, text};
        case 3: throw std::bad_alloc();
        default: throw std::runtime_error(text);
        }
    };
    ComputeService service;
    QObject receiver;
    for (Lane lane : {Lane::Cpu, Lane::Gpu, Lane::Background}) {
        Answers answers;
        submitOn(service, lane, QStringLiteral("e"), job, &receiver, answers);
        QTRY_COMPARE_WITH_TIMEOUT(answers.count(), 1, kTimeoutMs);
        const Result<int>& r = answers.results[0];
        QVERIFY(!r.ok());
        QCOMPARE(int(r.status().code()), expected);
        QVERIFY2(QString::fromStdString(r.message()).contains(message), r.message().c_str());
    }
}

void TestComputeService::callbackMaySubmitAgain() {
    ComputeService service;
    QObject receiver;
    std::vector<int> values;
    std::function<void(int)> step = [&](int n) {
        service.submitCpu(
            QStringLiteral("chain"), [n](const CancelToken&) -> Result<int> { return n; }, &receiver,
            [&](Result<int> r) {
                values.push_back(r ? *r : -1);
                if (r && *r < 3) step(*r + 1);  // from inside the delivery, under the same tag
            });
    };
    step(1);
    QTRY_COMPARE_WITH_TIMEOUT(values.size(), size_t(3), kTimeoutMs);
    QCOMPARE(values, (std::vector<int>{1, 2, 3}));
    QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
}

void TestComputeService::interactiveJobsPassBackgroundWork() {
    Gate release;  // declared first: a failed check leaves no job blocked on a destroyed gate
    ComputeService service;
    auto openOnExit = qScopeGuard([&] { release.release(); });
    QObject receiver;
    std::atomic<bool> holding{false};
    QStringList done;
    auto record = [&](Result<QString> r) { done << (r ? *r : QStringLiteral("error")); };
    // The analysis: long background work, in the middle of one of the engine's fork-join loops.
    service.submitBackground(
        QStringLiteral("head:analysis"),
        [&](GpuEngine*, const CancelToken&) -> Result<QString> {
            attnscope::parallelFor(2, [&](int64_t i, int) {
                if (i == 0) {
                    holding = true;
                    release.acquire();
                }
            });
            return QStringLiteral("analysis");
        },
        &receiver, record);
    QTRY_VERIFY_WITH_TIMEOUT(holding.load(), kTimeoutMs);
    // Map requests meanwhile, on every lane a map takes: the CPU pool (previews, thumbnails) and
    // the GPU worker (with its CPU path when there is no GPU); each uses the fork-join pool too.
    auto mapJob = [](const QString& name) {
        return [name](const CancelToken&) -> Result<QString> {
            std::atomic<int64_t> n{0};
            attnscope::parallelFor(256, [&](int64_t, int) { ++n; });
            return name;
        };
    };
    service.submitCpu(QStringLiteral("head:map:preview"), mapJob(QStringLiteral("preview")), &receiver, record);
    service.submitGpu(
        QStringLiteral("head:map:detail"),
        [job = mapJob(QStringLiteral("detail"))](GpuEngine*, const CancelToken& c) { return job(c); }, &receiver,
        record, ComputeService::WhileGpuBusy::RunOnCpu);
    QTRY_COMPARE_WITH_TIMEOUT(done.size(), 2, kTimeoutMs);  // both, while the analysis still runs
    QCOMPARE(QSet<QString>(done.begin(), done.end()),
             (QSet<QString>{QStringLiteral("preview"), QStringLiteral("detail")}));
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(done.size(), 3, kTimeoutMs);
    QCOMPARE(done.back(), QStringLiteral("analysis"));
}

QTEST_MAIN(TestComputeService)
#include "tst_computeservice.moc"
