#include "reportrunner.h"

#include <QPointer>

#include "computeservice.h"
#include "report.h"
#include "tracesession.h"
#include "threadhandoff.h"

namespace attnscope {

namespace {
const QString kTag = QStringLiteral("report");
}  // namespace

ReportRunner::ReportRunner(TraceSession* session, QObject* parent) : QObject(parent), m_session(session) {}

void ReportRunner::run(const QString& dir) {
    const quint64 job = ++m_job;
    m_running = true;
    QPointer<ReportRunner> self(this);
    auto progress = [self, job](double f, std::string_view stage) {
        postToGuiThread(self.data(), [self, job, f, s = QString::fromUtf8(stage.data(), qsizetype(stage.size()))] {
            if (self && self->m_job == job) emit self->progressChanged(f, s);
        });
        return true;
    };
    auto work = [trace = m_session->path().toStdString(), out = dir.toStdString(),
                 progress](const CancelToken& cancel) {
        return generateReport(trace, out, {},
                              [&](double f, std::string_view s) { return progress(f, s) && !cancel.cancelled(); });
    };
    m_session->compute()->submitCpu(kTag, std::move(work), this, [this, job, dir](Result<ReportResult> r) {
        if (job != m_job || r.status().code() == ErrorCode::Cancelled)
            return;  // cancel() or a newer run said so already
        m_running = false;
        if (r)
            emit reportWritten(dir, int(r->files.size()));
        else
            emit reportFailed(QString::fromStdString(r.message()));
    });
}

void ReportRunner::cancel() {
    if (!m_running) return;
    m_session->compute()->cancelAll(kTag);  // its cancel token stops generateReport
    m_running = false;
    ++m_job;
    emit reportCancelled();
}

}  // namespace attnscope
