#pragma once
// The profiler panel: pick variants and the shape source (the current trace's layer/head
// or a synthetic B,H,T,D), run on a worker thread with progress, then read the results table, the
// median-time bar chart and the kernel timeline. Without a GPU the results are labelled CPU and
// the panel says why.
#include <QWidget>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "attnscope/profiler.h"
#include "attnscope/trace.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QTableWidget;

namespace attnscope {

class ComputeService;
class FigureWidget;
class KernelTimelineCanvas;

class ProfilerPanel : public QWidget {
    Q_OBJECT
public:
    /// `trace` may be null (synthetic shapes only).
    explicit ProfilerPanel(std::shared_ptr<const Trace> trace = {}, QWidget* parent = nullptr);
    ~ProfilerPanel() override;

    /// Follows the main window's current trace (null: synthetic only).
    void setTrace(std::shared_ptr<const Trace> trace);
    /// Profiles this head of the trace (the main window's current head).
    void setHead(int layer, int head);
    /// The request the controls describe (tests, the CLI-equivalent line).
    ProfileRequest request() const;
    /// The last finished report.
    const std::optional<ProfileReport>& report() const { return m_report; }
    bool isRunning() const;

    /// Where runs execute: a ProfileRunner hands them to a ComputeService's GPU worker, the one
    /// thread that owns the CUDA context and the CUPTI session (the main window's service; a
    /// panel with no runner at its first run makes a service of its own). A runner must call
    /// deliver() on the GUI thread with the work's result.
    using Work = std::function<Result<ProfileReport>()>;
    using Runner = std::function<void(Work work)>;
    void setRunner(Runner runner) { m_runner = std::move(runner); }
    void deliver(Result<ProfileReport> result);

    // Controls, for tests and the main window's shortcuts.
    void setVariants(const QStringList& tokens);
    void setSyntheticShape(int batch, int heads, int tokens, int headDim);
    void setBackendChoice(BackendChoice choice);
    void setMaxSamples(int samples);

public slots:
    void run();
    void cancel();

signals:
    void profileFinished();
    void profilingFailed(const QString& message);
    /// The variant editor's program parsed: its expr: token (for the map's mask overlay).
    void variantProgramChanged(const QString& token);

private:
    void buildUi();
    void showResult(Result<ProfileReport> result);
    void clearResults();
    void fillTable(const ShapeProfile& shape, const std::string& backend);
    void updateSourceControls();
    /// (Re)lists the programs saved in the user's settings after the built-in variants, by name.
    void refreshSavedVariants();
    void exportReport(const QString& format);
    void onProgress(double fraction, const QString& stage);

    std::shared_ptr<const Trace> m_trace;
    std::optional<ProfileReport> m_report;
    std::unique_ptr<ComputeService> m_ownCompute;  ///< only for a panel without a runner
    Runner m_runner;
    bool m_runnerBusy = false;
    std::shared_ptr<std::atomic<bool>> m_cancel;

    QRadioButton* m_fromTrace = nullptr;
    QRadioButton* m_synthetic = nullptr;
    QSpinBox* m_layer = nullptr;
    QSpinBox* m_head = nullptr;
    QSpinBox* m_batch = nullptr;
    QSpinBox* m_heads = nullptr;
    QSpinBox* m_tokens = nullptr;
    QSpinBox* m_headDim = nullptr;
    QComboBox* m_dtype = nullptr;
    QListWidget* m_variantList = nullptr;
    QLineEdit* m_extraVariants = nullptr;
    QComboBox* m_backend = nullptr;
    QCheckBox* m_cold = nullptr;
    QCheckBox* m_metrics = nullptr;
    QSpinBox* m_maxSamples = nullptr;
    QPushButton* m_runButton = nullptr;
    QPushButton* m_cancelButton = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_status = nullptr;
    QLabel* m_backendLabel = nullptr;
    QTableWidget* m_table = nullptr;
    FigureWidget* m_chart = nullptr;
    KernelTimelineCanvas* m_timeline = nullptr;
    QList<QPushButton*> m_exportButtons;
};

}  // namespace attnscope
