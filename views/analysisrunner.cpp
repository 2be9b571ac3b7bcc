#include "analysisrunner.h"

#include <QElapsedTimer>
#include <QPointer>

#include <algorithm>

#include "computeservice.h"
#include "tracesession.h"
#include "threadhandoff.h"

namespace attnscope {

namespace {
const QString kTag = QStringLiteral("head:analysis");
constexpr qint64 kProgressIntervalMs = 50;  ///< at most ~20 progress updates a second
using AnalysisPtr = std::shared_ptr<const ModelAnalysis>;
using LayerPtr = std::shared_ptr<const LayerAnalysis>;
}  // namespace

HeadId mostInterestingHead(const ModelAnalysis& model) {
    HeadId best;
    double bestScore = -1;
    for (const HeadAnalysis& h : model.heads) {
        const double score = std::max({h.sinks.alpha0, h.roles.inductionMatched, h.roles.inductionRepeat});
        if (score > bestScore) {
            bestScore = score;
            best = {h.layer, h.head};
        }
    }
    return best;
}

AnalysisRunner::AnalysisRunner(TraceSession* session, QObject* parent) : QObject(parent), m_session(session) {
    connect(session, &TraceSession::traceOpened, this, [this] {
        reset();
        if (m_autoRun) run();
    });
    connect(session, &TraceSession::traceClosed, this, &AnalysisRunner::reset);
}

void AnalysisRunner::reset() {
    m_result.reset();
    m_layers.clear();
    m_running = false;
    m_progress = 0;
    m_stage.clear();
    m_layersTotal = m_session->isOpen() ? m_session->trace()->numLayers() : 0;
    ++m_job;  // layers still on their way from an older run are dropped
}

void AnalysisRunner::run() {
    if (!m_session->isOpen()) return;
    reset();
    m_running = true;
    emit analysisStarted();
    QPointer<AnalysisRunner> self(this);
    auto trace = m_session->trace();
    const quint64 job = m_job;
    // Background work: on the GPU worker when a GPU is present (the tensor-core passes; layers it
    // cannot take fall back to the CPU inside analyzeTrace), else on the background CPU lane. Map
    // requests never wait for it.
    auto work = [self, trace, job](GpuEngine* gpu, const CancelToken& cancel) -> Result<AnalysisPtr> {
        QElapsedTimer sinceReport;
        sinceReport.start();
        auto progress = [&](double f, std::string_view stage) {
            if (sinceReport.elapsed() >= kProgressIntervalMs || f >= 1.0) {
                sinceReport.restart();
                postToGuiThread(self.data(),
                                [self, job, f, s = QString::fromUtf8(stage.data(), qsizetype(stage.size()))] {
                                    if (!self || self->m_job != job) return;
                                    self->m_progress = f;
                                    self->m_stage = s;
                                    emit self->progressChanged(f, s);
                                });
            }
            return !cancel.cancelled();
        };
        AnalyzeOptions options;
        options.gpu = gpu;
        options.onLayer = [self, job](const LayerDone& done) {
            auto layer = std::make_shared<LayerAnalysis>();
            layer->layer = done.layer;
            layer->heads.assign(done.heads.begin(), done.heads.end());
            if (done.similarity) layer->similarity = *done.similarity;
            postToGuiThread(self.data(), [self, job, layer = LayerPtr(std::move(layer))] {
                if (!self || self->m_job != job || self->m_result) return;
                self->m_layers[layer->layer] = layer;
                emit self->layerFinished(layer->layer);
            });
        };
        auto r = analyzeTrace(*trace, options, progress);
        if (!r) return r.status();
        return AnalysisPtr(std::make_shared<const ModelAnalysis>(std::move(*r)));
    };
    m_session->compute()->submitBackground(kTag, std::move(work), this, [this, job](Result<AnalysisPtr> r) {
        // A run replaced or cancelled (cancel() and reset() said so already) or of an older trace.
        if (job != m_job || r.status().code() == ErrorCode::Cancelled) return;
        m_running = false;
        if (!r) {
            emit analysisFailed(QString::fromStdString(r.message()));  // the layers finished so far stay
            return;
        }
        m_result = std::move(*r);
        m_layers.clear();
        m_progress = 1.0;
        m_session->setAnalysis(m_result);
        emit analysisFinished();
    });
}

void AnalysisRunner::cancel() {
    if (!m_running) return;
    m_session->compute()->cancelAll(kTag);
    m_running = false;
    ++m_job;  // the layers finished so far stay; later ones are dropped
    emit analysisCancelled();
}

int AnalysisRunner::layersDone() const { return m_result ? int(m_result->layers.size()) : int(m_layers.size()); }

const HeadAnalysis* AnalysisRunner::head(int layer, int head) const {
    if (m_result) {
        for (const HeadAnalysis& h : m_result->heads)
            if (h.layer == layer && h.head == head) return &h;
        return nullptr;
    }
    const auto it = m_layers.find(layer);
    if (it == m_layers.end() || head < 0 || size_t(head) >= it->second->heads.size()) return nullptr;
    return &it->second->heads[size_t(head)];
}

const HeadSimilarity* AnalysisRunner::similarity(int layer) const {
    if (m_result) {
        for (const HeadSimilarity& s : m_result->similarity)
            if (s.layer == layer) return &s;
        return nullptr;
    }
    const auto it = m_layers.find(layer);
    return it != m_layers.end() && it->second->similarity ? &*it->second->similarity : nullptr;
}

}  // namespace attnscope
