#pragma once
// Runs the analysis engine (analyzeTrace) as background work on the ComputeService (on the GPU
// when there is one) with progress and cancellation, by itself when a trace opens unless turned
// off. Layers show as they finish; the finished result feeds the detected sinks back to the session
// for the map overlays and "exclude sinks".
#include <QObject>

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "attnscope/analysis.h"

namespace attnscope {

class TraceSession;
struct HeadId;

/// One analysed layer, as analyzeTrace announced it (AnalyzeOptions::onLayer).
struct LayerAnalysis {
    int layer = 0;
    std::vector<HeadAnalysis> heads;
    std::optional<HeadSimilarity> similarity;
};

/// The head worth opening on: the strongest sink or induction head (sink score α₀ or induction
/// score, whichever is larger), else the first head.
HeadId mostInterestingHead(const ModelAnalysis& model);

class AnalysisRunner : public QObject {
    Q_OBJECT
public:
    explicit AnalysisRunner(TraceSession* session, QObject* parent = nullptr);

    /// Starts analysing every layer (replacing a run in progress).
    void run();
    void cancel();
    bool isRunning() const { return m_running; }
    /// Whether a trace is analysed as soon as it opens (on by default).
    bool autoRun() const { return m_autoRun; }
    void setAutoRun(bool on) { m_autoRun = on; }

    const std::shared_ptr<const ModelAnalysis>& result() const { return m_result; }
    /// The analysed head (from the finished result, or a layer finished so far), or nullptr.
    const HeadAnalysis* head(int layer, int head) const;
    const HeadSimilarity* similarity(int layer) const;
    /// Layers analysed so far in the current run (all of them once it finished), and in all.
    int layersDone() const;
    int layersTotal() const { return m_layersTotal; }
    /// The last progress report of the current run.
    double progress() const { return m_progress; }
    QString stage() const { return m_stage; }

signals:
    void progressChanged(double fraction, const QString& stage);
    void analysisStarted();
    /// A layer is analysed; head() and similarity() answer for it from now on.
    void layerFinished(int layer);
    void analysisFinished();
    void analysisFailed(const QString& message);
    void analysisCancelled();

private:
    void reset();

    TraceSession* m_session;
    std::shared_ptr<const ModelAnalysis> m_result;
    /// Layers of the run in progress, by layer (dropped when the result arrives).
    std::map<int, std::shared_ptr<const LayerAnalysis>> m_layers;
    quint64 m_job = 0;  ///< the run in progress; layers of older runs are dropped
    bool m_running = false;
    bool m_autoRun = true;
    int m_layersTotal = 0;
    double m_progress = 0;
    QString m_stage;
};

}  // namespace attnscope
