#pragma once
// Runs the analysis engine (analyzeTrace) on the ComputeService with progress and cancellation,
// keeps the latest result, and feeds the detected sinks back to the session for the map overlays
// and "exclude sinks".
#include <QObject>

#include <memory>

#include "attnscope/analysis.h"

namespace attnscope {

class TraceSession;
struct HeadId;

class AnalysisRunner : public QObject {
    Q_OBJECT
public:
    explicit AnalysisRunner(TraceSession* session, QObject* parent = nullptr);

    /// Starts analysing every layer (replacing a run in progress).
    void run();
    void cancel();
    bool isRunning() const { return m_running; }
    const std::shared_ptr<const ModelAnalysis>& result() const { return m_result; }
    /// The analysed head, or nullptr when the analysis has not covered it.
    const HeadAnalysis* head(int layer, int head) const;
    const HeadSimilarity* similarity(int layer) const;

signals:
    void progressChanged(double fraction, const QString& stage);
    void analysisStarted();
    void analysisFinished();
    void analysisFailed(const QString& message);

private:
    TraceSession* m_session;
    std::shared_ptr<const ModelAnalysis> m_result;
    bool m_running = false;
};

}  // namespace attnscope

Q_DECLARE_METATYPE(std::shared_ptr<const attnscope::ModelAnalysis>)
