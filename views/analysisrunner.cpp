#include "analysisrunner.h"

#include <QElapsedTimer>
#include <QPointer>

#include <mutex>

#include "computeservice.h"
#include "tracesession.h"

namespace attnscope {

namespace {
const QString kTag = QStringLiteral("head:analysis");
constexpr qint64 kProgressIntervalMs = 50;  ///< at most ~20 progress updates a second
using AnalysisPtr = std::shared_ptr<const ModelAnalysis>;
}  // namespace

AnalysisRunner::AnalysisRunner(TraceSession* session, QObject* parent) : QObject(parent), m_session(session)
{
    connect(session->compute(), &ComputeService::jobFinished, this, [this](quint64, const QString& tag, const QVariant& r) {
        if (tag != kTag)
            return;
        m_running = false;
        if (r.canConvert<JobError>()) {
            emit analysisFailed(r.value<JobError>().message);
            return;
        }
        m_result = r.value<AnalysisPtr>();
        m_session->setAnalysis(m_result);
        emit analysisFinished();
    });
    connect(session, &TraceSession::traceOpened, this, [this] { m_result.reset(); });
    connect(session, &TraceSession::traceClosed, this, [this] {
        m_result.reset();
        m_running = false;
    });
}

void AnalysisRunner::run()
{
    if (!m_session->isOpen())
        return;
    m_running = true;
    emit analysisStarted();
    QPointer<AnalysisRunner> self(this);
    auto trace = m_session->trace();
    // The whole analysis runs where the engine lives: on the GPU worker thread when a GPU is
    // present (the tensor-core passes; layers it cannot take fall back to the CPU inside
    // analyzeTrace), else on the CPU pool.
    auto job = [self, trace](GpuEngine* gpu, const CancelToken& cancel) {
        QElapsedTimer sinceReport;
        sinceReport.start();
        auto progress = [&](double f, std::string_view stage) {
            if (sinceReport.elapsed() >= kProgressIntervalMs || f >= 1.0) {
                sinceReport.restart();
                QMetaObject::invokeMethod(self.data(), [self, f, s = QString::fromUtf8(stage.data(), qsizetype(stage.size()))] {
                    if (self)
                        emit self->progressChanged(f, s);
                });
            }
            return !cancel.cancelled();
        };
        AnalyzeOptions options;
        options.gpu = gpu;
        auto r = analyzeTrace(*trace, options, progress);
        if (!r)
            return QVariant::fromValue(JobError{QString::fromStdString(r.message())});
        return QVariant::fromValue(AnalysisPtr(std::make_shared<const ModelAnalysis>(std::move(*r))));
    };
    if (m_session->compute()->gpuAvailable())
        m_session->compute()->submitGpu(kTag, job);
    else
        m_session->compute()->submitCpu(kTag, [job](const CancelToken& cancel) { return job(nullptr, cancel); });
}

void AnalysisRunner::cancel()
{
    m_session->compute()->cancelAll(kTag);
    m_running = false;
}

const HeadAnalysis* AnalysisRunner::head(int layer, int head) const
{
    if (!m_result)
        return nullptr;
    for (const HeadAnalysis& h : m_result->heads)
        if (h.layer == layer && h.head == head)
            return &h;
    return nullptr;
}

const HeadSimilarity* AnalysisRunner::similarity(int layer) const
{
    if (!m_result)
        return nullptr;
    for (const HeadSimilarity& s : m_result->similarity)
        if (s.layer == layer)
            return &s;
    return nullptr;
}

}  // namespace attnscope
