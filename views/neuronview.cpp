#include "neuronview.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QSpinBox>
#include <QVBoxLayout>

#include "attnscope/head_cache.h"
#include "computeservice.h"
#include "figurewidget.h"
#include "tracesession.h"

namespace attnscope {

namespace {
const QString kTag = QStringLiteral("head:neuron");
}  // namespace

NeuronView::NeuronView(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    m_query = new QSpinBox(this);
    m_key = new QSpinBox(this);
    m_summary = new QLabel(this);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Query"), this));
    bar->addWidget(m_query);
    bar->addWidget(new QLabel(tr("Key"), this));
    bar->addWidget(m_key);
    bar->addWidget(m_summary, 1);
    m_plot = new FigureWidget(this);
    m_plot->setPlaceholder(
        tr("Click a cell of the map (or pick a query and a key) to see q, k and q ⊙ k per dimension."));
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(bar);
    layout->addWidget(m_plot, 1);

    connect(session, &TraceSession::traceOpened, this, [this] {
        const int last = int(m_session->trace()->tokens() - 1);
        const QSignalBlocker b1(m_query), b2(m_key);
        m_query->setRange(0, last);
        m_key->setRange(0, last);
        m_query->setValue(last);
        m_key->setValue(0);
        request();
    });
    connect(session, &TraceSession::inspected, this, [this](qint64 q, qint64 k) {
        const QSignalBlocker b1(m_query), b2(m_key);
        m_query->setValue(int(q));
        m_key->setValue(int(k));
        request();
    });
    connect(session, &TraceSession::currentChanged, this, &NeuronView::request);
    connect(session, &TraceSession::optionsChanged, this, &NeuronView::request);
    connect(m_query, &QSpinBox::valueChanged, this, &NeuronView::request);
    connect(m_key, &QSpinBox::valueChanged, this, &NeuronView::request);
}

void NeuronView::showNeuron(Result<NeuronData> r) {
    if (r.status().code() == ErrorCode::Cancelled) return;  // a newer request replaced it
    if (!r) {
        m_summary->setText(tr("error: %1").arg(QString::fromStdString(r.message())));
        return;
    }
    m_data = std::move(*r);
    double dot = 0;
    for (size_t i = 0; i < m_data.q.size(); ++i) dot += double(m_data.q[i]) * m_data.k[i];
    const auto& tokens = m_session->trace()->metadata().tokens;
    auto tok = [&](int64_t i) {
        return size_t(i) < tokens.size() ? QString::fromStdString(tokens[size_t(i)]).trimmed() : QString();
    };
    m_summary->setText(tr("L%1 H%2  “%3” → “%4”   Σ q⊙k = q·k = %5   × scale %6 = %7   softmax p = %8")
                           .arg(m_data.layer)
                           .arg(m_data.head)
                           .arg(tok(m_data.query), tok(m_data.key))
                           .arg(dot, 0, 'g', 4)
                           .arg(m_data.scale, 0, 'g', 4)
                           .arg(dot * m_data.scale, 0, 'g', 4)
                           .arg(m_data.probability, 0, 'g', 4));
    m_plot->setFigure(currentFigure());
}

void NeuronView::request() {
    if (!m_session->isOpen()) return;
    const HeadId h = m_session->current();
    const int64_t query = m_query->value(), key = m_key->value();
    std::shared_ptr<HeadCache> cache = m_session->cache();  // owned by the job too
    auto trace = m_session->trace();
    const std::vector<int64_t> excluded = m_session->excludedKeys(h);
    auto work = [cache, trace, h, query, key, excluded](const CancelToken& cancel) -> Result<NeuronData> {
        auto head = cache->head(h.layer, h.head);
        if (!head) return head.status();
        const HeadData& d = **head;
        NeuronData n;
        n.layer = h.layer;
        n.head = h.head;
        n.query = query;
        n.key = key;
        n.q.assign(d.q.row(query).data(), d.q.row(query).data() + d.q.cols());
        n.k.assign(d.k.row(key).data(), d.k.row(key).data() + d.k.cols());
        n.scale = d.spec.scale;
        const AttentionSpec spec = HeadCache::specWithExclusions(d, excluded);
        auto p = attentionMap(d.q, d.k, spec, {query, query + 1, key, key + 1}, 1, 1, cancelOnly(cancel));
        if (!p) return p.status();
        n.probability = p->mean.empty() ? 0.0 : double(p->mean[0]);
        return n;
    };
    m_session->compute()->submitCpu(kTag, std::move(work), this,
                                    [this](Result<NeuronData> r) { showNeuron(std::move(r)); });
}

std::optional<Figure> NeuronView::currentFigure() const {
    if (m_data.q.empty()) return std::nullopt;
    NeuronFigure f;
    const auto& tokens = m_session->trace()->metadata().tokens;
    auto tok = [&](int64_t i) {
        return size_t(i) < tokens.size() ? QString::fromStdString(tokens[size_t(i)]) : QString::number(i);
    };
    f.title =
        tr("Layer %1, head %2: query %3 → key %4").arg(m_data.layer).arg(m_data.head).arg(m_data.query).arg(m_data.key);
    f.queryToken = tok(m_data.query);
    f.keyToken = tok(m_data.key);
    f.q = m_data.q;
    f.k = m_data.k;
    f.scale = m_data.scale;
    f.probability = m_data.probability;
    return Figure(f);
}

}  // namespace attnscope
