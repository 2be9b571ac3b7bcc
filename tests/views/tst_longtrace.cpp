// The map canvas on a T = 4,194,304-token trace without a GPU (issue 16, resource limits): the
// sampled-row preview arrives with bounded memory, the exact map (hours of CPU work) is not
// started and the header says what it would take and the ways out, zooming in computes exact
// tiles of the smaller rect, and closing the trace leaves no job running.
#include <QtTest>

#include <QTemporaryDir>

#include <unistd.h>

#include "attentionmapcanvas.h"
#include "attnscope/cpu_budget.h"
#include "attnscope/map_service.h"
#include "attnscope/trace.h"
#include "computeservice.h"
#include "shown_view.h"
#include "trace_fixture.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
constexpr int64_t kTokens = int64_t(1) << 22;  // 4,194,304
constexpr int kHeadDim = 4;
constexpr int kTimeoutMs = 120000;
constexpr double kMaxGrowthMiB = 1024;  ///< resident growth allowed while the canvas shows the trace

/// The process's resident memory now (not its peak: writing the trace peaks higher first).
double residentMiB() {
    QFile statm(QStringLiteral("/proc/self/statm"));
    if (!statm.open(QIODevice::ReadOnly)) return 0;
    const QList<QByteArray> fields = statm.readAll().split(' ');
    return fields.size() > 1 ? fields[1].toDouble() * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0) : 0;
}
}  // namespace

class TestLongTrace : public QObject {
    Q_OBJECT
private slots:
    void fourMillionTokensOnTheCpu();
};

void TestLongTrace::fourMillionTokensOnTheCpu() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("long.attn.safetensors"));
    {  // One head of random Q/K/V; tokens "t0" … without ids (a 42 MB header), 100 MB of F16.
        TraceMetadata m = testfixture::smallMetadata(1, 1, 1, kHeadDim, kTokens);
        m.tokenIds.clear();
        TraceWriter w(m);
        const size_t n = size_t(kTokens) * kHeadDim;
        uint32_t seed = 1;
        for (const char* which : {"q", "k", "v"})
            w.addTensor(std::string("layers.0.") + which, DType::F16, {1, kTokens, kHeadDim},
                        testfixture::randomValues(n, seed++));
        const Status written = w.write(path.toStdString());
        QVERIFY2(written.ok(), written.message().c_str());
    }

    testing::ShownView<AttentionMapCanvas> shown({900, 800});
    if (shown.compute.gpuAvailable())
        QSKIP("a GPU is present: the exact map runs there (this checks the CPU's budget)");
    QVERIFY(shown.exposed());
    ComputeService& compute = shown.compute;
    TraceSession& session = shown.session;
    AttentionMapCanvas& canvas = shown.view;
    const double rssBefore = residentMiB();
    QElapsedTimer clock;
    clock.start();
    session.open(path);
    QTRY_VERIFY_WITH_TIMEOUT(canvas.hasOverview(), kTimeoutMs);
    const qint64 previewMs = clock.elapsed();
    // The exact overview is refused with the estimate (the same budget the CLI applies).
    QTRY_VERIFY_WITH_TIMEOUT(!canvas.cpuLimitMessage().isEmpty(), kTimeoutMs);
    MapRequest whole;
    whole.width = whole.height = 1024;
    const CpuWorkEstimate e = estimateCpuWork(cpuMapScoreProducts(*session.trace(), whole), kHeadDim);
    QVERIFY2(e.overLimit(), e.describe().c_str());
    QVERIFY2(canvas.cpuLimitMessage().contains(QStringLiteral("zoom in")), qPrintable(canvas.cpuLimitMessage()));
    QVERIFY(!canvas.isUpToDate());
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);  // nothing left computing for hours
    const double growth = residentMiB() - rssBefore;
    qInfo("T = %lld: preview in %lld ms, exact overview refused: %s; resident growth %.0f MiB",
          static_cast<long long>(kTokens), static_cast<long long>(previewMs), qPrintable(canvas.cpuLimitMessage()),
          growth);
    QVERIFY2(growth < kMaxGrowthMiB, qPrintable(QStringLiteral("%1 MiB").arg(growth)));

    // Deep zoom near the start: a small rect is computed exactly.
    canvas.zoomToToken(3000, 2000, 1.0);
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    QVERIFY(canvas.cpuLimitMessage().isEmpty());
    QVERIFY(canvas.shownMap() && canvas.shownMap()->exact);

    // Back out: refused again; closing the trace leaves nothing running.
    canvas.fitAll();
    QTRY_VERIFY_WITH_TIMEOUT(!canvas.cpuLimitMessage().isEmpty(), kTimeoutMs);
    session.close();
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
}

QTEST_MAIN(TestLongTrace)
#include "tst_longtrace.moc"
