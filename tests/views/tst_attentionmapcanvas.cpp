// AttentionMapCanvas (offscreen): what is on screen after zooming in and back out is the overview
// alone, in the overview's colour range; the detail of the deeper zoom does not stay behind. The
// header's title and state fit side by side at any width. A long trace opens with a sampled preview
// and then the exact overview, without a detail tile of the same whole view computed beside it.
#include <QtTest>

#include <QTemporaryDir>

#include "attentionmapcanvas.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "computeservice.h"
#include "synth_fixture.h"
#include "shown_view.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 60000;
// Longer than the overview's 1024 cells, so a deep zoom needs a detail tile.
constexpr int64_t kTokens = 1280;
constexpr double kZoomStep = 2.0;
constexpr int kZoomSteps = 3;  // 8×, as Ctrl++ three times
}  // namespace

class TestAttentionMapCanvas : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void zoomOutLeavesNoStaleDetail();
    void longTraceOpensWithoutDuplicateDetail();
    void headerFits_data();
    void headerFits();

private:
    QTemporaryDir m_dir;
    std::shared_ptr<const Trace> m_trace;
};

void TestAttentionMapCanvas::initTestCase() {
    QVERIFY(m_dir.isValid());
    auto t = testing::openSynthTrace(m_dir.filePath(QStringLiteral("t.attn.safetensors")), kTokens, 1);
    QVERIFY2(t.ok(), t.message().c_str());
    m_trace = *t;
}

void TestAttentionMapCanvas::zoomOutLeavesNoStaleDetail() {
    testing::ShownView<AttentionMapCanvas> shown({900, 800});
    QVERIFY(shown.showing(m_trace));
    AttentionMapCanvas& canvas = shown.view;
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    const float overviewMax = canvas.coloring().vmax;

    for (int i = 0; i < kZoomSteps; ++i) canvas.zoomBy(kZoomStep);
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    const MapResult* detail = canvas.shownMap();
    QVERIFY(detail && detail->map.rect.k1 - detail->map.rect.k0 < kTokens);  // a detail tile is shown
    QVERIFY(canvas.coloring().vmax != overviewMax);                          // in its own range

    for (int i = 0; i < kZoomSteps; ++i) canvas.zoomBy(1 / kZoomStep);
    QVERIFY(canvas.viewport().isOverview());
    QVERIFY(canvas.isUpToDate());
    QCOMPARE(canvas.coloring().vmax, overviewMax);
    const QImage zoomedOut = canvas.grab().toImage();
    canvas.fitAll();  // what Ctrl+0 shows: the overview alone
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    QCOMPARE(zoomedOut, canvas.grab().toImage());
}

void TestAttentionMapCanvas::longTraceOpensWithoutDuplicateDetail() {
    // Past kExactOverviewTokens: a sampled preview first, then the exact overview (1,024 cells).
    const int64_t tokens = 4608;
    auto t = testing::openSynthTrace(m_dir.filePath(QStringLiteral("long.attn.safetensors")), tokens, 1, 32);
    QVERIFY2(t.ok(), t.message().c_str());
    testing::ShownView<AttentionMapCanvas> shown({900, 800});  // the plot is narrower than 1,024 cells
    QVERIFY(shown.showing(*t));
    AttentionMapCanvas& canvas = shown.view;
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(shown.compute.pendingJobs(), 0, kTimeoutMs);
    QCoreApplication::processEvents();
    // The preview and the overview; a detail of the whole view (the same T×T work again, before
    // the overview arrived) used to come third.
    QCOMPARE(canvas.tilesReceived(), 2);
    const MapResult* shownMap = canvas.shownMap();
    QVERIFY(shownMap && shownMap->exact);
    QCOMPARE(shownMap->map.rect.k1 - shownMap->map.rect.k0, tokens);
    // Zoomed in past the overview's resolution, a detail tile is computed as before.
    for (int i = 0; i < kZoomSteps; ++i) canvas.zoomBy(kZoomStep);
    QTRY_VERIFY_WITH_TIMEOUT(canvas.isUpToDate(), kTimeoutMs);
    QCOMPARE(canvas.tilesReceived(), 3);
    QVERIFY(canvas.shownMap()->map.rect.k1 - canvas.shownMap()->map.rect.k0 < tokens);
}

void TestAttentionMapCanvas::headerFits_data() {
    QTest::addColumn<double>("width");
    QTest::addColumn<QString>("state");
    const QString title = QStringLiteral("L4 H0  ·  mean pooling  ·  log  ·  2 sink keys excluded  ·  window 4096");
    for (double w : {120.0, 300.0, 420.0, 900.0, 2000.0}) {
        QTest::addRow("%d px, backend", int(w)) << w << QStringLiteral("CPU");
        QTest::addRow("%d px, preview", int(w)) << w << QStringLiteral("preview (sampled rows), exact map computing…");
    }
}

void TestAttentionMapCanvas::headerFits() {
    QFETCH(double, width);
    QFETCH(QString, state);
    const QString title = QStringLiteral("L4 H0  ·  mean pooling  ·  log  ·  2 sink keys excluded  ·  window 4096");
    const QFontMetricsF fm(QApplication::font());
    const auto [shownTitle, shownState] = AttentionMapCanvas::fitHeader(title, state, fm, width);
    QVERIFY2(
        fm.horizontalAdvance(shownTitle) + AttentionMapCanvas::kHeaderGap + fm.horizontalAdvance(shownState) <= width,
        qPrintable(shownTitle + QStringLiteral(" | ") + shownState));
    if (fm.horizontalAdvance(title + state) + AttentionMapCanvas::kHeaderGap <= width) {  // room for both: unchanged
        QCOMPARE(shownTitle, title);
        QCOMPARE(shownState, state);
    }
    if (state.size() < 4 && width >= 300)
        QCOMPARE(shownState, state);  // a short state is never cut where there is room for it
}

QTEST_MAIN(TestAttentionMapCanvas)
#include "tst_attentionmapcanvas.moc"
