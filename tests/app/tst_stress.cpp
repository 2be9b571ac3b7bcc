// The main window under a storm of requests (offscreen), the threaded paths the other GUI tests
// take one step at a time: rapid zoom and pan with the map's jobs still running, switching heads
// and traces before anything finishes, closing a trace while its jobs (maps, thumbnails, the
// analysis, a report) run, and cancelling reports one after another. After each storm the window
// must settle on what was asked last: the last head's map, the last trace, a report that
// completes. Run under ThreadSanitizer by `scripts/test-sanitizers tsan` (docs/reliability.md).
#include <QtTest>

#include <QProgressDialog>
#include <QPushButton>
#include <QStandardPaths>
#include <QTemporaryDir>

#include <random>

#include "analysisrunner.h"
#include "attentionmapcanvas.h"
#include "attnscope/synth.h"
#include "brute_attention.h"
#include "headgrid.h"
#include "mainwindow.h"
#include "synth_fixture.h"
#include "tracesession.h"

using namespace attnscope;

namespace {
// Longer than the overview's 1024 cells, so zooming in asks for detail tiles.
constexpr int64_t kTokens = 1280;
constexpr int64_t kOtherTokens = 384;
constexpr int kLayers = 2;
constexpr int kHeads = 8;  // SynthOptions' default planted heads
constexpr int kStormSteps = 60;
constexpr int kReportCancels = 4;
// Generous: the storm runs under ThreadSanitizer too (5-15x slower).
constexpr int kTimeoutMs = 240000;

/// The map on screen is the selected head's, of the open trace, and nothing is pending.
bool settledOn(MainWindow& w, HeadId head) {
    AttentionMapCanvas* map = w.mapCanvas();
    const MapResult* shown = map->shownMap();
    return map->isUpToDate() && shown && shown->request.layer == head.layer && shown->request.head == head.head &&
           map->head() == head;
}
}  // namespace

class TestStress : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void rapidZoomPanAndHeadSwitching();
    void switchTracesBeforeTheyOpen();
    void closeTraceWhileJobsRun();
    void cancelReportsOneAfterAnother();
    void cleanupTestCase();

private:
    /// Opens `path` (unless `alreadyAsked`) and waits until it is open, analysed and its map shown.
    void openAndSettle(const QString& path, bool alreadyAsked = false);

    QTemporaryDir m_dir;
    QString m_trace, m_other;
    std::unique_ptr<MainWindow> m_window;
    uint64_t m_seed = testing::freshSeed();
    std::mt19937_64 m_rng{m_seed};
};

void TestStress::initTestCase() {
    qInfo("seed %llu (ATTNSCOPE_TEST_SEED=%llu replays it)", qulonglong(m_seed), qulonglong(m_seed));
    testing::isolateGuiTest("tst_stress");
    QVERIFY(m_dir.isValid());
    m_trace = m_dir.filePath(QStringLiteral("a.attn.safetensors"));
    m_other = m_dir.filePath(QStringLiteral("b.attn.safetensors"));
    auto a = testing::writeSynthTrace(m_trace, kTokens, kLayers);
    QVERIFY2(a.ok(), a.message().c_str());
    auto b = testing::writeSynthTrace(m_other, kOtherTokens, 1);
    QVERIFY2(b.ok(), b.message().c_str());
    m_window = std::make_unique<MainWindow>();
    m_window->resize(1400, 900);
    m_window->show();
    QVERIFY(QTest::qWaitForWindowExposed(m_window.get()));
}

void TestStress::openAndSettle(const QString& path, bool alreadyAsked) {
    MainWindow& w = *m_window;
    if (!alreadyAsked) w.openTrace(path);
    QTRY_COMPARE_WITH_TIMEOUT(w.session()->path(), QFileInfo(path).absoluteFilePath(), kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(w.session()->analysis() && !w.analysis()->isRunning(), kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(settledOn(w, w.session()->current()), kTimeoutMs);
}

void TestStress::rapidZoomPanAndHeadSwitching() {
    MainWindow& w = *m_window;
    openAndSettle(m_trace);
    AttentionMapCanvas* map = w.mapCanvas();
    std::uniform_int_distribution<int> action(0, 3), layer(0, kLayers - 1), head(0, kHeads - 1);
    std::uniform_real_distribution<double> zoom(0.5, 2.5), shift(-80, 80);
    HeadId last = w.session()->current();
    for (int i = 0; i < kStormSteps; ++i) {
        switch (action(m_rng)) {
        case 0: map->zoomBy(zoom(m_rng)); break;
        case 1: {  // a drag, as the user pans
            const QPoint from(map->width() / 2, map->height() / 2);
            const QPoint to = from + QPoint(int(shift(m_rng)), int(shift(m_rng)));
            QTest::mousePress(map, Qt::LeftButton, {}, from);
            QTest::mouseMove(map, to);
            QTest::mouseRelease(map, Qt::LeftButton, {}, to);
            break;
        }
        case 2:
            last = {layer(m_rng), head(m_rng)};
            w.headGrid()->clickHead(last, false);
            break;
        default:
            map->zoomToToken(std::uniform_int_distribution<int64_t>(0, kTokens - 1)(m_rng),
                             std::uniform_int_distribution<int64_t>(0, kTokens - 1)(m_rng),
                             MapViewport::kMaxPixelsPerToken / 2);
            break;
        }
        // Some jobs finish between steps, most are overtaken by the next request.
        QCoreApplication::processEvents();
    }
    QCOMPARE(w.session()->current(), last);
    QTRY_VERIFY_WITH_TIMEOUT(settledOn(w, last), kTimeoutMs);
    // What is on screen is what a fresh request for this head and view gives.
    const QImage afterStorm = map->grab().toImage();
    const MapViewport view = map->viewport();
    map->fitAll();
    QTRY_VERIFY_WITH_TIMEOUT(map->isUpToDate(), kTimeoutMs);
    map->setViewport(view);
    QTRY_VERIFY_WITH_TIMEOUT(settledOn(w, last), kTimeoutMs);
    QCOMPARE(map->grab().toImage(), afterStorm);
}

void TestStress::switchTracesBeforeTheyOpen() {
    MainWindow& w = *m_window;
    // Each open is overtaken by the next before it finishes; the last one asked for wins.
    for (int i = 0; i < 6; ++i) {
        w.openTrace(i % 2 ? m_other : m_trace);
        QCoreApplication::processEvents();
        if (i == 3) w.session()->close();
    }
    openAndSettle(m_other, true);
    // Still the last one a while later: no earlier open lands after it.
    QTest::qWait(1000);
    QCOMPARE(w.session()->path(), QFileInfo(m_other).absoluteFilePath());
    QCOMPARE(w.session()->trace()->tokens(), kOtherTokens);
    QVERIFY(settledOn(w, w.session()->current()));
    QVERIFY(w.session()->analysis());
    QCOMPARE(int(w.session()->analysis()->heads.size()), kHeads);  // the one-layer trace's heads
}

void TestStress::closeTraceWhileJobsRun() {
    MainWindow& w = *m_window;
    openAndSettle(m_trace);
    QTemporaryDir reportDir;
    QVERIFY(reportDir.isValid());
    QSignalSpy reports(&w, &MainWindow::reportFinished);
    // Maps, thumbnails, the analysis and a report in flight, then the trace goes away.
    w.analysis()->run();
    w.mapCanvas()->zoomToToken(600, 500, MapViewport::kMaxPixelsPerToken / 2);
    w.headGrid()->clickHead({1, 5}, false);
    w.exportReport(reportDir.path());
    QCoreApplication::processEvents();
    w.session()->close();
    QVERIFY(!w.session()->isOpen());
    QVERIFY(!w.mapCanvas()->shownMap());
    // Whatever was running finishes on the workers; nothing it returns reaches the closed views.
    QTest::qWait(1000);
    QVERIFY(!w.session()->isOpen());
    QVERIFY(!w.mapCanvas()->shownMap());
    QVERIFY(!w.session()->analysis());
    // The report was of the trace as it was: it either completed or says why not, never both.
    QTRY_COMPARE_WITH_TIMEOUT(reports.count(), 1, kTimeoutMs);
    // And the window works as before.
    openAndSettle(m_trace);
    w.headGrid()->clickHead({1, 2}, false);
    QTRY_VERIFY_WITH_TIMEOUT(settledOn(w, (HeadId{1, 2})), kTimeoutMs);
}

void TestStress::cancelReportsOneAfterAnother() {
    MainWindow& w = *m_window;
    QVERIFY(w.session()->isOpen());
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QSignalSpy finished(&w, &MainWindow::reportFinished);
    for (int i = 0; i < kReportCancels; ++i) {
        w.exportReport(dir.path());
        // The newest dialog: the one of an earlier run may not be deleted yet (deleteLater).
        const auto dialogs = w.findChildren<QProgressDialog*>();
        QVERIFY(!dialogs.isEmpty());
        QProgressDialog* dialog = dialogs.last();
        auto* cancel = dialog->findChild<QPushButton*>();
        QVERIFY(cancel);
        if (i % 2) QCoreApplication::processEvents();  // let it start on the pool first
        cancel->click();
        QCOMPARE(finished.count(), i + 1);
        QCOMPARE(finished.last().first().toBool(), false);
    }
    // The next report is not disturbed by the cancelled ones still winding down on the pool.
    w.exportReport(dir.path());
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), kReportCancels + 1, kTimeoutMs);
    QCOMPARE(finished.last().first().toBool(), true);
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("report.html"))));
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("report.json"))));
    QTRY_VERIFY_WITH_TIMEOUT(w.findChild<QProgressDialog*>() == nullptr, kTimeoutMs);
    QTest::qWait(200);
    QCOMPARE(finished.count(), kReportCancels + 1);  // no late result from a cancelled one
}

void TestStress::cleanupTestCase() {
    m_window.reset();
    QSettings().clear();
}

QTEST_MAIN(TestStress)
#include "tst_stress.moc"
