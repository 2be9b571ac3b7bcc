#pragma once
// The open trace and what the user has chosen in it: the selected head, the comparison set and the
// view options. Every panel reads from here and listens to its signals; nothing here computes on
// the GUI thread (opening and analyses run on the ComputeService).
#include <QList>
#include <QObject>
#include <QPair>
#include <QString>

#include <memory>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/trace.h"
#include "attnscope/head_cache.h"

namespace attnscope {

class ComputeService;

struct HeadId {
    int layer = 0, head = 0;
    bool operator==(const HeadId&) const = default;
};

/// Options shared by the map views.
struct ViewOptions {
    bool maxPooling = false;  ///< pooled max instead of mean
    bool logScale = true;
    bool excludeSinks = false;  ///< mask out the detected sink keys and renormalize
    bool showCausal = true;     ///< shade the masked (never attended) region
    bool showSinks = true;      ///< mark sink columns
    bool showCoverage = false;  ///< outline blocks outside the gamma-coverage set
    double gamma = 0.9;
    int blockSize = 128;
    QString variantOverlay;  ///< a mask variant ("sliding:256", …) whose dropped pairs are shaded; "" = none
    bool operator==(const ViewOptions&) const = default;
};

class TraceSession : public QObject {
    Q_OBJECT
public:
    /// Heads that can be compared side by side at once.
    static constexpr int kMaxCompared = 4;

    explicit TraceSession(ComputeService* compute, QObject* parent = nullptr);

    ComputeService* compute() const { return m_compute; }
    /// Opens `path` on a worker thread; emits traceOpened or openFailed.
    void open(const QString& path);
    /// Opens the current trace's file again (it changed on disk: a re-capture, a copy over it),
    /// then selects the head and the compared heads that were selected, where the file still
    /// has them. While it opens, and if it fails (openFailed), the open trace stays.
    void reload();
    /// Adopts an already opened trace (tests, the benchmark).
    void setTrace(std::shared_ptr<const Trace> trace);
    /// Closes the open trace, and drops an open still running (its trace does not appear later).
    void close();

    const std::shared_ptr<const Trace>& trace() const { return m_trace; }
    /// Shared so that a job still running on the pool keeps the cache alive after the session
    /// moved on to another trace (capture the pointer by value in the job).
    const std::shared_ptr<HeadCache>& cache() const { return m_cache; }
    QString path() const;
    bool isOpen() const { return bool(m_trace); }

    HeadId current() const { return m_current; }
    void select(HeadId head);
    const QList<HeadId>& compared() const { return m_compared; }
    /// Adds `head` to the comparison (dropping the oldest past kMaxCompared), or removes it.
    void toggleCompared(HeadId head);
    void setCompared(const QList<HeadId>& heads);

    const ViewOptions& options() const { return m_options; }
    void setOptions(const ViewOptions& options);

    /// Sink keys of a head (from the analysis), used for overlays and "exclude sinks".
    std::vector<int64_t> sinkKeys(HeadId head) const;
    void setSinkKeys(HeadId head, std::vector<int64_t> keys);
    /// Keys excluded from the softmax for `head` under the current options.
    std::vector<int64_t> excludedKeys(HeadId head) const;

    /// The latest analysis of this trace (set by AnalysisRunner), or null.
    const std::shared_ptr<const ModelAnalysis>& analysis() const { return m_analysis; }
    void setAnalysis(std::shared_ptr<const ModelAnalysis> analysis);
    /// The analysed head, or nullptr.
    const HeadAnalysis* headAnalysis(HeadId head) const;

    /// Inspected query row (clicked in a map), or -1.
    int64_t inspectedQuery() const { return m_query; }
    int64_t inspectedKey() const { return m_key; }
    void inspect(int64_t query, int64_t key);

signals:
    void traceOpened(const QString& path);
    void openFailed(const QString& path, const QString& message);
    void traceClosed();
    void currentChanged(attnscope::HeadId head);
    void comparedChanged();
    void optionsChanged();
    void sinksChanged();
    void analysisChanged();
    void inspected(qint64 query, qint64 key);

private:
    bool hasHead(HeadId head) const;
    void dropTrace();  // close() without touching opens in flight (setTrace replaces the trace)

    ComputeService* m_compute;
    std::shared_ptr<const Trace> m_trace;
    std::shared_ptr<HeadCache> m_cache;
    HeadId m_current;
    QList<HeadId> m_compared;
    ViewOptions m_options;
    std::vector<std::vector<std::vector<int64_t>>> m_sinks;  ///< [layer][head] -> keys
    int64_t m_query = -1, m_key = -1;
    std::shared_ptr<const ModelAnalysis> m_analysis;
};

}  // namespace attnscope

Q_DECLARE_METATYPE(attnscope::HeadId)
