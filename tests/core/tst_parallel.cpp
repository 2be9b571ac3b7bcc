// parallelFor: every item once; nested calls run inline; a background caller's parallelFor runs on
// a pool of its own, so an interactive caller never waits for it (one job at a time per pool).
#include <QtTest>

#include <atomic>
#include <optional>
#include <semaphore>
#include <thread>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/parallel.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 10000;
constexpr int64_t kItems = 1000;
}  // namespace

class TestParallel : public QObject {
    Q_OBJECT
private slots:
    void everyItemOnce();
    void nestedRunsInline();
    void backgroundDoesNotHoldTheSharedPool();
    void backgroundYieldsToInteractive();
};

void TestParallel::everyItemOnce() {
    std::vector<std::atomic<int>> seen(kItems);
    std::atomic<int> badWorker{0};
    parallelFor(kItems, [&](int64_t i, int worker) {
        ++seen[size_t(i)];
        if (worker < 0 || worker >= workerCount()) ++badWorker;
    });
    for (const auto& s : seen) QCOMPARE(s.load(), 1);
    QCOMPARE(badWorker.load(), 0);
}

void TestParallel::nestedRunsInline() {
    std::atomic<int64_t> total{0};
    parallelFor(8, [&](int64_t, int) { parallelFor(8, [&](int64_t, int) { ++total; }); });
    QCOMPARE(total.load(), int64_t(64));
}

void TestParallel::backgroundDoesNotHoldTheSharedPool() {
    if (workerCount() < 2) QSKIP("one worker: every parallelFor runs inline, no pool is shared");
    std::binary_semaphore release(0);
    std::atomic<bool> holding{false}, interactiveDone{false};
    // A background job (an analysis) whose parallelFor is in the middle of a long item.
    std::thread background([&] {
        setBackgroundParallelism(true);
        parallelFor(2, [&](int64_t i, int) {
            if (i == 0) {
                holding = true;
                release.acquire();
            }
        });
    });
    std::optional<std::thread> interactive;
    auto finish = qScopeGuard([&] {  // also when a check fails: the interactive call may wait for the release
        release.release();
        background.join();
        if (interactive) interactive->join();
    });
    QTRY_VERIFY_WITH_TIMEOUT(holding.load(), kTimeoutMs);
    // An interactive caller (a map request) meanwhile.
    interactive.emplace([&] {
        std::atomic<int64_t> n{0};
        parallelFor(kItems, [&](int64_t, int) { ++n; });
        interactiveDone = n == kItems;
    });
    QTRY_VERIFY_WITH_TIMEOUT(interactiveDone.load(), kTimeoutMs);
}

void TestParallel::backgroundYieldsToInteractive() {
    if (workerCount() < 2) QSKIP("one worker: every parallelFor runs inline, no pool is shared");
    std::binary_semaphore release(0);
    std::atomic<bool> interactiveHolding{false};
    std::atomic<int64_t> backgroundItems{0};
    constexpr int64_t kBackgroundItems = 200000;
    // An interactive job (a map tile) in the middle of its fork-join loop.
    std::thread interactive([&] {
        parallelFor(2, [&](int64_t i, int) {
            if (i == 0) {
                interactiveHolding = true;
                release.acquire();
            }
        });
    });
    std::optional<std::thread> background;
    auto finish = qScopeGuard([&] {
        release.release();
        interactive.join();
        if (background) background->join();
    });
    QTRY_VERIFY_WITH_TIMEOUT(interactiveHolding.load(), kTimeoutMs);
    background.emplace([&] {
        setBackgroundParallelism(true);
        parallelFor(kBackgroundItems, [&](int64_t, int) { ++backgroundItems; });
    });
    // The analysis waits while the tile computes: at most the item each worker had taken.
    QTest::qWait(200);
    QVERIFY2(backgroundItems.load() <= workerCount(), qPrintable(QString::number(backgroundItems.load())));
    release.release();
    QTRY_COMPARE_WITH_TIMEOUT(backgroundItems.load(), kBackgroundItems, kTimeoutMs);
}

QTEST_GUILESS_MAIN(TestParallel)
#include "tst_parallel.moc"
