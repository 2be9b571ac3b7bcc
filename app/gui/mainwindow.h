#pragma once
// The main window only wires parts together: docks and tabs, menus and shortcuts, recent files,
// drag-and-drop, settings. The views and the engine calls live in views/.
#include <QMainWindow>
#include <QPointer>
#include <QStringList>

class QAction;
class QLabel;
class QProgressDialog;
class QTabWidget;

namespace attnscope {

class AnalysisRunner;
class AttentionMapCanvas;
class ComputeService;
class HeadGrid;
class MapPanel;
class ProfilerPanel;
class ReportRunner;
class TraceSession;
class VisionView;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    /// Opens a trace (asynchronously); errors are shown, the app keeps running.
    void openTrace(const QString& path);
    void openDemo();
    /// Saves the current tab as PNG, SVG or PDF (by extension); returns an error message or "".
    QString exportCurrentView(const QString& path);
    /// Writes the report of the open trace into `dir` on a worker; emits reportFinished.
    void exportReport(const QString& dir);

    TraceSession* session() const { return m_session; }
    AnalysisRunner* analysis() const { return m_analysis; }
    AttentionMapCanvas* mapCanvas() const;
    HeadGrid* headGrid() const { return m_headGrid; }
    /// The profiler tab, or null where OpenGL is unavailable (it then explains why).
    ProfilerPanel* profiler() const { return m_profiler; }
    QTabWidget* tabs() const { return m_tabs; }
    VisionView* visionView() const { return m_vision; }
    QStringList recentFiles() const { return m_recent; }
    /// The last error shown to the user (tests).
    QString lastError() const { return m_lastError; }

signals:
    void errorShown(const QString& message);
    void reportFinished(bool ok);

protected:
    void closeEvent(QCloseEvent* e) override;
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

private:
    void buildPanels();
    void buildMenus();
    void showError(const QString& title, const QString& message);
    /// Shows a status bar message elided to the room left of the permanent widgets (0 ms: until
    /// replaced); returns the text shown.
    QString showStatus(const QString& text, int timeoutMs);
    void addRecent(const QString& path);
    void rebuildRecentMenu();
    void exportViewInteractive();
    void exportReportInteractive();
    void loadSettings();
    void saveSettings() const;

    ComputeService* m_compute;
    TraceSession* m_session;
    AnalysisRunner* m_analysis;
    ReportRunner* m_report;
    QTabWidget* m_tabs = nullptr;
    VisionView* m_vision = nullptr;
    MapPanel* m_map = nullptr;
    HeadGrid* m_headGrid = nullptr;
    ProfilerPanel* m_profiler = nullptr;
    QMenu* m_recentMenu = nullptr;
    QLabel* m_hover = nullptr;
    QLabel* m_backend = nullptr;
    QAction* m_autoAnalysis = nullptr;
    QPointer<QProgressDialog> m_reportDialog;  ///< while a report is being written
    QStringList m_recent;
    QString m_lastError;
    QString m_openingMessage;             ///< shown while a trace opens; replaced once it is open
    bool m_pickHeadWhenAnalysed = false;  ///< no head picked by the user since the trace opened
};

}  // namespace attnscope
