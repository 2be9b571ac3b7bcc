// ProgressReporter (core/include/attnscope/progress.h): calls are serialised, the fractions passed
// on never decrease even when workers finish items out of order, and cancellation is sticky.
#include <QtTest>

#include <atomic>
#include <thread>
#include <vector>

#include "attnscope/progress.h"

using namespace attnscope;

class TestProgress : public QObject {
    Q_OBJECT
private slots:
    void outOfOrderIsDropped();
    void workersSeeMonotonicSerialisedCalls();
    void cancellationIsSticky();
};

void TestProgress::outOfOrderIsDropped() {
    std::vector<double> seen;
    ProgressFn fn = [&](double f, std::string_view) {
        seen.push_back(f);
        return true;
    };
    ProgressReporter r(fn);
    for (double f : {0.1, 0.3, 0.2, 0.3, 0.5, 0.4, 1.0}) QVERIFY(r.report(f, "x"));
    const std::vector<double> expected = {0.1, 0.3, 0.3, 0.5, 1.0};
    QCOMPARE(seen, expected);
}

void TestProgress::workersSeeMonotonicSerialisedCalls() {
    // Four threads report item counts the way ItemProgress does (fetch_add, then report): the
    // callback must never run concurrently and never see a smaller fraction than before.
    constexpr int kItems = 20000;
    std::atomic<int> inside{0}, overlaps{0}, calls{0};
    double last = -1.0;
    bool monotonic = true;
    ProgressFn fn = [&](double f, std::string_view) {
        if (inside.fetch_add(1) != 0) overlaps.fetch_add(1);
        if (f < last) monotonic = false;
        last = f;
        calls.fetch_add(1);
        inside.fetch_sub(1);
        return true;
    };
    ProgressReporter r(fn);
    std::atomic<int> done{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t)
        workers.emplace_back([&] {
            for (;;) {
                const int d = done.fetch_add(1) + 1;
                if (d > kItems) return;
                r.report(double(d) / kItems, "items");
            }
        });
    for (auto& w : workers) w.join();
    QCOMPARE(overlaps.load(), 0);
    QVERIFY(monotonic);
    QVERIFY(calls.load() > 0);
}

void TestProgress::cancellationIsSticky() {
    int calls = 0;
    ProgressFn fn = [&](double f, std::string_view) {
        ++calls;
        return f < 0.5;
    };
    ProgressReporter r(fn);
    QVERIFY(r.report(0.2, "x"));
    QVERIFY(!r.report(0.6, "x"));
    QVERIFY(r.cancelled());
    QVERIFY(!r.report(0.7, "x"));  // not passed on once cancelled
    QCOMPARE(calls, 2);
}

QTEST_GUILESS_MAIN(TestProgress)
#include "tst_progress.moc"
