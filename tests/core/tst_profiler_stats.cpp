// Profiler statistics (median, quartiles, IQR, relative std dev) and the stopping rule.
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <random>

#include "attnscope/profiler.h"

using namespace attnscope;

Q_DECLARE_METATYPE(std::vector<double>)
Q_DECLARE_METATYPE(attnscope::StopReason)

namespace {
// Float64 brute force of the sample standard deviation over the mean.
double bruteRelStd(const std::vector<double>& x) {
    if (x.size() < 2) return 0;
    long double mean = 0;
    for (double v : x) mean += v;
    mean /= x.size();
    long double ss = 0;
    for (double v : x) ss += (v - mean) * (v - mean);
    return mean > 0 ? double(std::sqrt(ss / (x.size() - 1)) / mean) : 0;
}
}  // namespace

class TestProfilerStats : public QObject {
    Q_OBJECT

private slots:
    void stats_data() {
        QTest::addColumn<std::vector<double>>("samples");
        QTest::addColumn<double>("median");
        QTest::addColumn<double>("q1");
        QTest::addColumn<double>("q3");
        QTest::addColumn<double>("min");
        QTest::addColumn<double>("max");
        QTest::addColumn<double>("relStd");
        // Quartiles: linear interpolation between order statistics (numpy's default).
        QTest::newRow("four") << std::vector<double>{4, 1, 3, 2} << 2.5 << 1.75 << 3.25 << 1.0 << 4.0
                              << std::sqrt(5.0 / 3.0) / 2.5;
        QTest::newRow("single") << std::vector<double>{5} << 5.0 << 5.0 << 5.0 << 5.0 << 5.0 << 0.0;
        QTest::newRow("three") << std::vector<double>{3, 1, 2} << 2.0 << 1.5 << 2.5 << 1.0 << 3.0 << 0.5;
        QTest::newRow("constant") << std::vector<double>(7, 10.0) << 10.0 << 10.0 << 10.0 << 10.0 << 10.0 << 0.0;
        QTest::newRow("outlier") << std::vector<double>{1, 100, 2, 3, 4} << 3.0 << 2.0 << 4.0 << 1.0 << 100.0
                                 << bruteRelStd({1, 100, 2, 3, 4});
        QTest::newRow("even six") << std::vector<double>{6, 5, 4, 3, 2, 1} << 3.5 << 2.25 << 4.75 << 1.0 << 6.0
                                  << bruteRelStd({1, 2, 3, 4, 5, 6});
    }
    void stats() {
        QFETCH(std::vector<double>, samples);
        QFETCH(double, median);
        QFETCH(double, q1);
        QFETCH(double, q3);
        QFETCH(double, min);
        QFETCH(double, max);
        QFETCH(double, relStd);
        const SampleStats s = computeStats(samples);
        QCOMPARE(s.n, int(samples.size()));
        QVERIFY(std::abs(s.median - median) < 1e-12);
        QVERIFY(std::abs(s.q1 - q1) < 1e-12);
        QVERIFY(std::abs(s.q3 - q3) < 1e-12);
        QVERIFY(std::abs(s.iqr - (q3 - q1)) < 1e-12);
        QCOMPARE(s.min, min);
        QCOMPARE(s.max, max);
        QVERIFY2(std::abs(s.relStdDev - relStd) < 1e-12, qPrintable(QString::number(s.relStdDev)));
    }

    void emptyStats() {
        const SampleStats s = computeStats({});
        QCOMPARE(s.n, 0);
        QCOMPARE(s.median, 0.0);
        QCOMPARE(s.relStdDev, 0.0);
    }

    // Fresh random samples: the quantiles match a brute-force definition (the value at rank
    // q·(n-1), interpolated) and the deviation matches the long-double brute force.
    void randomAgainstBruteForce() {
        std::mt19937_64 rng(QRandomGenerator::global()->generate64());
        std::lognormal_distribution<double> dist(0.0, 0.3);
        for (int trial = 0; trial < 50; ++trial) {
            std::vector<double> x(size_t(1 + rng() % 300));
            for (double& v : x) v = dist(rng);
            std::vector<double> sorted = x;
            std::sort(sorted.begin(), sorted.end());
            const SampleStats s = computeStats(x);
            for (double q : {0.0, 0.25, 0.5, 0.75, 1.0}) {
                const double rank = q * double(sorted.size() - 1);
                const size_t lo = size_t(rank), hi = std::min(lo + 1, sorted.size() - 1);
                const double expect = sorted[lo] * (1 - (rank - lo)) + sorted[hi] * (rank - lo);
                QVERIFY(std::abs(quantileSorted(sorted, q) - expect) < 1e-12);
            }
            QVERIFY(std::abs(s.relStdDev - bruteRelStd(x)) < 1e-10);
            QVERIFY(s.min <= s.q1 && s.q1 <= s.median && s.median <= s.q3 && s.q3 <= s.max);
        }
    }

    void stopping_data() {
        QTest::addColumn<int>("minSamples");
        QTest::addColumn<int>("maxSamples");
        QTest::addColumn<double>("minTotalMs");
        QTest::addColumn<double>("timeout");
        QTest::addColumn<std::vector<double>>("samples");
        QTest::addColumn<double>("elapsed");
        QTest::addColumn<StopReason>("expected");
        std::vector<double> steady(10, 1.0), noisy;
        for (int i = 0; i < 20; ++i) noisy.push_back(i % 2 ? 1.0 : 2.0);  // 34% rel std
        std::vector<double> noisyMax(200);
        for (size_t i = 0; i < noisyMax.size(); ++i) noisyMax[i] = i % 2 ? 1.0 : 2.0;
        std::vector<double> tight;
        for (int i = 0; i < 12; ++i) tight.push_back(1.0 + (i % 2 ? 0.004 : -0.004));  // 0.42% rel std
        QTest::newRow("steady converges") << 10 << 200 << 0.0 << 15.0 << steady << 1.0 << StopReason::Converged;
        QTest::newRow("too few samples") << 11 << 200 << 0.0 << 15.0 << steady << 1.0 << StopReason::Continue;
        QTest::newRow("noisy keeps going") << 10 << 200 << 0.0 << 15.0 << noisy << 1.0 << StopReason::Continue;
        QTest::newRow("noisy hits max") << 10 << 200 << 0.0 << 15.0 << noisyMax << 1.0 << StopReason::MaxSamples;
        QTest::newRow("noisy times out") << 10 << 200 << 0.0 << 15.0 << noisy << 16.0 << StopReason::Timeout;
        QTest::newRow("needs more total time") << 10 << 200 << 100.0 << 15.0 << steady << 1.0 << StopReason::Continue;
        QTest::newRow("enough total time") << 10 << 200 << 10.0 << 15.0 << steady << 1.0 << StopReason::Converged;
        QTest::newRow("converged beats timeout") << 10 << 200 << 0.0 << 15.0 << steady << 20.0 << StopReason::Converged;
        QTest::newRow("tight under target") << 10 << 200 << 0.0 << 15.0 << tight << 1.0 << StopReason::Converged;
        QTest::newRow("no samples yet") << 1 << 5 << 0.0 << 1.0 << std::vector<double>{} << 5.0 << StopReason::Continue;
        QTest::newRow("max before min") << 3 << 3 << 0.0 << 15.0 << std::vector<double>{1, 2, 3} << 0.1
                                        << StopReason::MaxSamples;
    }
    void stopping() {
        QFETCH(int, minSamples);
        QFETCH(int, maxSamples);
        QFETCH(double, minTotalMs);
        QFETCH(double, timeout);
        QFETCH(std::vector<double>, samples);
        QFETCH(double, elapsed);
        QFETCH(StopReason, expected);
        StoppingRule rule;
        rule.minSamples = minSamples;
        rule.maxSamples = maxSamples;
        rule.minTotalMs = minTotalMs;
        rule.timeoutSeconds = timeout;
        QVERIFY(validateStoppingRule(rule).ok());
        const StopReason got = evaluateStop(rule, samples, elapsed);
        QVERIFY2(got == expected, stopReasonName(got));
    }

    // A simulated sampling loop with noise well under the target converges at minSamples;
    // noise above it runs to maxSamples.
    void simulatedLoop_data() {
        QTest::addColumn<double>("noise");
        QTest::addColumn<StopReason>("expected");
        QTest::newRow("quiet") << 0.0005 << StopReason::Converged;
        QTest::newRow("loud") << 0.05 << StopReason::MaxSamples;
    }
    void simulatedLoop() {
        QFETCH(double, noise);
        QFETCH(StopReason, expected);
        std::mt19937_64 rng(QRandomGenerator::global()->generate64());
        std::normal_distribution<double> d(1.0, noise);
        StoppingRule rule;
        rule.minSamples = 10;
        rule.maxSamples = 60;
        std::vector<double> samples;
        StopReason r = StopReason::Continue;
        while (r == StopReason::Continue) {
            samples.push_back(d(rng));
            r = evaluateStop(rule, samples, 0.001 * samples.size());
        }
        QVERIFY2(r == expected, stopReasonName(r));
        if (expected == StopReason::Converged)
            QCOMPARE(int(samples.size()), rule.minSamples);
        else
            QCOMPARE(int(samples.size()), rule.maxSamples);
    }

    void invalidRules_data() {
        QTest::addColumn<double>("target");
        QTest::addColumn<int>("minSamples");
        QTest::addColumn<int>("maxSamples");
        QTest::addColumn<double>("timeout");
        QTest::newRow("zero target") << 0.0 << 1 << 10 << 1.0;
        QTest::newRow("min zero") << 0.01 << 0 << 10 << 1.0;
        QTest::newRow("max below min") << 0.01 << 10 << 5 << 1.0;
        QTest::newRow("no timeout") << 0.01 << 1 << 10 << 0.0;
    }
    void invalidRules() {
        QFETCH(double, target);
        QFETCH(int, minSamples);
        QFETCH(int, maxSamples);
        QFETCH(double, timeout);
        StoppingRule rule{target, minSamples, maxSamples, 0.0, timeout};
        const Status st = validateStoppingRule(rule);
        QVERIFY(!st.ok());
        QCOMPARE(st.code(), ErrorCode::InvalidArgument);
        QVERIFY(st.message().find("stopping rule") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestProfilerStats)
#include "tst_profiler_stats.moc"
