#include "comparisonview.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QSplitter>
#include <QVBoxLayout>

#include <cmath>

#include "analysisrunner.h"
#include "attentionmapcanvas.h"
#include "attnscope/head_cache.h"
#include "computeservice.h"
#include "figurebuilders.h"
#include "figurewidget.h"
#include "headtable.h"
#include "tracesession.h"

namespace attnscope {

namespace {
const QString kJsTag = QStringLiteral("head:compare:js");
constexpr int kMapsWeight = 3, kFiguresWeight = 2;  ///< of the height, maps above figures
}  // namespace

ComparisonView::ComparisonView(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : QWidget(parent), m_session(session) {
    Q_UNUSED(analysis);
    m_hint = new QLabel(tr("Shift-click heads in the head grid to compare up to four of them."), this);
    m_distance = new QLabel(this);
    auto* maps = new QWidget(this);
    m_row = new QHBoxLayout(maps);
    m_row->setContentsMargins(0, 0, 0, 0);
    m_difference = new FigureWidget(this);
    m_difference->setPlaceholder(tr("The difference of the first two compared heads appears here."));
    m_similarity = new FigureWidget(this);
    m_similarity->setPlaceholder(tr("Head similarity (Jensen–Shannon) of the current layer: run the analysis."));
    QSplitter* split = abovePlots(maps, m_difference, m_similarity, kMapsWeight, kFiguresWeight, this);
    auto* top = new QHBoxLayout;
    top->addWidget(m_hint, 1);
    top->addWidget(m_distance);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(split, 1);

    connect(session, &TraceSession::comparedChanged, this, &ComparisonView::rebuildWhenVisible);
    connect(session, &TraceSession::traceClosed, this, &ComparisonView::rebuildWhenVisible);
    connect(session, &TraceSession::traceOpened, this, &ComparisonView::rebuildWhenVisible);
    connect(session, &TraceSession::currentChanged, this, [this] {
        if (shownHeads() != m_shown)  // the current head is one of those shown
            rebuildWhenVisible();
    });
    auto similarity = [this] {
        const auto& model = m_session->analysis();
        const HeadSimilarity* s = nullptr;
        if (model)
            for (const HeadSimilarity& x : model->similarity)
                if (x.layer == m_session->current().layer) s = &x;
        m_similarity->setFigure(s ? std::optional<Figure>(similarityFigure(*s)) : std::nullopt);
    };
    connect(session, &TraceSession::analysisChanged, this, similarity);
    connect(session, &TraceSession::currentChanged, this, similarity);
}

QList<HeadId> ComparisonView::shownHeads() const {
    QList<HeadId> heads = m_session->compared();
    if (heads.size() >= 2 || !m_session->isOpen()) return heads;
    const HeadId current = m_session->current();
    if (heads.isEmpty() || heads.front() == current) {
        // The current head and the next one of its layer (or of the next layer).
        const Trace& t = *m_session->trace();
        HeadId next{current.layer, current.head + 1};
        if (next.head >= t.config(current.layer).heads) next = {(current.layer + 1) % t.numLayers(), 0};
        heads = {current};
        if (!(next == current)) heads.append(next);
    } else {
        heads.append(current);
    }
    return heads;
}

void ComparisonView::rebuildWhenVisible() {
    m_stale = true;
    if (isVisible()) rebuild();
}

void ComparisonView::showEvent(QShowEvent* e) {
    QWidget::showEvent(e);
    if (m_stale) rebuild();
}

void ComparisonView::rebuild() {
    m_stale = false;
    for (AttentionMapCanvas* c : m_canvases) delete c;
    m_canvases.clear();
    m_js = -1;
    m_distance->clear();
    m_difference->setFigure(std::nullopt);
    m_shown = shownHeads();
    if (!m_session->isOpen()) return;
    for (const HeadId& h : m_shown) {
        auto* canvas = new AttentionMapCanvas(m_session, this);
        canvas->setFollowCurrent(false);
        canvas->setHead(h);
        m_row->addWidget(canvas);
        m_canvases.push_back(canvas);
        connect(canvas, &AttentionMapCanvas::tileArrived, this, &ComparisonView::updateDifference);
        // Linked zoom and pan: every canvas adopts the one the user moves.
        connect(canvas, &AttentionMapCanvas::viewportChanged, this, [this, canvas](const MapViewport& v) {
            for (AttentionMapCanvas* other : m_canvases)
                if (other != canvas) other->setViewport(v);
        });
    }
    const bool picked = m_session->compared().size() >= 2;
    m_hint->setText(picked || m_shown.size() < 2
                        ? tr("Shift-click heads in the head grid to compare up to four of them.")
                        : tr("L%1 H%2 beside L%3 H%4 for now: shift-click heads in the head grid to compare others "
                             "(up to four).")
                              .arg(m_shown[0].layer)
                              .arg(m_shown[0].head)
                              .arg(m_shown[1].layer)
                              .arg(m_shown[1].head));
    m_hint->setVisible(!picked);
    requestDistance();
}

bool ComparisonView::hasDifference() const { return bool(m_difference->figure()); }

void ComparisonView::updateDifference() {
    if (m_canvases.size() < 2) return;
    const MapResult* a = m_canvases[0]->shownMap();
    const MapResult* b = m_canvases[1]->shownMap();
    if (!a || !b) return;
    const AttentionMap& ma = a->map;
    const AttentionMap& mb = b->map;
    if (ma.width != mb.width || ma.height != mb.height || ma.rect.q0 != mb.rect.q0 || ma.rect.q1 != mb.rect.q1 ||
        ma.rect.k0 != mb.rect.k0 || ma.rect.k1 != mb.rect.k1)
        return;  // the linked views have not both refined yet
    const bool maxPooling = m_session->options().maxPooling;
    AttentionMap diff = ma;
    const auto& va = maxPooling ? ma.max : ma.mean;
    const auto& vb = maxPooling ? mb.max : mb.mean;
    auto& out = maxPooling ? diff.max : diff.mean;
    for (size_t i = 0; i < out.size() && i < vb.size(); ++i) out[i] = std::abs(va[i] - vb[i]);
    const QList<HeadId>& c = m_shown;
    HeatmapFigure f = mapFigure(diff, traceTokens(m_session->trace()->metadata()), maxPooling,
                                tr("|L%1H%2 − L%3H%4|").arg(c[0].layer).arg(c[0].head).arg(c[1].layer).arg(c[1].head));
    f.colormap = QStringLiteral("magma");
    f.colorBarLabel = tr("absolute difference");
    m_difference->setFigure(Figure(f));
}

void ComparisonView::showDistance(Result<double> r) {
    if (r.status().code() == ErrorCode::Cancelled) return;  // a newer pair replaced it
    m_js = r ? *r : -1;
    const QList<HeadId>& c = m_shown;
    if (m_js >= 0 && c.size() >= 2)
        m_distance->setText(tr("JS distance L%1H%2 ↔ L%3H%4 = %5")
                                .arg(c[0].layer)
                                .arg(c[0].head)
                                .arg(c[1].layer)
                                .arg(c[1].head)
                                .arg(m_js, 0, 'f', 3));
    else if (!r)
        m_distance->setText(tr("JS distance failed: %1").arg(QString::fromStdString(r.message())));
}

void ComparisonView::requestDistance() {
    const QList<HeadId>& c = m_shown;
    if (c.size() < 2) return;
    std::shared_ptr<HeadCache> cache = m_session->cache();  // owned by the job too
    auto trace = m_session->trace();
    const HeadId a = c[0], b = c[1];
    m_distance->setText(tr("JS distance: computing…"));
    auto work = [cache, trace, a, b](const CancelToken& cancel) -> Result<double> {
        auto ha = cache->head(a.layer, a.head);
        auto hb = cache->head(b.layer, b.head);
        if (!ha || !hb) return (ha ? hb : ha).status();
        std::vector<HeadInput> in(2);
        in[0].q = &(*ha)->q;
        in[0].k = &(*ha)->k;
        in[0].spec = (*ha)->spec;
        in[1].q = &(*hb)->q;
        in[1].k = &(*hb)->k;
        in[1].spec = (*hb)->spec;
        auto s = headSimilarity(std::move(in), cancelOnly(cancel));
        if (!s) return s.status();
        return s->distance.size() >= 2 ? s->distance[1] : -1.0;
    };
    m_session->compute()->submitCpu(kJsTag, std::move(work), this,
                                    [this](Result<double> r) { showDistance(std::move(r)); });
}

std::optional<Figure> ComparisonView::currentFigure() const {
    if (m_difference->figure()) return m_difference->figure();
    return m_similarity->figure();
}

}  // namespace attnscope
