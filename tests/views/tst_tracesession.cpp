// TraceSession: a job still running on the pool when the session moves on to another trace keeps
// the head cache it was given alive (the cache is shared with the job, not borrowed). Under the
// ASan preset the old ownership (a raw pointer into a unique_ptr) failed here as a
// heap-use-after-free; in any build the job must finish with the first trace's data.
#include <QtTest>

#include <QTemporaryDir>
#include <semaphore>

#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "computeservice.h"
#include "attnscope/head_cache.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 20000;

Result<std::shared_ptr<const Trace>> makeTrace(const QTemporaryDir& dir, const char* name, int64_t tokens,
                                               int headDim) {
    SynthOptions o;
    o.tokens = tokens;
    o.layers = 1;
    o.headDim = headDim;
    const std::string path = dir.filePath(QString::fromLatin1(name)).toStdString();
    if (auto w = writeSyntheticTrace(path, o); !w) return w.status();
    return Trace::open(path);
}
}  // namespace

class TestTraceSession : public QObject {
    Q_OBJECT
private slots:
    void jobOutlivesTraceSwitch();
};

void TestTraceSession::jobOutlivesTraceSwitch() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    auto first = makeTrace(dir, "a.attn.safetensors", 96, 32);
    QVERIFY2(first.ok(), first.message().c_str());
    auto second = makeTrace(dir, "b.attn.safetensors", 64, 48);
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

QTEST_MAIN(TestTraceSession)
#include "tst_tracesession.moc"
