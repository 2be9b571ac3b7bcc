// GUI test of the main window (offscreen): first start, open a synthetic trace (analysed by itself
// in the background, layer by layer), select and compare heads, zoom the map to token level and
// back, run the analyses, export every figure format, bad input and the status bar.
#include <QtTest>

#include <QFile>
#include <QImage>
#include <QMimeData>
#include <QtMath>
#include <QPainter>
#include <QProgressDialog>
#include <QPushButton>
#include <QHeaderView>
#include <QListWidget>
#include <QScreen>
#include <QScrollBar>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableWidget>
#include <QSvgRenderer>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QWheelEvent>

#include "analysisrunner.h"
#include "attentionmapcanvas.h"
#include "computeservice.h"
#include "attnscope/synth.h"
#include "comparisonview.h"
#include "figure.h"
#include "figuresource.h"
#include "figurewidget.h"
#include "headgrid.h"
#include "mainwindow.h"
#include "neuronview.h"
#include "profilerpanel.h"
#include "sinkspanel.h"
#include "sparsitypanel.h"
#include "synth_fixture.h"
#include "tokenview.h"
#include "trace_fixture.h"
#include "tracepanel.h"
#include "tracesession.h"
#include "visionview.h"

using namespace attnscope;

namespace {
// Longer than the overview's 1024 cells, so token level needs finer tiles than the overview.
constexpr int64_t kTokens = 1280;
constexpr int kLayers = 2;
constexpr int kHeads = 8;  // SynthOptions' default planted heads
constexpr int kTimeoutMs = 60000;
constexpr double kPngDpi = 150;  // FigureSaveOptions' default
enum Tab { MapTab, TokensTab, NeuronsTab, CompareTab, SinksTab, SparsityTab };

bool nonUniform(const QImage& image) {
    const QRgb first = image.pixel(0, 0);
    for (int y = 0; y < image.height(); y += 3)
        for (int x = 0; x < image.width(); x += 3)
            if (image.pixel(x, y) != first) return true;
    return false;
}
}  // namespace

class TestMainWindow : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void firstStartOpensLarge();
    void analysisRunsOnOpen();
    void cancelAnalysis();
    void compareBeforeASelection();
    void neuronViewHasAxes();
    void openAndSelectHeads();
    void badTraceKeepsRunning();
    void closeWhileOpening();
    void zoomToTokenLevelAndBack();
    void runAnalyses();
    void runCpuProfile();
    void exportReportWithProgress();
    void cancelReport();
    void exportEachFormat_data();
    void exportEachFormat();
    void learnedSinksAndCaptureCheck();
    void dropOpensTrace();
    void settingsPersist();
    void cleanupTestCase();

    void visionTabForVisionTracesOnly();

private:
    QTemporaryDir m_dir;
    QString m_trace;
    std::unique_ptr<MainWindow> m_window;
};

void TestMainWindow::initTestCase() {
    testing::isolateGuiTest("tst_mainwindow");
    QVERIFY(m_dir.isValid());
    m_trace = m_dir.filePath(QStringLiteral("synthetic.attn.safetensors"));
    auto truth = testing::writeSynthTrace(m_trace, kTokens, kLayers);
    QVERIFY2(truth.ok(), truth.message().c_str());
    m_window = std::make_unique<MainWindow>();
    m_window->resize(1400, 900);
    m_window->show();
}

void TestMainWindow::firstStartOpensLarge() {
    QSettings().clear();
    MainWindow fresh;
    fresh.show();
    QVERIFY(QTest::qWaitForWindowExposed(&fresh));
    const QRect screen = fresh.screen()->availableGeometry();
    constexpr double kLarge = 0.8;  // of the screen, per side
    QVERIFY2(fresh.width() >= kLarge * screen.width() && fresh.height() >= kLarge * screen.height() &&
                 screen.contains(fresh.frameGeometry()),
             qPrintable(QStringLiteral("%1×%2 on a %3×%4 screen")
                            .arg(fresh.width())
                            .arg(fresh.height())
                            .arg(screen.width())
                            .arg(screen.height())));
}

void TestMainWindow::analysisRunsOnOpen() {
    MainWindow& w = *m_window;
    QCOMPARE(w.headGrid()->metric(), HeadMetric::RoleScore);  // the grid opens on the head roles
    QSignalSpy finished(w.analysis(), &AnalysisRunner::analysisFinished);
    // Layers arrive one by one, each answerable before the whole model is done.
    QList<int> layers;
    bool answeredEarly = true;
    QObject scope;  // the connection ends with this function
    connect(w.analysis(), &AnalysisRunner::layerFinished, &scope, [&](int layer) {
        layers << layer;
        answeredEarly = answeredEarly && !w.analysis()->result() && w.analysis()->head(layer, 0) &&
                        headMetric(*w.analysis(), {layer, 0}, HeadMetric::RoleScore, 0.9, 128).has_value();
    });
    w.openTrace(m_trace);
    QTRY_VERIFY_WITH_TIMEOUT(w.session()->isOpen(), kTimeoutMs);
    QVERIFY(!w.statusBar()->currentMessage().contains(QStringLiteral("Opening")));  // replaced once open
    QVERIFY(w.analysis()->isRunning());                                             // without Ctrl+R
    QVERIFY(w.headGrid()->analysisStatus().contains(QStringLiteral("Analysing")));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QCOMPARE(layers, (QList<int>{0, 1}));
    QVERIFY(answeredEarly);
    QVERIFY(w.session()->analysis());
    QVERIFY(w.headGrid()->analysisStatus().isEmpty());  // the colours say it now
    // No head was picked: the window moves to the strongest sink or induction head.
    const HeadId best = mostInterestingHead(*w.session()->analysis());
    QVERIFY(!(best == HeadId{}));
    QCOMPARE(w.session()->current(), best);
}

void TestMainWindow::cancelAnalysis() {
    MainWindow& w = *m_window;
    QSignalSpy cancelled(w.analysis(), &AnalysisRunner::analysisCancelled);
    QSignalSpy finished(w.analysis(), &AnalysisRunner::analysisFinished);
    w.analysis()->run();
    w.analysis()->cancel();
    QCOMPARE(cancelled.count(), 1);
    QVERIFY(!w.analysis()->isRunning());
    QVERIFY(w.headGrid()->analysisStatus().contains(QStringLiteral("not run")) ||
            w.headGrid()->analysisStatus().contains(QStringLiteral("stopped")));
    QTest::qWait(500);
    QCOMPARE(finished.count(), 0);  // the cancelled run's result never arrives
    w.analysis()->run();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
}

void TestMainWindow::compareBeforeASelection() {
    MainWindow& w = *m_window;
    QVERIFY(w.session()->compared().isEmpty());
    auto* compare = qobject_cast<ComparisonView*>(w.tabs()->widget(CompareTab));
    QVERIFY(compare);
    QVERIFY(compare->canvases().empty());  // hidden, it computes nothing
    w.tabs()->setCurrentIndex(CompareTab);
    // Not a blank half: the current head beside its neighbour until the user picks heads.
    QCOMPARE(int(compare->canvases().size()), 2);
    QCOMPARE(compare->canvases()[0]->head(), w.session()->current());
    QTRY_VERIFY_WITH_TIMEOUT(compare->jsDistance() >= 0, kTimeoutMs);
    w.tabs()->setCurrentIndex(MapTab);
}

void TestMainWindow::neuronViewHasAxes() {
    MainWindow& w = *m_window;
    auto* neurons = qobject_cast<NeuronView*>(w.tabs()->widget(NeuronsTab));
    QVERIFY(neurons);
    QTRY_VERIFY_WITH_TIMEOUT(neurons->hasData(), kTimeoutMs);
    // Drawn by the figure renderer: q, k and q ⊙ k over a numbered dimension axis.
    auto* plot = neurons->findChild<FigureWidget*>();
    QVERIFY(plot);
    QTRY_VERIFY_WITH_TIMEOUT(plot->figure().has_value(), kTimeoutMs);
    QVERIFY(std::holds_alternative<NeuronFigure>(*plot->figure()));
}

void TestMainWindow::openAndSelectHeads() {
    MainWindow& w = *m_window;  // analysisRunsOnOpen opened the trace
    QVERIFY(w.session()->isOpen());
    QCOMPARE(w.session()->trace()->tokens(), kTokens);
    QVERIFY(w.recentFiles().contains(QFileInfo(m_trace).absoluteFilePath()));
    QTRY_VERIFY_WITH_TIMEOUT(w.mapCanvas()->isUpToDate(), kTimeoutMs);
    QTRY_COMPARE_WITH_TIMEOUT(w.headGrid()->thumbnailsReady(), kLayers * kHeads, kTimeoutMs);

    w.headGrid()->clickHead({1, 3}, false);
    QCOMPARE(w.session()->current(), (HeadId{1, 3}));
    QCOMPARE(w.mapCanvas()->head(), (HeadId{1, 3}));
    QTRY_VERIFY_WITH_TIMEOUT(w.mapCanvas()->isUpToDate(), kTimeoutMs);

    w.headGrid()->clickHead({0, 0}, true);
    w.headGrid()->clickHead({0, 3}, true);
    QCOMPARE(w.session()->compared().size(), 2);
    QCOMPARE(w.session()->current(), (HeadId{1, 3}));  // shift-click does not change the selection
    w.headGrid()->clickHead({0, 3}, true);             // shift-click again removes it
    QCOMPARE(w.session()->compared().size(), 1);
    w.headGrid()->clickHead({0, 3}, true);
    auto* compare = qobject_cast<ComparisonView*>(w.tabs()->widget(CompareTab));
    QVERIFY(compare);
    w.tabs()->setCurrentIndex(CompareTab);
    QCOMPARE(int(compare->canvases().size()), 2);
    QTRY_VERIFY_WITH_TIMEOUT(compare->jsDistance() >= 0, kTimeoutMs);
    QVERIFY(compare->jsDistance() <= 1.0);
}

void TestMainWindow::badTraceKeepsRunning() {
    MainWindow& w = *m_window;
    const QString bad = m_dir.filePath(QStringLiteral("bad.attn.safetensors"));
    QFile f(bad);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is not a safetensors file");
    f.close();
    QSignalSpy errors(&w, &MainWindow::errorShown);
    w.openTrace(bad);
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, kTimeoutMs);
    // It says first what the file is not, then the detail.
    QVERIFY2(w.lastError().contains(QStringLiteral("bad.attn.safetensors: not an attnscope trace (.attn.safetensors)")),
             qPrintable(w.lastError()));
    // The status bar says it too, in the room left of the permanent widgets (elided, whole on hover).
    const QString shown = w.statusBar()->currentMessage();
    QVERIFY(shown.startsWith(QStringLiteral("Could not open")));
    int permanent = 0;
    for (QWidget* child : w.statusBar()->findChildren<QWidget*>(Qt::FindDirectChildrenOnly))
        if (child->isVisible()) permanent += child->width();
    QVERIFY2(w.statusBar()->fontMetrics().horizontalAdvance(shown) <= w.statusBar()->width() - permanent,
             qPrintable(shown));
    w.openTrace(m_dir.filePath(QStringLiteral("missing.attn.safetensors")));
    QCOMPARE(errors.count(), 2);
    // The open trace is untouched and still usable.
    QVERIFY(w.session()->isOpen());
    QCOMPARE(w.session()->path(), QFileInfo(m_trace).absoluteFilePath());
}

void TestMainWindow::closeWhileOpening() {
    MainWindow& w = *m_window;
    QAction* close = nullptr;
    for (QAction* a : w.findChildren<QAction*>())
        if (a->text() == QStringLiteral("&Close Trace")) close = a;
    QVERIFY(close);
    QSignalSpy opened(w.session(), &TraceSession::traceOpened);
    w.openTrace(m_trace);
    QVERIFY(w.statusBar()->currentMessage().contains(QStringLiteral("Opening")));
    close->trigger();  // before the open finishes: it is dropped, and its message with it
    QVERIFY(!w.session()->isOpen());
    QVERIFY(!w.statusBar()->currentMessage().contains(QStringLiteral("Opening")));
    QTRY_COMPARE_WITH_TIMEOUT(w.session()->compute()->pendingJobs(), 0, kTimeoutMs);
    QCoreApplication::processEvents();
    QCOMPARE(opened.count(), 0);
    QVERIFY(!w.session()->isOpen());
    // The trace opens again for the tests after this one.
    w.openTrace(m_trace);
    QTRY_VERIFY_WITH_TIMEOUT(w.session()->isOpen() && w.session()->analysis(), kTimeoutMs);
}

void TestMainWindow::zoomToTokenLevelAndBack() {
    MainWindow& w = *m_window;
    w.tabs()->setCurrentIndex(MapTab);
    AttentionMapCanvas* map = w.mapCanvas();
    QTRY_VERIFY_WITH_TIMEOUT(map->isUpToDate(), kTimeoutMs);
    QVERIFY(map->viewport().isOverview());

    // One wheel notch zooms in about the cursor.
    const double before = map->viewport().tokensPerPixel;
    const QPointF at(map->width() / 2.0, map->height() / 2.0);
    QWheelEvent wheel(at, map->mapToGlobal(at), {}, {0, 120}, Qt::NoButton, Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(map, &wheel);
    QVERIFY(map->viewport().tokensPerPixel < before);

    const int tilesBefore = map->tilesReceived();
    map->zoomToToken(200, 190, MapViewport::kMaxPixelsPerToken / 2);
    QVERIFY(!map->isUpToDate());  // the overview (2 tokens per cell) stays on screen meanwhile
    QTRY_VERIFY_WITH_TIMEOUT(map->isUpToDate(), kTimeoutMs);
    QVERIFY(map->tilesReceived() > tilesBefore);
    const MapResult* shown = map->shownMap();
    QVERIFY(shown);
    const MapRect r = shown->map.rect;
    QVERIFY(r.q0 <= 200 && 200 < r.q1 && r.k0 <= 190 && 190 < r.k1);
    QVERIFY(r.k1 - r.k0 < 64);
    QCOMPARE(int64_t(shown->map.width), r.k1 - r.k0);  // one cell per token
    QCOMPARE(int64_t(shown->map.height), r.q1 - r.q0);

    // Hover shows the query, the key and the probability.
    const QPointF centre(map->width() / 2.0, map->height() / 2.0);
    QTest::mouseMove(map, centre.toPoint());
    QTRY_VERIFY(map->hoverText().contains(QStringLiteral("query")));
    QVERIFY(map->hoverText().contains(QStringLiteral("key")));
    QVERIFY(!map->hoverText().contains(QStringLiteral("…")));

    // Drag pans; click inspects a query.
    const MapViewport v0 = map->viewport();
    QTest::mousePress(map, Qt::LeftButton, {}, centre.toPoint());
    QTest::mouseMove(map, (centre + QPointF(60, 40)).toPoint());
    QTest::mouseRelease(map, Qt::LeftButton, {}, (centre + QPointF(60, 40)).toPoint());
    QVERIFY(map->viewport().keyOrigin < v0.keyOrigin);
    QTest::mouseClick(map, Qt::LeftButton, {}, centre.toPoint());
    QVERIFY(w.session()->inspectedQuery() >= 0);

    map->fitAll();
    QVERIFY(map->viewport().isOverview());
    QTRY_VERIFY_WITH_TIMEOUT(map->isUpToDate(), kTimeoutMs);

    // A variant-mask overlay shades what the variant skips (far-from-diagonal pairs here).
    const QImage plain = map->grab().toImage();
    ViewOptions o = w.session()->options();
    o.variantOverlay = QStringLiteral("sliding:64");
    w.session()->setOptions(o);
    const QImage shaded = map->grab().toImage();
    QVERIFY(plain != shaded);
    o.variantOverlay.clear();
    w.session()->setOptions(o);
    QCOMPARE(map->grab().toImage(), plain);
}

void TestMainWindow::runAnalyses() {
    MainWindow& w = *m_window;
    QSignalSpy finished(w.analysis(), &AnalysisRunner::analysisFinished);
    w.analysis()->run();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QVERIFY(w.session()->analysis());
    auto* sinks = qobject_cast<SinksPanel*>(w.tabs()->widget(SinksTab));
    auto* sparsity = qobject_cast<SparsityPanel*>(w.tabs()->widget(SparsityTab));
    QCOMPARE(sinks->rows(), kLayers * kHeads);
    QCOMPARE(sparsity->rows(), kLayers * kHeads);
    // The planted first-token sink head (head 0) has key 0 as a sink; the noise heads have none.
    const auto planted = w.session()->sinkKeys({0, 0});
    QVERIFY(!planted.empty() && planted.front() == 0);
    QVERIFY(w.session()->sinkKeys({0, 6}).empty());
    // Every column of the Sinks and Sparsity tables shows, headers whole (no horizontal scrolling).
    for (int tab : {SinksTab, SparsityTab}) {
        w.tabs()->setCurrentIndex(tab);
        auto* table = w.tabs()->widget(tab)->findChild<QTableWidget*>();
        QVERIFY(table && table->columnCount() >= 4);
        QTRY_COMPARE_WITH_TIMEOUT(table->horizontalScrollBar()->maximum(), 0, kTimeoutMs);
        for (int c = 0; c < table->columnCount(); ++c) {
            if (table->isColumnHidden(c)) continue;  // the learned-sink column, for traces with them only
            for (const QString& line : table->horizontalHeaderItem(c)->text().split(QLatin1Char('\n')))
                QVERIFY2(table->horizontalHeader()->fontMetrics().horizontalAdvance(line) <= table->columnWidth(c),
                         qPrintable(line));
            QVERIFY2(static_cast<QAbstractItemView*>(table)->sizeHintForColumn(c) <=
                         table->columnWidth(c),  // no cell elided
                     qPrintable(table->horizontalHeaderItem(c)->text()));
        }
    }
    w.tabs()->setCurrentIndex(MapTab);
    // The grid colours by each metric once the analysis is there.
    for (HeadMetric m : {HeadMetric::Entropy, HeadMetric::SinkScore, HeadMetric::Density, HeadMetric::RoleScore,
                         HeadMetric::JsCluster})
        QVERIFY(headMetric(*w.analysis(), {0, 0}, m, 0.9, 128).has_value());

    // "Exclude sinks" recomputes the map of the sink head without key 0.
    w.session()->select({0, 0});
    ViewOptions o = w.session()->options();
    o.excludeSinks = true;
    w.session()->setOptions(o);
    QTRY_VERIFY_WITH_TIMEOUT(w.mapCanvas()->isUpToDate(), kTimeoutMs);
    const MapResult* shown = w.mapCanvas()->shownMap();
    QVERIFY(shown);
    QCOMPARE(shown->request.excludedKeys, planted);
    o.excludeSinks = false;
    w.session()->setOptions(o);
    QTRY_VERIFY_WITH_TIMEOUT(w.mapCanvas()->isUpToDate(), kTimeoutMs);
}

void TestMainWindow::runCpuProfile() {
    // Without OpenGL (offscreen) the window has no profiler tab; the panel still profiles when
    // it is not drawn, on the window's trace.
    std::unique_ptr<ProfilerPanel> standalone;
    ProfilerPanel* profiler = m_window->profiler();
    if (profiler) {
        m_window->tabs()->setCurrentWidget(profiler);
    } else {
        QCOMPARE(m_window->tabs()->tabText(m_window->tabs()->count() - 1).remove(QLatin1Char('&')),
                 QStringLiteral("Profiler"));
        standalone = std::make_unique<ProfilerPanel>(m_window->session()->trace());
        profiler = standalone.get();
    }
    profiler->setVariants({QStringLiteral("causal"), QStringLiteral("sliding:64")});
    profiler->setSyntheticShape(1, 2, 256, 64);
    profiler->setBackendChoice(BackendChoice::Cpu);
    profiler->setMaxSamples(3);
    QSignalSpy finished(profiler, &ProfilerPanel::profileFinished);
    profiler->run();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QVERIFY(profiler->report().has_value());
    QCOMPARE(profiler->report()->shapes.size(), size_t(1));
    QVERIFY(profiler->report()->shapes.front().variants.size() >= 2);  // both variants (and the dense baseline)
}

void TestMainWindow::exportReportWithProgress() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QSignalSpy finished(m_window.get(), &MainWindow::reportFinished);
    m_window->exportReport(dir.path());
    QVERIFY(m_window->findChild<QProgressDialog*>() != nullptr);  // the GUI progress dialog
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QCOMPARE(finished.first().first().toBool(), true);
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("report.html"))));
    QVERIFY(QFile::exists(dir.filePath(QStringLiteral("report.json"))));
    QTRY_VERIFY_WITH_TIMEOUT(m_window->findChild<QProgressDialog*>() == nullptr, kTimeoutMs);
}

void TestMainWindow::cancelReport() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    QSignalSpy finished(m_window.get(), &MainWindow::reportFinished);
    m_window->exportReport(dir.path());
    auto* dialog = m_window->findChild<QProgressDialog*>();
    QVERIFY(dialog != nullptr);
    auto* cancelButton = dialog->findChild<QPushButton*>();
    QVERIFY(cancelButton != nullptr);
    cancelButton->click();  // what the user does; QProgressDialog::cancel() alone emits nothing
    QCOMPARE(finished.count(), 1);
    QCOMPARE(finished.first().first().toBool(), false);
    // The cancelled job's result is dropped: no second reportFinished, and the dialog goes away.
    QTRY_VERIFY_WITH_TIMEOUT(m_window->findChild<QProgressDialog*>() == nullptr, kTimeoutMs);
    QTest::qWait(200);
    QCOMPARE(finished.count(), 1);
}

void TestMainWindow::exportEachFormat_data() {
    QTest::addColumn<int>("tab");
    QTest::addColumn<QString>("extension");
    const QStringList names = {QStringLiteral("map"),     QStringLiteral("tokens"), QStringLiteral("neurons"),
                               QStringLiteral("compare"), QStringLiteral("sinks"),  QStringLiteral("sparsity")};
    for (int tab = MapTab; tab <= SparsityTab; ++tab)
        for (const char* ext : {"png", "svg", "pdf"})
            QTest::addRow("%s.%s", qPrintable(names[tab]), ext) << tab << QString::fromLatin1(ext);
}

void TestMainWindow::exportEachFormat() {
    QFETCH(int, tab);
    QFETCH(QString, extension);
    MainWindow& w = *m_window;
    w.tabs()->setCurrentIndex(tab);
    auto* source = dynamic_cast<FigureSource*>(w.tabs()->currentWidget());
    QVERIFY(source);
    QTRY_VERIFY_WITH_TIMEOUT(source->currentFigure().has_value(), kTimeoutMs);
    const QString path = m_dir.filePath(QStringLiteral("view-%1.%2").arg(tab).arg(extension));
    const QString error = w.exportCurrentView(path);
    QVERIFY2(error.isEmpty(), qPrintable(error));
    QFile file(path);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const QByteArray bytes = file.readAll();
    QVERIFY(bytes.size() > 500);
    const QSizeF points = preferredFigureSize(*source->currentFigure());
    if (extension == QLatin1String("png")) {
        QImage image;
        QVERIFY(image.loadFromData(bytes, "PNG"));
        QCOMPARE(image.width(), qCeil(points.width() * kPngDpi / 72.0));
        QCOMPARE(image.height(), qCeil(points.height() * kPngDpi / 72.0));
        QVERIFY(nonUniform(image));
    } else if (extension == QLatin1String("svg")) {
        QSvgRenderer svg(bytes);
        QVERIFY(svg.isValid());
        QVERIFY(qAbs(svg.viewBoxF().width() - points.width()) < 1.0);
        QImage image(svg.defaultSize(), QImage::Format_RGB32);
        image.fill(Qt::white);
        QPainter painter(&image);
        svg.render(&painter);
        painter.end();
        QVERIFY(nonUniform(image));
    } else {
        QVERIFY(bytes.startsWith("%PDF-"));
        QVERIFY(bytes.contains("/MediaBox"));
        QVERIFY(bytes.trimmed().endsWith("%%EOF"));
    }
    // An unknown extension is refused with a clear message, nothing written.
    const QString refused = w.exportCurrentView(m_dir.filePath(QStringLiteral("view.bmp")));
    QVERIFY(refused.contains(QStringLiteral(".png")));
    QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("view.bmp"))));
}

void TestMainWindow::learnedSinksAndCaptureCheck() {
    // A v2 trace with learned sinks in layer 1, written with --allow-mismatch: the Sinks table
    // shows each such head's learned-sink share, the trace panel the failed capture check.
    MainWindow& w = *m_window;
    const QString path = m_dir.filePath(QStringLiteral("sinks.attn.safetensors"));
    TraceMetadata m = testfixture::smallMetadata(2, 4, 2, 16, 96);
    m.model = "tiny-gpt-oss";
    m.layers[1].sinks = {0.5f, -1.0f, 2.0f, 1.0f};
    m.captureCheck = {true, "mismatch", 0.6, "probabilities", 1e-4, 1, 32};
    QVERIFY(testfixture::randomTrace(m, DType::F16).write(path.toStdString()).ok());
    w.openTrace(path);
    QTRY_COMPARE_WITH_TIMEOUT(w.session()->path(), path, kTimeoutMs);
    auto* panel = w.findChild<TracePanel*>();
    QVERIFY(panel);
    auto warnings = [panel] {
        QStringList lines;
        for (auto* list : panel->findChildren<QListWidget*>())
            for (int i = 0; i < list->count(); ++i) lines << list->item(i)->text();
        return lines.join(QLatin1Char('\n'));
    };
    QTRY_VERIFY2_WITH_TIMEOUT(warnings().contains(QLatin1String("Capture check MISMATCH")), qPrintable(warnings()),
                              kTimeoutMs);
    w.analysis()->run();
    QTRY_VERIFY_WITH_TIMEOUT(w.session()->analysis() && w.session()->analysis()->heads.size() == 8, kTimeoutMs);
    auto* table = w.tabs()->widget(SinksTab)->findChild<QTableWidget*>();
    QTRY_COMPARE_WITH_TIMEOUT(table->rowCount(), 8, kTimeoutMs);
    const int learned = table->columnCount() - 1;
    QVERIFY(!table->isColumnHidden(learned));
    int shown = 0;
    for (int r = 0; r < table->rowCount(); ++r) {
        const bool sinkLayer = table->item(r, 0)->text() == QLatin1String("1");
        QTableWidgetItem* item = table->item(r, learned);
        QCOMPARE(item != nullptr, sinkLayer);
        if (!item) continue;
        const double share = item->data(Qt::DisplayRole).toDouble();
        QVERIFY2(share > 0.0 && share < 1.0, qPrintable(item->text()));
        ++shown;
    }
    QCOMPARE(shown, 4);
    w.openTrace(m_trace);  // back to the main trace
    QTRY_COMPARE_WITH_TIMEOUT(w.session()->path(), m_trace, kTimeoutMs);
    QTRY_VERIFY_WITH_TIMEOUT(table->isColumnHidden(learned), kTimeoutMs);  // no learned sinks there
}

void TestMainWindow::dropOpensTrace() {
    MainWindow& w = *m_window;
    const QString other = m_dir.filePath(QStringLiteral("dropped.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(other, 64, 1).ok());
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(other)});
    // As a drag from the file manager arrives: enter (accepted for files), then the drop.
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    QApplication::sendEvent(&w, &drop);
    QVERIFY(drop.isAccepted());
    QTRY_VERIFY2_WITH_TIMEOUT(w.session()->path() == other, qPrintable(w.lastError()), kTimeoutMs);
    QCOMPARE(w.session()->trace()->tokens(), 64);
    QCOMPARE(w.recentFiles().first(), other);
    QTRY_VERIFY_WITH_TIMEOUT(w.mapCanvas()->isUpToDate(), kTimeoutMs);
    w.openTrace(m_trace);  // back to the main trace for the settings check
    QTRY_COMPARE_WITH_TIMEOUT(w.session()->path(), m_trace, kTimeoutMs);
}

void TestMainWindow::settingsPersist() {
    m_window->close();
    QSettings s;
    QVERIFY(s.value(QStringLiteral("recentFiles")).toStringList().contains(QFileInfo(m_trace).absoluteFilePath()));
    QVERIFY(!s.value(QStringLiteral("window/state")).toByteArray().isEmpty());
    MainWindow second;
    QVERIFY(second.recentFiles().contains(QFileInfo(m_trace).absoluteFilePath()));
}

void TestMainWindow::cleanupTestCase() {
    m_window.reset();
    QSettings().clear();
}

/// The Vision tab shows for a vision trace (its view answers for the selected head) and hides
/// again for a text trace.
void TestMainWindow::visionTabForVisionTracesOnly() {
    const QString vision = m_dir.filePath(QStringLiteral("vision.attn.safetensors"));
    QVERIFY(testing::writeVisionTrace(vision, {.rows = 5, .cols = 6, .prefix = 2, .layers = 1, .headDim = 16}).ok());
    MainWindow w;
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    const int tab = w.tabs()->indexOf(w.visionView());
    QVERIFY(tab >= 0);
    QVERIFY(!w.tabs()->isTabVisible(tab));
    w.openTrace(vision);
    QTRY_VERIFY_WITH_TIMEOUT(w.session()->isOpen() && w.tabs()->isTabVisible(tab), kTimeoutMs);
    w.tabs()->setCurrentIndex(tab);
    QTRY_VERIFY_WITH_TIMEOUT(w.visionView()->isUpToDate() && w.visionView()->hasImage(), kTimeoutMs);
    w.session()->select({0, 1});
    QTRY_VERIFY_WITH_TIMEOUT(w.visionView()->isUpToDate() && w.visionView()->shown()->head == 1, kTimeoutMs);
    w.openTrace(m_trace);
    QTRY_VERIFY_WITH_TIMEOUT(
        w.session()->path().endsWith(QStringLiteral("synthetic.attn.safetensors")) && !w.tabs()->isTabVisible(tab),
        kTimeoutMs);
}

int main(int argc, char** argv) {
    // The newcomer's 1600×1000 screen rather than the offscreen platform's default 800×800.
    QTemporaryDir config;
    const QString screens = config.filePath(QStringLiteral("screens.json"));
    QFile file(screens);
    if (qgetenv("QT_QPA_PLATFORM") == "offscreen" && file.open(QIODevice::WriteOnly)) {
        file.write(
            R"({"screens": [{"name": "screen", "x": 0, "y": 0, "width": 1600, "height": 1000, "logicalDpi": 96}]})");
        file.close();
        qputenv("QT_QPA_PLATFORM", "offscreen:configfile=" + screens.toUtf8());
    }
    QApplication app(argc, argv);
    TestMainWindow test;
    QTEST_SET_MAIN_SOURCE_PATH
    return QTest::qExec(&test, argc, argv);
}
#include "tst_mainwindow.moc"
