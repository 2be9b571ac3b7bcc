// Quadratic CPU work estimated before it starts (core/cpu_budget.h, the CLI's checkCpuWork): the
// pair counts and wording against hand computation, a measured rate that agrees with a timed
// pass, and end to end at T = 4,194,304 tokens: `analyze --cpu` and a whole `map --cpu` are
// refused at once with the estimate and the ways out (they would take hours); a map of a small
// rect of the same trace runs.
#include <QtTest>

#include <chrono>

#include "attnscope/attention.h"
#include "attnscope/cpu_budget.h"
#include "attnscope/trace.h"
#include "cli_run.h"
#include "trace_fixture.h"

using namespace attnscope;
using testfixture::randomValues;
using testfixture::smallMetadata;

class TestCpuBudget : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

private slots:
    void scoreProductsCountPairs() {
        QCOMPARE(scoreProducts(100, 200, 64, false), 100.0 * 200 * 64);
        QCOMPARE(scoreProducts(4096, 4096, 128, true), 4096.0 * 4096 / 2 * 128);
        QCOMPARE(scoreProducts(0, 4096, 128, true), 0.0);
    }

    void secondsInWords() {
        QCOMPARE(describeSeconds(42), std::string("42 s"));
        QCOMPARE(describeSeconds(300), std::string("5.0 min"));
        QCOMPARE(describeSeconds(2 * 3600 + 1800), std::string("2.5 h"));
        QCOMPARE(describeSeconds(3600), std::string("1.0 h"));
        QCOMPARE(describeSeconds(3 * 86400), std::string("3.0 days"));
    }

    /// The rate is measured once per head dim (remembered), and predicts a timed pass of another
    /// size within a factor of 4 (the machine is shared with the other tests: a loose bound, but
    /// one a wrong unit or a missing factor of d would fail).
    void measuredRatePredictsAPass() {
        const double rate = measuredCpuScoreRate(64);
        QVERIFY(rate > 1e6);
        QCOMPARE(measuredCpuScoreRate(64), rate);
        const int64_t T = 3000, d = 64;
        const auto q = cliTestMatrix(T, d, 1), k = cliTestMatrix(T, d, 2);
        AttentionSpec spec;
        spec.scale = 0.125f;
        spec.mask.causal = false;
        double best = 1e30;
        for (int run = 0; run < 3; ++run) {
            const auto t0 = std::chrono::steady_clock::now();
            QVERIFY(rowLogSumExp(q, k, spec, 0, T));
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        const CpuWorkEstimate e = estimateCpuWork(scoreProducts(T, T, d, false), d);
        QCOMPARE(e.productsPerSecond, rate);
        QVERIFY2(e.seconds > best / 4 && e.seconds < best * 4,
                 qPrintable(QStringLiteral("estimate %1 s, measured %2 s").arg(e.seconds).arg(best)));
        QVERIFY(!e.overLimit());
        QVERIFY(QString::fromStdString(e.describe()).startsWith(QStringLiteral("about ")));
    }

    void fourMillionTokensAreRefusedUpFront() {
        QVERIFY(m_dir.isValid());
        constexpr int64_t kT = int64_t(1) << 22;
        TraceMetadata m = smallMetadata(1, 1, 1, 1, 4);
        m.tokens.assign(size_t(kT), "a");  // one per token, as the format requires (a 16 MB header)
        m.tokenIds.clear();
        TraceWriter w(m);
        std::vector<float> values(static_cast<size_t>(kT));
        for (int64_t i = 0; i < kT; ++i) values[size_t(i)] = float(i % 7) * 0.25f;
        for (const char* which : {"q", "k", "v"})
            w.addTensor(std::string("layers.0.") + which, DType::F16, {1, kT, 1}, values);
        const QString path = m_dir.filePath(QStringLiteral("t4m.attn.safetensors"));
        QVERIFY(w.write(path.toStdString()));
        values = {};
        w = TraceWriter(TraceMetadata());

        for (const QStringList& args :
             {QStringList{"analyze", path, "--cpu", "--no-progress"},
              QStringList{"map", path, "--layer", "0", "--head", "0", "--cpu", "--no-progress", "-o",
                          m_dir.filePath(QStringLiteral("whole.png"))}}) {
            const auto t0 = std::chrono::steady_clock::now();
            const cliTest::Run r = cliTest::cli(args);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            QVERIFY2(r.code == 1, qPrintable(args.join(' ') + ": exit " + QString::number(r.code) + "\n" + r.err));
            QVERIFY2(r.err.contains(QStringLiteral("on the CPU would take about ")) &&
                         (r.err.contains(QStringLiteral(" h (")) || r.err.contains(QStringLiteral(" days ("))),
                     qPrintable(r.err));
            QVERIFY2(r.err.contains(QStringLiteral("--allow-long")) && r.err.contains(QStringLiteral("without --cpu")),
                     qPrintable(r.err));
            QVERIFY2(s < 60, qPrintable(QStringLiteral("refused after %1 s").arg(s)));
            qInfo("%s (%.2f s)", qPrintable(r.err.trimmed()), s);
        }
        QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("whole.png"))));

        // A small window of the same trace is a few seconds of work: it runs.
        const QString png = m_dir.filePath(QStringLiteral("window.png"));
        const cliTest::Run r = cliTest::cli({"map", path, "--layer", "0", "--head", "0", "--cpu", "--no-progress",
                                             "--rect", "0,2048,0,2048", "--size", "64", "-o", png});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(QFile::exists(png));
    }

private:
    static MatrixRM cliTestMatrix(int64_t rows, int64_t cols, uint32_t seed) {
        const std::vector<float> v = randomValues(size_t(rows * cols), seed);
        MatrixRM m(rows, cols);
        std::copy(v.begin(), v.end(), m.data());
        return m;
    }
};

QTEST_GUILESS_MAIN(TestCpuBudget)
#include "tst_cpu_budget.moc"
