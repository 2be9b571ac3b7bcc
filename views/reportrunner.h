#pragma once
// Writes the report of the open trace (generateReport) on the ComputeService's CPU pool, with
// progress and cancellation, so that the main window only shows a dialog.
#include <QObject>
#include <QString>

namespace attnscope {

class TraceSession;

class ReportRunner : public QObject {
    Q_OBJECT
public:
    explicit ReportRunner(TraceSession* session, QObject* parent = nullptr);

    /// Writes the report of the open trace into `dir` (replacing a run in progress).
    void run(const QString& dir);
    /// Stops the run in progress: emits reportCancelled at once, and nothing more for that run.
    void cancel();
    bool isRunning() const { return m_running; }

signals:
    void progressChanged(double fraction, const QString& stage);
    void reportWritten(const QString& dir, int files);
    void reportFailed(const QString& message);
    void reportCancelled();

private:
    TraceSession* m_session;
    quint64 m_job = 0;  ///< the run in progress; progress and answers of older runs are dropped
    bool m_running = false;
};

}  // namespace attnscope
