#include "mainwindow.h"

#include <QAction>
#include <QGuiApplication>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QOpenGLContext>
#include <QPointer>
#include <QProgressBar>
#include <QProgressDialog>
#include <QScreen>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>
#include <QTabWidget>
#include <QTimer>

#include "analysisrunner.h"
#include "attentionmapcanvas.h"
#include "comparisonview.h"
#include "computeservice.h"
#include "demotrace.h"
#include "figure.h"
#include "figuresource.h"
#include "headgrid.h"
#include "mappanel.h"
#include "neuronview.h"
#include "profilerpanel.h"
#include "profilerunner.h"
#include "reportrunner.h"
#include "sinkspanel.h"
#include "sparsitypanel.h"
#include "visionview.h"
#include "attnscope/demo_trace.h"
#include "tokenview.h"
#include "tracepanel.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr int kMaxRecent = 8;
constexpr int kDockWidth = 380;
constexpr int kStatusMessageMs = 8000;
constexpr double kZoomStep = 2.0;
constexpr double kFirstStartScreenShare = 0.9;  ///< of the screen's available area, per side
constexpr int kStatusMargin = 16;               ///< status bar padding around the message
constexpr int kReportSteps = 1000;              ///< report progress dialog resolution
}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(QStringLiteral("attnscope"));
    setAcceptDrops(true);
    setDockOptions(AnimatedDocks | AllowTabbedDocks | AllowNestedDocks);
    m_compute = new ComputeService(this);
    m_session = new TraceSession(m_compute, this);
    m_analysis = new AnalysisRunner(m_session, this);
    m_report = new ReportRunner(m_session, this);
    buildPanels();
    buildMenus();
    loadSettings();

    connect(m_session, &TraceSession::traceOpened, this, [this](const QString& path) {
        setWindowTitle(QStringLiteral("%1 — attnscope").arg(QFileInfo(path).fileName()));
        addRecent(path);
        if (statusBar()->currentMessage() == m_openingMessage)
            showStatus(tr("Opened %1").arg(QFileInfo(path).fileName()), kStatusMessageMs);
        m_openingMessage.clear();
        m_pickHeadWhenAnalysed = true;
    });
    connect(m_session, &TraceSession::openFailed, this, [this](const QString& path, const QString& message) {
        m_openingMessage.clear();
        showError(tr("Could not open %1").arg(QFileInfo(path).fileName()), message);
    });
    // A head the user picks is kept; until then the window moves to the most interesting head once
    // the analysis knows which it is.
    connect(m_session, &TraceSession::currentChanged, this, [this](HeadId head) {
        if (head != HeadId{}) m_pickHeadWhenAnalysed = false;
    });
    // The analysis shows its progress in the head grid; the status bar only says when it ends.
    connect(m_analysis, &AnalysisRunner::analysisFinished, this, [this] {
        showStatus(tr("Analysis finished"), kStatusMessageMs);
        if (m_pickHeadWhenAnalysed && m_analysis->result())
            m_session->select(mostInterestingHead(*m_analysis->result()));
        m_pickHeadWhenAnalysed = false;
    });
    connect(m_analysis, &AnalysisRunner::analysisCancelled, this,
            [this] { showStatus(tr("Analysis cancelled"), kStatusMessageMs); });
    connect(m_analysis, &AnalysisRunner::analysisFailed, this,
            [this](const QString& message) { showError(tr("Analysis failed"), message); });
    connect(m_report, &ReportRunner::progressChanged, this, [this](double f, const QString& stage) {
        // setValue() of a modal progress dialog processes events, which may run the deferred
        // delete of a cancelled dialog: it goes last, after the only other use of the pointer.
        if (!m_reportDialog) return;
        m_reportDialog->setLabelText(stage);
        m_reportDialog->setValue(int(f * kReportSteps));
    });
    connect(m_report, &ReportRunner::reportWritten, this, [this](const QString&, int files) {
        if (m_reportDialog) m_reportDialog->deleteLater();
        showStatus(tr("Report written: %n file(s)", nullptr, files), kStatusMessageMs);
        emit reportFinished(true);
    });
    connect(m_report, &ReportRunner::reportFailed, this, [this](const QString& message) {
        if (m_reportDialog) m_reportDialog->deleteLater();
        showError(tr("Report failed"), message);
        emit reportFinished(false);
    });
    connect(m_report, &ReportRunner::reportCancelled, this, [this] {
        if (m_reportDialog) m_reportDialog->deleteLater();
        showStatus(tr("Report cancelled"), kStatusMessageMs);
        emit reportFinished(false);
    });
}

MainWindow::~MainWindow() = default;

AttentionMapCanvas* MainWindow::mapCanvas() const { return m_map->canvas(); }

void MainWindow::buildPanels() {
    m_tabs = new QTabWidget(this);
    m_tabs->setDocumentMode(true);
    m_map = new MapPanel(m_session, this);
    m_tabs->addTab(m_map, tr("&Map"));
    m_tabs->addTab(new TokenView(m_session, this), tr("&Tokens"));
    m_tabs->addTab(new NeuronView(m_session, this), tr("&Neurons"));
    m_tabs->addTab(new ComparisonView(m_session, m_analysis, this), tr("&Compare"));
    m_tabs->addTab(new SinksPanel(m_session, m_analysis, this), tr("&Sinks"));
    m_tabs->addTab(new SparsityPanel(m_session, m_analysis, this), tr("S&parsity"));
    // The Vision tab: the image with the selected query patch's attention; for vision traces only.
    m_vision = new VisionView(m_session, this);
    const int visionTab = m_tabs->addTab(m_vision, tr("&Vision"));
    m_tabs->setTabVisible(visionTab, false);
    connect(m_session, &TraceSession::traceOpened, this, [this, visionTab] {
        m_tabs->setTabVisible(visionTab, m_session->trace()->metadata().kind == TraceKind::Vision);
    });
    connect(m_session, &TraceSession::traceClosed, this,
            [this, visionTab] { m_tabs->setTabVisible(visionTab, false); });
    // The profiler's kernel timeline is a QOpenGLWidget; a window holding one cannot be drawn
    // where there is no OpenGL (the offscreen platform), so the tab then says why instead.
    if (QOpenGLContext probe; probe.create()) {
        m_profiler = new ProfilerPanel({}, this);
        new ProfileRunner(m_compute, m_profiler);  // on ComputeService's GPU worker: one thread owns CUDA and CUPTI
        m_tabs->addTab(m_profiler, tr("P&rofiler"));
        connect(m_session, &TraceSession::traceOpened, m_profiler,
                [this] { m_profiler->setTrace(m_session->trace()); });
        connect(m_session, &TraceSession::currentChanged, m_profiler,
                [this](HeadId h) { m_profiler->setHead(h.layer, h.head); });  // profile what the map shows
        connect(m_session, &TraceSession::traceClosed, m_profiler, [this] { m_profiler->setTrace({}); });
        connect(m_profiler, &ProfilerPanel::profilingFailed, this,
                [this](const QString& message) { showError(tr("Profiling failed"), message); });
        // The variant editor's program shades the map's skipped pairs as it is typed (live preview).
        connect(m_profiler, &ProfilerPanel::variantProgramChanged, this, [this](const QString& token) {
            ViewOptions o = m_session->options();
            o.variantOverlay = token;
            m_session->setOptions(o);
        });
    } else {
        auto* label = new QLabel(tr("The profiler needs OpenGL for its kernel timeline, and none is available on "
                                    "this display (platform “%1”). Use attnscope-cli profile instead.")
                                     .arg(QGuiApplication::platformName()),
                                 this);
        label->setAlignment(Qt::AlignCenter);
        label->setWordWrap(true);
        m_tabs->addTab(label, tr("P&rofiler"));
    }
    setCentralWidget(m_tabs);

    auto addDock = [this](QWidget* w, const QString& title, const QString& name, Qt::DockWidgetArea area) {
        auto* dock = new QDockWidget(title, this);
        dock->setObjectName(name);  // saveState() needs names
        dock->setWidget(w);
        addDockWidget(area, dock);
        return dock;
    };
    addDock(new TracePanel(m_session, this), tr("Trace"), QStringLiteral("traceDock"), Qt::LeftDockWidgetArea);
    m_headGrid = new HeadGrid(m_session, m_analysis, this);
    addDock(m_headGrid, tr("Heads"), QStringLiteral("headsDock"), Qt::LeftDockWidgetArea);

    m_hover = new QLabel(this);
    // Short, so messages have the room; the whole description (why there is no GPU) on hover.
    m_backend =
        new QLabel(m_compute->gpuAvailable() ? tr("GPU: %1").arg(m_compute->gpuDescription()) : tr("CPU only"), this);
    m_backend->setToolTip(tr("Compute: %1").arg(m_compute->gpuDescription()));
    statusBar()->addWidget(m_hover, 1);
    statusBar()->addPermanentWidget(m_backend);
    connect(m_map->canvas(), &AttentionMapCanvas::hovered, m_hover, &QLabel::setText);
    connect(m_map->canvas(), &AttentionMapCanvas::computeFailed, this,
            [this](const QString& message) { showStatus(tr("Map failed: %1").arg(message), kStatusMessageMs); });
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&Open…"), QKeySequence::Open, this, [this] {
        const QString path = QFileDialog::getOpenFileName(this, tr("Open trace"), {},
                                                          tr("Attention traces (*.attn.safetensors);;All files (*)"));
        if (!path.isEmpty()) openTrace(path);
    });
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    file->addAction(tr("Open &Demo Trace"), this, &MainWindow::openDemo);
    file->addSeparator();
    file->addAction(tr("&Export View…"), QKeySequence(tr("Ctrl+E")), this, &MainWindow::exportViewInteractive);
    file->addAction(tr("Export &Report…"), QKeySequence(tr("Ctrl+Shift+E")), this,
                    &MainWindow::exportReportInteractive);
    file->addSeparator();
    // A trace that changed on disk (re-captured, copied over) fails its reads with "reopen it".
    file->addAction(tr("Re&load Trace"), QKeySequence(tr("Ctrl+Shift+R")), this, [this] {
        if (!m_session->isOpen()) return;
        m_openingMessage = showStatus(tr("Reloading %1…").arg(QFileInfo(m_session->path()).fileName()), 0);
        m_session->reload();
    });
    file->addAction(tr("&Close Trace"), QKeySequence::Close, this, [this] {
        // Also drops an open still running: its "Opening …" message goes with it.
        if (!m_openingMessage.isEmpty() && statusBar()->currentMessage() == m_openingMessage)
            statusBar()->clearMessage();
        m_openingMessage.clear();
        m_session->close();
    });
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(tr("Zoom &In"), QKeySequence::ZoomIn, this, [this] { mapCanvas()->zoomBy(kZoomStep); });
    view->addAction(tr("Zoom &Out"), QKeySequence::ZoomOut, this, [this] { mapCanvas()->zoomBy(1 / kZoomStep); });
    view->addAction(tr("&Whole Sequence"), QKeySequence(tr("Ctrl+0")), this, [this] { mapCanvas()->fitAll(); });
    view->addSeparator();
    auto toggle = [this, view](const QString& text, const QKeySequence& key, bool ViewOptions::*field) {
        QAction* a = view->addAction(text);
        a->setCheckable(true);
        a->setShortcut(key);
        a->setChecked(m_session->options().*field);
        connect(a, &QAction::toggled, this, [this, field](bool on) {
            ViewOptions o = m_session->options();
            o.*field = on;
            m_session->setOptions(o);
        });
        connect(m_session, &TraceSession::optionsChanged, a, [this, a, field] {
            const QSignalBlocker block(a);
            a->setChecked(m_session->options().*field);
        });
    };
    toggle(tr("&Log Scale"), QKeySequence(tr("Ctrl+L")), &ViewOptions::logScale);
    toggle(tr("&Max Pooling"), QKeySequence(tr("Ctrl+M")), &ViewOptions::maxPooling);
    toggle(tr("E&xclude Sinks"), QKeySequence(tr("Ctrl+K")), &ViewOptions::excludeSinks);
    toggle(tr("Show Ma&sk"), {}, &ViewOptions::showCausal);
    toggle(tr("Show Sink &Columns"), {}, &ViewOptions::showSinks);
    toggle(tr("Show &Coverage Blocks"), {}, &ViewOptions::showCoverage);
    view->addSeparator();
    auto step = [this](int dLayer, int dHead) {
        if (!m_session->isOpen()) return;
        HeadId h = m_session->current();
        const int layers = m_session->trace()->numLayers();
        h.layer = std::clamp(h.layer + dLayer, 0, layers - 1);
        h.head = std::clamp(h.head + dHead, 0, m_session->trace()->config(h.layer).heads - 1);
        m_session->select(h);
    };
    view->addAction(tr("Next Head"), QKeySequence(tr("Alt+Right")), this, [step] { step(0, 1); });
    view->addAction(tr("Previous Head"), QKeySequence(tr("Alt+Left")), this, [step] { step(0, -1); });
    view->addAction(tr("Next Layer"), QKeySequence(tr("Alt+Down")), this, [step] { step(1, 0); });
    view->addAction(tr("Previous Layer"), QKeySequence(tr("Alt+Up")), this, [step] { step(-1, 0); });
    view->addSeparator();
    for (int i = 0; i < m_tabs->count(); ++i)
        view->addAction(m_tabs->tabText(i).remove(QLatin1Char('&')), QKeySequence(QStringLiteral("Ctrl+%1").arg(i + 1)),
                        this, [this, i] { m_tabs->setCurrentIndex(i); });
    view->addSeparator();
    for (QDockWidget* dock : findChildren<QDockWidget*>()) view->addAction(dock->toggleViewAction());

    QMenu* analysis = menuBar()->addMenu(tr("&Analysis"));
    analysis->addAction(tr("&Run Analysis"), QKeySequence(tr("Ctrl+R")), m_analysis, &AnalysisRunner::run);
    analysis->addAction(tr("&Cancel"), m_analysis, &AnalysisRunner::cancel);
    m_autoAnalysis = analysis->addAction(tr("Run &Automatically on Open"));
    m_autoAnalysis->setCheckable(true);
    m_autoAnalysis->setChecked(m_analysis->autoRun());
    m_autoAnalysis->setToolTip(tr("Analyse every head in the background when a trace opens"));
    connect(m_autoAnalysis, &QAction::toggled, m_analysis, &AnalysisRunner::setAutoRun);

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About attnscope"), this, [this] {
        QMessageBox::about(this, tr("About attnscope"),
                           tr("<b>attnscope</b> %1<br>Attention maps, sinks, sparsity and head roles from "
                              "captured Q/K/V traces.<br>Compute: %2")
                               .arg(QApplication::applicationVersion(), m_compute->gpuDescription()));
    });
}

void MainWindow::openTrace(const QString& pathOrDemo) {
    // "demo:vision" (and "demo") name the bundled traces, as in the CLI.
    const QString path = isDemoName(pathOrDemo.toStdString())
                             ? QString::fromStdString(findDemoTrace(pathOrDemo.toStdString()))
                             : pathOrDemo;
    if (path.isEmpty()) {
        showError(tr("No demo trace"),
                  tr("%1: not installed (set ATTNSCOPE_DEMO to a folder holding it)").arg(pathOrDemo));
        return;
    }
    if (!QFileInfo(path).isFile()) {
        showError(tr("Could not open %1").arg(path), tr("%1: no such file").arg(path));
        m_recent.removeAll(path);
        rebuildRecentMenu();
        return;
    }
    m_openingMessage = showStatus(tr("Opening %1…").arg(QFileInfo(path).fileName()), 0);  // until it opens or fails
    m_session->open(path);
}

void MainWindow::openDemo() {
    const DemoTrace demo = locateDemoTrace();
    if (demo.path.isEmpty()) {
        showError(tr("No demo trace"), demo.message);
        return;
    }
    openTrace(demo.path);
    m_openingMessage = showStatus(demo.message, 0);  // replaced by "Opened …" like the plain opening message
}

void MainWindow::showError(const QString& title, const QString& message) {
    m_lastError = message;
    showStatus(QStringLiteral("%1: %2").arg(title, message), kStatusMessageMs);
    // Non-modal: the app keeps running (and tests never block on a dialog).
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setModal(false);
    if (qEnvironmentVariableIsEmpty("ATTNSCOPE_NO_DIALOGS"))
        box->show();
    else
        box->deleteLater();
    emit errorShown(message);
}

QString MainWindow::showStatus(const QString& text, int timeoutMs) {
    // QStatusBar clips a long message at the permanent widgets; elide it instead, whole on hover.
    const int room = statusBar()->width() - m_backend->sizeHint().width() - 2 * kStatusMargin;
    const QString shown = statusBar()->fontMetrics().elidedText(text, Qt::ElideRight, std::max(room, 0));
    statusBar()->setToolTip(shown == text ? QString() : text);
    statusBar()->showMessage(shown, timeoutMs);
    return shown;
}

void MainWindow::addRecent(const QString& path) {
    const QString abs = QFileInfo(path).absoluteFilePath();
    m_recent.removeAll(abs);
    m_recent.prepend(abs);
    while (m_recent.size() > kMaxRecent) m_recent.removeLast();
    rebuildRecentMenu();
    saveSettings();
}

void MainWindow::rebuildRecentMenu() {
    m_recentMenu->clear();
    for (const QString& path : m_recent)
        m_recentMenu->addAction(QFileInfo(path).fileName(), this, [this, path] { openTrace(path); })->setToolTip(path);
    m_recentMenu->setEnabled(!m_recent.isEmpty());
}

QString MainWindow::exportCurrentView(const QString& path) {
    const auto format = figureFormatFromPath(path);
    if (!format) return tr("%1: unknown figure format; expected .png, .svg or .pdf").arg(path);
    auto* source = dynamic_cast<FigureSource*>(m_tabs->currentWidget());
    const auto figure = source ? source->currentFigure() : std::nullopt;
    if (!figure)
        return tr("The %1 view has nothing to export yet")
            .arg(m_tabs->tabText(m_tabs->currentIndex()).remove(QLatin1Char('&')));
    const Status s = saveFigure(*figure, path, *format);
    return s.ok() ? QString() : QString::fromStdString(s.message());
}

void MainWindow::exportViewInteractive() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Export view"), QStringLiteral("attnscope-figure.pdf"),
                                                      tr("PDF (*.pdf);;SVG (*.svg);;PNG (*.png)"));
    if (path.isEmpty()) return;
    if (const QString error = exportCurrentView(path); !error.isEmpty())
        showError(tr("Export failed"), error);
    else
        showStatus(tr("Saved %1").arg(path), kStatusMessageMs);
}

void MainWindow::exportReportInteractive() {
    if (!m_session->isOpen()) {
        showError(tr("Export report"), tr("Open a trace first."));
        return;
    }
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Write the report into"));
    if (!dir.isEmpty()) exportReport(dir);
}

void MainWindow::exportReport(const QString& dir) {
    // A window-modal progress dialog: the event loop keeps running (the report is written on the
    // CPU pool), and Cancel stops the run.
    if (m_reportDialog) m_reportDialog->deleteLater();
    m_reportDialog = new QProgressDialog(tr("Writing the report to %1").arg(dir), tr("Cancel"), 0, kReportSteps, this);
    m_reportDialog->setWindowTitle(tr("Export report"));
    m_reportDialog->setWindowModality(Qt::WindowModal);
    m_reportDialog->setAutoClose(false);
    m_reportDialog->setAutoReset(false);
    m_reportDialog->setMinimumDuration(0);
    connect(m_reportDialog, &QProgressDialog::canceled, m_report, &ReportRunner::cancel);
    m_report->run(dir);
}

void MainWindow::closeEvent(QCloseEvent* e) {
    saveSettings();
    e->accept();
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
    if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
    const auto urls = e->mimeData()->urls();
    for (const QUrl& url : urls) {
        if (url.isLocalFile()) {
            openTrace(url.toLocalFile());  // the first local file; a session holds one trace
            e->acceptProposedAction();
            return;
        }
    }
}

void MainWindow::loadSettings() {
    QSettings s;
    if (!restoreGeometry(s.value(QStringLiteral("window/geometry")).toByteArray())) {
        // First start: large, so the layer table and the head grid show every row.
        const QRect screenArea = screen()->availableGeometry();
        const QSize size = (QSizeF(screenArea.size()) * kFirstStartScreenShare).toSize();
        setGeometry(QStyle::alignedRect(Qt::LeftToRight, Qt::AlignCenter, size, screenArea));
    }
    m_analysis->setAutoRun(s.value(QStringLiteral("analysis/autoRun"), true).toBool());
    m_autoAnalysis->setChecked(m_analysis->autoRun());
    if (!restoreState(s.value(QStringLiteral("window/state")).toByteArray())) {
        // First start: a readable layer table and a head grid with room per head. Dock sizes
        // only take once the window is laid out, hence after the event loop starts.
        QTimer::singleShot(0, this, [this] {
            auto* traceDock = findChild<QDockWidget*>(QStringLiteral("traceDock"));
            auto* headsDock = findChild<QDockWidget*>(QStringLiteral("headsDock"));
            resizeDocks({traceDock}, {kDockWidth}, Qt::Horizontal);
            resizeDocks({traceDock, headsDock}, {2, 3}, Qt::Vertical);
        });
    }
    m_recent = s.value(QStringLiteral("recentFiles")).toStringList();
    rebuildRecentMenu();
    ViewOptions o = m_session->options();
    o.logScale = s.value(QStringLiteral("view/logScale"), o.logScale).toBool();
    o.maxPooling = s.value(QStringLiteral("view/maxPooling"), o.maxPooling).toBool();
    o.showCausal = s.value(QStringLiteral("view/showMask"), o.showCausal).toBool();
    o.showSinks = s.value(QStringLiteral("view/showSinks"), o.showSinks).toBool();
    o.showCoverage = s.value(QStringLiteral("view/showCoverage"), o.showCoverage).toBool();
    o.gamma = s.value(QStringLiteral("view/gamma"), o.gamma).toDouble();
    o.blockSize = s.value(QStringLiteral("view/blockSize"), o.blockSize).toInt();
    m_session->setOptions(o);
    m_tabs->setCurrentIndex(s.value(QStringLiteral("window/tab"), 0).toInt());
}

void MainWindow::saveSettings() const {
    QSettings s;
    s.setValue(QStringLiteral("window/geometry"), saveGeometry());
    s.setValue(QStringLiteral("window/state"), saveState());
    s.setValue(QStringLiteral("window/tab"), m_tabs->currentIndex());
    s.setValue(QStringLiteral("recentFiles"), m_recent);
    s.setValue(QStringLiteral("analysis/autoRun"), m_analysis->autoRun());
    const ViewOptions& o = m_session->options();
    s.setValue(QStringLiteral("view/logScale"), o.logScale);
    s.setValue(QStringLiteral("view/maxPooling"), o.maxPooling);
    s.setValue(QStringLiteral("view/showMask"), o.showCausal);
    s.setValue(QStringLiteral("view/showSinks"), o.showSinks);
    s.setValue(QStringLiteral("view/showCoverage"), o.showCoverage);
    s.setValue(QStringLiteral("view/gamma"), o.gamma);
    s.setValue(QStringLiteral("view/blockSize"), o.blockSize);
}

}  // namespace attnscope
