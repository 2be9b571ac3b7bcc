#include "tracesession.h"

#include <QFileInfo>

#include "computeservice.h"

namespace attnscope {

namespace {
using TracePtr = std::shared_ptr<const Trace>;
const QString kOpenTag = QStringLiteral("open");
constexpr qint64 kScanLimitBytes = qint64(1) << 30;
}  // namespace

TraceSession::TraceSession(ComputeService* compute, QObject* parent) : QObject(parent), m_compute(compute) {}

void TraceSession::reload() {
    if (!m_trace) return;
    const HeadId head = m_current;
    const QList<HeadId> compared = m_compared;
    const QString reloaded = path();
    // After the new trace is set; either answer ends both connections. An open of another file
    // asked for meanwhile replaces the reload (one tag for every open): its trace starts with a
    // selection of its own, not this one.
    struct Pending {
        QMetaObject::Connection opened, failed;
    };
    auto pending = std::make_shared<Pending>();
    auto done = [pending] { disconnect(pending->opened), disconnect(pending->failed); };
    pending->opened =
        connect(this, &TraceSession::traceOpened, this, [this, head, compared, done, reloaded](const QString& opened) {
            done();
            if (opened != reloaded) return;
            select(head);
            QList<HeadId> kept;
            for (const HeadId& h : compared)
                if (hasHead(h)) kept.push_back(h);
            if (!kept.isEmpty()) setCompared(kept);
        });
    pending->failed = connect(this, &TraceSession::openFailed, this, done);
    open(reloaded);
}

bool TraceSession::hasHead(HeadId head) const {
    return m_trace && head.layer >= 0 && head.layer < m_trace->numLayers() && head.head >= 0 &&
           head.head < m_trace->config(head.layer).heads;
}

void TraceSession::open(const QString& path) {
    OpenOptions options;
    // Counting NaN/Inf reads the whole file: worth it for the validation panel unless it is huge.
    options.scanValues = QFileInfo(path).size() <= kScanLimitBytes;
    // One tag for every open: the newest open, of any file, takes the place of one still running,
    // so the trace asked for last is the one that opens (not whichever file reads fastest).
    m_compute->submitCpu(
        kOpenTag,
        [p = path.toStdString(), options](const CancelToken& cancel) {
            return Trace::open(p, options, cancelOnly(cancel));
        },
        this,
        [this, path](Result<TracePtr> t) {
            if (t)
                setTrace(std::move(*t));
            else if (t.status().code() != ErrorCode::Cancelled)  // a newer open, or close()
                emit openFailed(path, QString::fromStdString(t.message()));
        });
}

void TraceSession::setTrace(std::shared_ptr<const Trace> trace) {
    if (m_trace) dropTrace();
    m_trace = std::move(trace);
    if (!m_trace) return;
    m_cache = std::make_shared<HeadCache>(m_trace);
    m_sinks.assign(size_t(m_trace->numLayers()), {});
    for (int l = 0; l < m_trace->numLayers(); ++l) m_sinks[size_t(l)].assign(size_t(m_trace->config(l).heads), {});
    m_current = {};
    m_compared.clear();
    m_query = m_key = -1;
    m_analysis.reset();
    emit traceOpened(path());
    emit currentChanged(m_current);
    emit comparedChanged();
}

void TraceSession::close() {
    m_compute->cancelAll(kOpenTag);  // a trace still opening does not appear after the close
    dropTrace();
}

void TraceSession::dropTrace() {
    if (!m_trace) return;
    m_compute->cancelAll(QStringLiteral("head:"));
    m_trace.reset();
    m_cache.reset();
    m_sinks.clear();
    m_compared.clear();
    m_analysis.reset();
    emit traceClosed();
}

QString TraceSession::path() const { return m_trace ? QString::fromStdString(m_trace->path()) : QString(); }

void TraceSession::select(HeadId head) {
    if (!hasHead(head) || head == m_current) return;
    m_current = head;
    emit currentChanged(head);
}

void TraceSession::toggleCompared(HeadId head) {
    if (m_compared.removeOne(head)) {
        emit comparedChanged();
        return;
    }
    m_compared.append(head);
    while (m_compared.size() > kMaxCompared) m_compared.removeFirst();
    emit comparedChanged();
}

void TraceSession::setCompared(const QList<HeadId>& heads) {
    m_compared = heads.mid(0, kMaxCompared);
    emit comparedChanged();
}

void TraceSession::setOptions(const ViewOptions& options) {
    if (options == m_options) return;
    m_options = options;
    emit optionsChanged();
}

std::vector<int64_t> TraceSession::sinkKeys(HeadId head) const {
    if (head.layer < 0 || size_t(head.layer) >= m_sinks.size() || head.head < 0 ||
        size_t(head.head) >= m_sinks[size_t(head.layer)].size())
        return {};
    return m_sinks[size_t(head.layer)][size_t(head.head)];
}

void TraceSession::setSinkKeys(HeadId head, std::vector<int64_t> keys) {
    if (head.layer < 0 || size_t(head.layer) >= m_sinks.size() || head.head < 0 ||
        size_t(head.head) >= m_sinks[size_t(head.layer)].size())
        return;
    m_sinks[size_t(head.layer)][size_t(head.head)] = std::move(keys);
    emit sinksChanged();
}

std::vector<int64_t> TraceSession::excludedKeys(HeadId head) const {
    return m_options.excludeSinks ? sinkKeys(head) : std::vector<int64_t>{};
}

void TraceSession::setAnalysis(std::shared_ptr<const ModelAnalysis> analysis) {
    m_analysis = std::move(analysis);
    if (m_analysis)
        for (const HeadAnalysis& h : m_analysis->heads)
            if (size_t(h.layer) < m_sinks.size() && size_t(h.head) < m_sinks[size_t(h.layer)].size())
                m_sinks[size_t(h.layer)][size_t(h.head)] = h.sinks.keys();
    emit sinksChanged();
    emit analysisChanged();
}

const HeadAnalysis* TraceSession::headAnalysis(HeadId head) const {
    if (!m_analysis) return nullptr;
    for (const HeadAnalysis& h : m_analysis->heads)
        if (h.layer == head.layer && h.head == head.head) return &h;
    return nullptr;
}

void TraceSession::inspect(int64_t query, int64_t key) {
    m_query = query;
    m_key = key;
    emit inspected(query, key);
}

}  // namespace attnscope
