// TraceSession: a job still running on the pool when the session moves on to another trace keeps
// the head cache it was given alive (the cache is shared with the job, not borrowed). Under the
// ASan preset the old ownership (a raw pointer into a unique_ptr) failed here as a
// heap-use-after-free; in any build the job must finish with the first trace's data.
// The last open asked for wins, whichever file reads faster (also over a reload: the other file keeps
// a selection of its own), and a close drops an open in flight.
// Reload: a trace whose file changed on disk reads as "reopen it"; reload() opens the new file
// and keeps the selected and compared heads that still exist.
#include <QtTest>

#include <QTemporaryDir>
#include <semaphore>

#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "computeservice.h"
#include "attnscope/head_cache.h"
#include "synth_fixture.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 20000;

}  // namespace

class TestTraceSession : public QObject {
    Q_OBJECT
private slots:
    void jobOutlivesTraceSwitch();
    void theLastOpenWins();
    void reloadAfterTheFileChanged();
    void reloadThatFailsKeepsTheTrace();
};

void TestTraceSession::jobOutlivesTraceSwitch() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    auto first = testing::openSynthTrace(dir.filePath(QStringLiteral("a.attn.safetensors")), 96, 1, 32);
    QVERIFY2(first.ok(), first.message().c_str());
    auto second = testing::openSynthTrace(dir.filePath(QStringLiteral("b.attn.safetensors")), 64, 1, 48);
    QVERIFY2(second.ok(), second.message().c_str());
    ComputeService compute;
    TraceSession session(&compute);
    session.setTrace(*first);
    QList<qint64> finished;
    std::binary_semaphore go(0);
    std::shared_ptr<HeadCache> cache = session.cache();
    QVERIFY(cache);
    compute.submitCpu(
        QStringLiteral("test"),
        [cache, &go](const CancelToken&) -> Result<qint64> {
            go.acquire();  // runs only after the session has switched traces
            auto head = cache->head(0, 0);
            if (!head) return head.status();
            return qint64((*head)->q.rows() * 1000 + (*head)->q.cols());
        },
        &session, [&](Result<qint64> r) { finished << (r ? *r : qint64(-1)); });
    cache.reset();  // the job holds the only other reference besides the session
    session.setTrace(*second);
    QVERIFY(session.cache());
    go.release();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QCOMPARE(finished.at(0), qint64(96 * 1000 + 32));  // the first trace's head
    auto now = session.cache()->head(0, 0);
    QVERIFY(now.ok());
    QCOMPARE((*now)->q.rows(), Eigen::Index(64));
}

void TestTraceSession::theLastOpenWins() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    // The first file reads much slower than the second: before, its open landed last and won.
    const QString slow = dir.filePath(QStringLiteral("slow.attn.safetensors"));
    const QString fast = dir.filePath(QStringLiteral("fast.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(slow, 4096, 4, 64).ok());
    QVERIFY(testing::writeSynthTrace(fast, 64, 1, 64).ok());
    ComputeService compute;
    TraceSession session(&compute);
    QSignalSpy opened(&session, &TraceSession::traceOpened);
    QSignalSpy failed(&session, &TraceSession::openFailed);
    session.open(slow);
    session.open(fast);
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
    QCoreApplication::processEvents();  // deliveries are queued calls
    QCOMPARE(opened.count(), 1);
    QCOMPARE(failed.count(), 0);  // the overtaken open is not an error
    QCOMPARE(session.path(), QFileInfo(fast).absoluteFilePath());
    QCOMPARE(session.trace()->tokens(), int64_t(64));

    // A reload overtaken by the open of another file: that file keeps a selection of its own.
    session.select({0, 1});
    session.setCompared({{0, 1}});
    session.reload();
    session.open(slow);
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 2, kTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
    QCoreApplication::processEvents();
    QCOMPARE(opened.count(), 2);  // the reload was dropped
    QCOMPARE(session.path(), QFileInfo(slow).absoluteFilePath());
    QCOMPARE(session.current(), HeadId{});
    QVERIFY(session.compared().isEmpty());

    // Closed while another file is still opening: that file does not appear afterwards.
    session.open(fast);
    session.close();
    QVERIFY(!session.isOpen());
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
    QCoreApplication::processEvents();
    QCOMPARE(opened.count(), 2);
    QCOMPARE(failed.count(), 0);
    QVERIFY(!session.isOpen());
}

void TestTraceSession::reloadAfterTheFileChanged() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("r.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(path, 80, 3, 32).ok());
    ComputeService compute;
    TraceSession session(&compute);
    QSignalSpy opened(&session, &TraceSession::traceOpened);
    session.open(path);
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 1, kTimeoutMs);
    const int heads = session.trace()->config(0).heads;
    QVERIFY(heads >= 2);
    session.select({2, 1});
    session.setCompared({{0, 0}, {2, 1}});
    const std::shared_ptr<const Trace> before = session.trace();

    // A re-capture written over the file in place: longer sequence, one layer fewer.
    const QString scratch = dir.filePath(QStringLiteral("new.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(scratch, 120, 2, 32).ok());
    {
        QFile from(scratch), to(path);
        QVERIFY(from.open(QIODevice::ReadOnly) && to.open(QIODevice::ReadWrite));
        const QByteArray bytes = from.readAll();
        QCOMPARE(to.write(bytes), bytes.size());  // same inode: the mapping sees the change
        QVERIFY(to.resize(bytes.size()));
    }
    auto stale = before->head(0, 0, Which::Q);
    QVERIFY2(!stale.ok(), "a read of the changed file must fail, not return other data");
    QVERIFY2(QString::fromStdString(stale.message()).contains(QStringLiteral("reopen")), stale.message().c_str());

    session.reload();
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 2, kTimeoutMs);
    QVERIFY(session.trace() != before);
    QCOMPARE(session.trace()->tokens(), int64_t(120));
    // Layer 2 is gone: the selection falls back to the first head, the comparison keeps (0,0).
    QCOMPARE(session.current(), (HeadId{0, 0}));
    QCOMPARE(session.compared(), (QList<HeadId>{{0, 0}}));
    auto fresh = session.trace()->head(1, 1, Which::Q);
    QVERIFY2(fresh.ok(), fresh.message().c_str());

    // Reloading again keeps a selection that still exists.
    session.select({1, 1});
    session.reload();
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 3, kTimeoutMs);
    QCOMPARE(session.current(), (HeadId{1, 1}));
}

void TestTraceSession::reloadThatFailsKeepsTheTrace() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("gone.attn.safetensors"));
    auto written = testing::writeSynthTrace(path, 64, 1, 32);
    QVERIFY2(written.ok(), written.message().c_str());
    ComputeService compute;
    TraceSession session(&compute);
    QSignalSpy opened(&session, &TraceSession::traceOpened), failed(&session, &TraceSession::openFailed);
    session.open(path);
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 1, kTimeoutMs);
    session.select({0, 1});
    const std::shared_ptr<const Trace> before = session.trace();
    QVERIFY(QFile::remove(path));
    session.reload();
    QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, kTimeoutMs);
    QVERIFY2(failed.at(0).at(1).toString().contains(path), qPrintable(failed.at(0).at(1).toString()));
    QCOMPARE(session.trace(), before);  // still open, still readable (the mapping holds it)
    QCOMPARE(session.current(), (HeadId{0, 1}));
    QVERIFY(session.trace()->head(0, 0, Which::Q).ok());
    QCOMPARE(opened.count(), 1);
}

QTEST_MAIN(TestTraceSession)
#include "tst_tracesession.moc"
