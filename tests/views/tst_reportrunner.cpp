// ReportRunner: the report of the open trace written on the ComputeService's pool, answered to the
// runner alone: written (with progress), failed (naming the folder), cancelled (at once, and
// nothing more for that run) and replaced by a newer run (only the newer one answers).
#include <QtTest>

#include <QFile>
#include <QTemporaryDir>

#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "computeservice.h"
#include "reportrunner.h"
#include "synth_fixture.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 120000;
constexpr int kQuietMs = 200;
}  // namespace

class TestReportRunner : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void writesTheReport();
    void failureNamesTheFolder();
    void cancelAnswersOnce();
    void newerRunReplacesOlder();

private:
    /// Waits until the service is idle, then a little longer for answers that should not come.
    void settle(ComputeService& compute) {
        QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
        QTest::qWait(kQuietMs);
    }

    QTemporaryDir m_dir;
    std::shared_ptr<const Trace> m_trace;
};

void TestReportRunner::initTestCase() {
    QVERIFY(m_dir.isValid());
    auto t = testing::openSynthTrace(m_dir.filePath(QStringLiteral("small.attn.safetensors")), 96, 1, 32);
    QVERIFY2(t.ok(), t.message().c_str());
    m_trace = *t;
}

void TestReportRunner::writesTheReport() {
    ComputeService compute;
    TraceSession session(&compute);
    session.setTrace(m_trace);
    ReportRunner runner(&session);
    QSignalSpy written(&runner, &ReportRunner::reportWritten), failed(&runner, &ReportRunner::reportFailed),
        cancelled(&runner, &ReportRunner::reportCancelled), progress(&runner, &ReportRunner::progressChanged);
    const QString out = m_dir.filePath(QStringLiteral("report"));
    runner.run(out);
    QVERIFY(runner.isRunning());
    QTRY_COMPARE_WITH_TIMEOUT(written.count(), 1, kTimeoutMs);
    settle(compute);
    QVERIFY(!runner.isRunning());
    QCOMPARE(written.count(), 1);
    QCOMPARE(failed.count() + cancelled.count(), 0);
    QCOMPARE(written.first().at(0).toString(), out);
    QVERIFY(written.first().at(1).toInt() >= 2);
    QVERIFY(QFile::exists(out + QStringLiteral("/report.html")));
    QVERIFY(QFile::exists(out + QStringLiteral("/report.json")));
    QVERIFY(!progress.isEmpty());
    for (const auto& p : progress) QVERIFY(p.at(0).toDouble() >= 0 && p.at(0).toDouble() <= 1);
}

void TestReportRunner::failureNamesTheFolder() {
    ComputeService compute;
    TraceSession session(&compute);
    session.setTrace(m_trace);
    ReportRunner runner(&session);
    QSignalSpy written(&runner, &ReportRunner::reportWritten), failed(&runner, &ReportRunner::reportFailed);
    const QString out = m_dir.filePath(QStringLiteral("missing/deeper/report"));
    QFile blocker(m_dir.filePath(QStringLiteral("missing")));  // a file where a folder should be
    QVERIFY(blocker.open(QIODevice::WriteOnly));
    blocker.close();
    runner.run(out);
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, kTimeoutMs);
    settle(compute);
    QCOMPARE(written.count(), 0);
    QCOMPARE(failed.count(), 1);
    QVERIFY2(failed.first().at(0).toString().contains(QStringLiteral("missing")),
             qPrintable(failed.first().at(0).toString()));
    QVERIFY(!runner.isRunning());
}

void TestReportRunner::cancelAnswersOnce() {
    ComputeService compute;
    TraceSession session(&compute);
    session.setTrace(m_trace);
    ReportRunner runner(&session);
    QSignalSpy written(&runner, &ReportRunner::reportWritten), failed(&runner, &ReportRunner::reportFailed),
        cancelled(&runner, &ReportRunner::reportCancelled), progress(&runner, &ReportRunner::progressChanged);
    runner.run(m_dir.filePath(QStringLiteral("cancelled")));
    runner.cancel();
    QCOMPARE(cancelled.count(), 1);  // at once
    QVERIFY(!runner.isRunning());
    const qsizetype progressAtCancel = progress.count();
    runner.cancel();  // nothing running: nothing to say
    settle(compute);
    QCOMPARE(cancelled.count(), 1);
    QCOMPARE(written.count() + failed.count(), 0);
    QCOMPARE(progress.count(), progressAtCancel);  // the cancelled run's progress is dropped
}

void TestReportRunner::newerRunReplacesOlder() {
    ComputeService compute;
    TraceSession session(&compute);
    session.setTrace(m_trace);
    ReportRunner runner(&session);
    QSignalSpy written(&runner, &ReportRunner::reportWritten), failed(&runner, &ReportRunner::reportFailed),
        cancelled(&runner, &ReportRunner::reportCancelled);
    const QString newer = m_dir.filePath(QStringLiteral("newer"));
    runner.run(m_dir.filePath(QStringLiteral("older")));
    runner.run(newer);
    QTRY_COMPARE_WITH_TIMEOUT(written.count(), 1, kTimeoutMs);
    settle(compute);
    QCOMPARE(written.count(), 1);
    QCOMPARE(written.first().at(0).toString(), newer);
    QCOMPARE(failed.count() + cancelled.count(), 0);
}

QTEST_MAIN(TestReportRunner)
#include "tst_reportrunner.moc"
