// ComputeService: tagged jobs where the newest wins (a queued job is replaced, a running one is
// cancelled and its result dropped), results by value through queued signals, cancelAll, and
// interactive jobs that never wait for background work.
#include <QtTest>

#include <atomic>
#include <semaphore>

#include "attnscope/parallel.h"
#include "computeservice.h"

using attnscope::CancelToken;
using attnscope::ComputeService;

namespace {
constexpr int kTimeoutMs = 10000;
}

class TestComputeService : public QObject {
    Q_OBJECT
private slots:
    void resultArrivesOnGuiThread();
    void newestWins_data();
    void newestWins();
    void tagsAreIndependent();
    void cancelAllDropsResults();
    void interactiveJobsPassBackgroundWork();
};

void TestComputeService::resultArrivesOnGuiThread()
{
    ComputeService service;
    QSignalSpy spy(&service, &ComputeService::jobFinished);
    QThread* gui = QThread::currentThread();
    std::atomic<bool> ranElsewhere{false};
    const quint64 id = service.submitCpu(QStringLiteral("a"), [&](const CancelToken&) {
        ranElsewhere = QThread::currentThread() != gui;
        return QVariant(42);
    });
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 1, kTimeoutMs);
    QVERIFY(ranElsewhere);
    QCOMPARE(spy.at(0).at(0).toULongLong(), id);
    QCOMPARE(spy.at(0).at(1).toString(), QStringLiteral("a"));
    QCOMPARE(spy.at(0).at(2).toInt(), 42);
    QCOMPARE(service.pendingJobs(), 0);
    // GPU jobs run on the GPU worker (with a null engine and their CPU path when there is no GPU).
    const quint64 gpuId = service.submitGpu(QStringLiteral("g"), [&](attnscope::GpuEngine* engine, const CancelToken&) {
        return QVariant(engine == nullptr ? 1 : 2);
    });
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 2, kTimeoutMs);
    QCOMPARE(spy.at(1).at(0).toULongLong(), gpuId);
    QCOMPARE(spy.at(1).at(2).toInt(), service.gpuAvailable() ? 2 : 1);
}

void TestComputeService::newestWins_data()
{
    QTest::addColumn<int>("queued");
    QTest::newRow("one queued behind a running job") << 1;
    QTest::newRow("several queued: only the last runs") << 5;
}

void TestComputeService::newestWins()
{
    QFETCH(int, queued);
    ComputeService service;
    QSignalSpy spy(&service, &ComputeService::jobFinished);
    std::binary_semaphore release(0);
    std::atomic<bool> firstCancelled{false};
    std::atomic<int> runs{0};
    service.submitCpu(QStringLiteral("zoom"), [&](const CancelToken& cancel) {
        ++runs;
        release.acquire();
        firstCancelled = cancel.cancelled();
        return QVariant(-1);
    });
    QTRY_COMPARE_WITH_TIMEOUT(runs.load(), 1, kTimeoutMs);  // the first job is running
    quint64 last = 0;
    for (int i = 0; i < queued; ++i)
        last = service.submitCpu(QStringLiteral("zoom"), [&, i](const CancelToken&) {
            ++runs;
            return QVariant(i);
        });
    QCOMPARE(service.pendingJobs(), 2);  // one running, one queued: older queued ones were replaced
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 1, kTimeoutMs);
    QTest::qWait(50);
    QCOMPARE(spy.count(), 1);                    // the running job's stale result was dropped
    QVERIFY(firstCancelled);                     // and it was told to stop
    QCOMPARE(runs.load(), 2);                    // the replaced jobs never ran
    QCOMPARE(spy.at(0).at(0).toULongLong(), last);
    QCOMPARE(spy.at(0).at(2).toInt(), queued - 1);
}

void TestComputeService::tagsAreIndependent()
{
    ComputeService service;
    QSignalSpy spy(&service, &ComputeService::jobFinished);
    service.submitCpu(QStringLiteral("thumb:0"), [](const CancelToken&) { return QVariant(0); });
    service.submitCpu(QStringLiteral("thumb:1"), [](const CancelToken&) { return QVariant(1); });
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 2, kTimeoutMs);
    QSet<int> values{spy.at(0).at(2).toInt(), spy.at(1).at(2).toInt()};
    QCOMPARE(values, (QSet<int>{0, 1}));
}

void TestComputeService::cancelAllDropsResults()
{
    ComputeService service;
    QSignalSpy spy(&service, &ComputeService::jobFinished);
    std::binary_semaphore release(0);
    std::atomic<bool> started{false}, cancelled{false};
    service.submitCpu(QStringLiteral("head:map"), [&](const CancelToken& cancel) {
        started = true;
        release.acquire();
        cancelled = cancel.cancelled();
        return QVariant(1);
    });
    QTRY_VERIFY_WITH_TIMEOUT(started.load(), kTimeoutMs);
    service.submitCpu(QStringLiteral("other"), [](const CancelToken&) { return QVariant(2); });
    service.cancelAll(QStringLiteral("head:"));
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 1, kTimeoutMs);
    QTest::qWait(50);
    QCOMPARE(spy.count(), 1);
    QCOMPARE(spy.at(0).at(1).toString(), QStringLiteral("other"));
    QVERIFY(cancelled);
    QTRY_COMPARE_WITH_TIMEOUT(service.pendingJobs(), 0, kTimeoutMs);
}

void TestComputeService::interactiveJobsPassBackgroundWork()
{
    ComputeService service;
    QSignalSpy spy(&service, &ComputeService::jobFinished);
    std::binary_semaphore release(0);
    std::atomic<bool> holding{false};
    // The analysis: long background work, in the middle of one of the engine's fork-join loops.
    service.submitBackground(QStringLiteral("head:analysis"), [&](attnscope::GpuEngine*, const CancelToken&) {
        attnscope::parallelFor(2, [&](int64_t i, int) {
            if (i == 0) {
                holding = true;
                release.acquire();
            }
        });
        return QVariant(QStringLiteral("analysis"));
    });
    auto finish = qScopeGuard([&] { release.release(); });
    QTRY_VERIFY_WITH_TIMEOUT(holding.load(), kTimeoutMs);
    // Map requests meanwhile, on every lane a map takes: the CPU pool (previews, thumbnails) and
    // the GPU worker (with its CPU path when there is no GPU); each uses the fork-join pool too.
    auto mapJob = [](const QString& name) {
        return [name](const CancelToken&) {
            std::atomic<int64_t> n{0};
            attnscope::parallelFor(256, [&](int64_t, int) { ++n; });
            return QVariant(name);
        };
    };
    service.submitCpu(QStringLiteral("head:map:preview"), mapJob(QStringLiteral("preview")));
    service.submitGpu(
        QStringLiteral("head:map:detail"),
        [job = mapJob(QStringLiteral("detail"))](attnscope::GpuEngine*, const CancelToken& c) { return job(c); },
        ComputeService::WhileGpuBusy::RunOnCpu);
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 2, kTimeoutMs);  // both, while the analysis still runs
    QSet<QString> done{spy.at(0).at(2).toString(), spy.at(1).at(2).toString()};
    QCOMPARE(done, (QSet<QString>{QStringLiteral("preview"), QStringLiteral("detail")}));
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(spy.count(), 3, kTimeoutMs);
    QCOMPARE(spy.at(2).at(2).toString(), QStringLiteral("analysis"));
}

QTEST_MAIN(TestComputeService)
#include "tst_computeservice.moc"
