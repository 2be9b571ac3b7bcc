#include "attentionmapcanvas.h"

#include <QMouseEvent>
#include <QPainter>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>

#include "computeservice.h"
#include "colormap.h"
#include "attnscope/cpu_budget.h"
#include "attnscope/scales.h"
#include "attnscope/variants.h"
#include "attnscope/vision.h"
#include "figurebuilders.h"

namespace attnscope {

namespace {
constexpr double kLeftMargin = 64, kTopMargin = 24, kRightMargin = 78, kBottomMargin = 64;
constexpr int kOverviewCells = 1024;          ///< overview resolution cap per axis
constexpr int kPreviewRows = 256;             ///< sampled rows of the first preview of long sequences
constexpr int kDetailDelayMs = 30;            ///< coalesce wheel bursts into one detail request
constexpr double kWheelStep = 1.0015;         ///< zoom factor per wheel angle unit (1/8 degree)
constexpr double kLabelMinPixels = 11;        ///< pixels per token from which tokens are labelled
constexpr double kPatchRowLineMinPixels = 6;  ///< a vision trace's patch rows get lines when this wide
constexpr double kDragThreshold = 4;          ///< pixels before a press becomes a pan
constexpr int kTargetTicks = 8;
constexpr int kMaxLabelChars = 10;
const QColor kSinkColor(230, 60, 60, 150);
constexpr int kCoverageAlpha = 170;
constexpr int kVariantCellPixels = 4;  ///< screen cell per mask evaluation
constexpr int kVariantAlpha = 140;     ///< dropped blocks stay faintly visible under the shade
const QColor kInspectColor(255, 255, 255, 170);

QString shortToken(const std::string& s) {
    QString t = QString::fromStdString(s).replace(QLatin1Char('\n'), QStringLiteral("⏎"));
    return t.size() > kMaxLabelChars ? t.left(kMaxLabelChars - 1) + QStringLiteral("…") : t;
}

}  // namespace

AttentionMapCanvas::AttentionMapCanvas(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    setMouseTracking(true);
    setMinimumSize(240, 200);
    setFocusPolicy(Qt::StrongFocus);
    m_detailTimer.setSingleShot(true);
    m_detailTimer.setInterval(kDetailDelayMs);
    connect(&m_detailTimer, &QTimer::timeout, this, &AttentionMapCanvas::requestDetail);
    connect(session, &TraceSession::currentChanged, this, [this](HeadId h) {
        if (m_follow) setHead(h);
    });
    connect(session, &TraceSession::traceOpened, this, [this] {
        m_view.reset(m_session->trace()->tokens(), plotRect().width(), plotRect().height());
        if (m_follow) m_head = m_session->current();
        restart();
    });
    connect(session, &TraceSession::traceClosed, this, [this] {
        m_overview.reset();
        m_detail.reset();
        update();
    });
    connect(session, &TraceSession::optionsChanged, this, [this] {
        if (m_session->excludedKeys(m_head) != m_excluded)
            restart();
        else
            recolor();
    });
    connect(session, &TraceSession::sinksChanged, this, [this] {
        if (m_session->excludedKeys(m_head) != m_excluded)
            restart();
        else
            update();
    });
    connect(session, &TraceSession::inspected, this, qOverload<>(&QWidget::update));
    connect(session, &TraceSession::analysisChanged, this, qOverload<>(&QWidget::update));
    if (session->isOpen()) m_view.reset(session->trace()->tokens(), plotRect().width(), plotRect().height());
}

QString AttentionMapCanvas::tagPrefix() const { return QStringLiteral("head:map:%1:").arg(quintptr(this), 0, 16); }

void AttentionMapCanvas::setFollowCurrent(bool follow) {
    m_follow = follow;
    if (follow && m_session->isOpen()) setHead(m_session->current());
}

void AttentionMapCanvas::setHead(HeadId head) {
    if (head == m_head && (m_overview || m_computing)) return;
    m_head = head;
    restart();
}

QRectF AttentionMapCanvas::plotRect() const {
    return QRectF(kLeftMargin, kTopMargin, std::max(1.0, width() - kLeftMargin - kRightMargin),
                  std::max(1.0, height() - kTopMargin - kBottomMargin));
}

MapColoring AttentionMapCanvas::coloring() const {
    MapColoring c;
    c.logScale = m_session->options().logScale;
    c.maxPooling = m_session->options().maxPooling;
    // The finest map on screen sets the range, so zooming in does not saturate.
    const Layer* top = m_detail ? &*m_detail : (m_overview ? &*m_overview : nullptr);
    if (top && coloringMatches(top->result)) c.vmax = top->result.coloring.vmax;
    return c;
}

bool AttentionMapCanvas::coloringMatches(const MapResult& r) const {
    const ViewOptions& o = m_session->options();
    return !r.image.isNull() && r.coloring.logScale == o.logScale && r.coloring.maxPooling == o.maxPooling &&
           r.shadeMasked == o.showCausal;
}

void AttentionMapCanvas::restart() {
    m_overview.reset();
    m_detail.reset();
    m_error.clear();
    m_overviewPending = false;
    m_session->compute()->cancelAll(tagPrefix());
    if (!m_session->isOpen()) {
        update();
        return;
    }
    m_excluded = m_session->excludedKeys(m_head);
    const int64_t t = m_session->trace()->tokens();
    const int cells = int(std::min<int64_t>(t, kOverviewCells));
    MapRequest r;
    r.layer = m_head.layer;
    r.head = m_head.head;
    r.rect = {0, t, 0, t};
    r.width = r.height = cells;
    r.excludedKeys = m_excluded;
    if (t > kExactOverviewTokens) {
        MapRequest preview = r;
        preview.sampledRows = true;
        preview.height = std::min(cells, kPreviewRows);
        submit(QStringLiteral("preview"), preview, false);
    }
    m_overviewPending = submit(QStringLiteral("overview"), r, true);
    viewChanged();
    update();
}

bool AttentionMapCanvas::withinCpuBudget(const MapRequest& request) {
    // Below this many score products no machine comes near the budget (at 1e7 a second, far
    // below any measured rate), so the rate is only measured (once, tens of ms) for huge maps.
    constexpr double kSurelyWithinBudget = kCpuWorkLimitSeconds * 1e7;
    const double products = cpuMapScoreProducts(*m_session->trace(), request);
    if (products < kSurelyWithinBudget) return true;
    const CpuWorkEstimate e = estimateCpuWork(products, m_session->trace()->config(request.layer).headDim);
    if (!e.overLimit()) return true;
    m_cpuLimit = tr("exact map: %1 on the CPU, over the limit of %2; zoom in, or open it where there is a GPU")
                     .arg(QString::fromStdString(describeSeconds(e.seconds)),
                          QString::fromStdString(describeSeconds(kCpuWorkLimitSeconds)));
    return false;
}

bool AttentionMapCanvas::submit(const QString& level, MapRequest request, bool gpu) {
    // The CPU path is exact but O(T²) per head: an exact map past the CPU budget (cpu_budget.h,
    // the CLI's limit too) is not started; the sampled preview stays, smaller rects (zoomed in)
    // are computed.
    const bool onGpu = gpu && m_session->compute()->gpuAvailable();
    if (!request.sampledRows) {
        m_cpuLimit.clear();
        if (!onGpu && !withinCpuBudget(request)) {
            m_session->compute()->cancelAll(tagPrefix() + level);
            update();
            return false;
        }
    }
    m_computing = true;
    std::shared_ptr<HeadCache> cache = m_session->cache();  // owned by the job too
    const auto trace = m_session->trace();                  // keeps the cache's trace alive in the job
    const QString tag = tagPrefix() + level;
    MapColoring coloring;
    coloring.logScale = m_session->options().logScale;
    coloring.maxPooling = m_session->options().maxPooling;
    const bool shade = m_session->options().showCausal;
    const QColor mask = palette().color(QPalette::Mid);
    auto run = [cache, trace, request, coloring, shade, mask](GpuEngine* engine, const CancelToken& cancel) {
        auto r = computeMap(*cache, request, cancel, engine);
        if (r) colorizeResult(*r, coloring, shade, mask);
        return r;
    };
    auto done = [this, level](Result<MapResult> r) { onMapFinished(level, std::move(r)); };
    // While the analysis holds the GPU, the map computes on the CPU rather than wait for it.
    if (onGpu)
        m_session->compute()->submitGpu(tag, run, this, done, ComputeService::WhileGpuBusy::RunOnCpu);
    else
        m_session->compute()->submitCpu(
            tag, [run](const CancelToken& c) { return run(nullptr, c); }, this, done);
    return true;
}

void AttentionMapCanvas::onMapFinished(const QString& level, Result<MapResult> r) {
    if (r.status().code() == ErrorCode::Cancelled)
        return;  // a newer request of this level, or the head or mask changed
    if (level == QLatin1String("overview")) m_overviewPending = false;
    m_computing = m_session->compute()->pendingJobs() > 0;
    if (!r) {
        m_error = QString::fromStdString(r.message());
        emit computeFailed(m_error);
        update();
        return;
    }
    MapResult result = std::move(*r);
    if (result.request.layer != m_head.layer || result.request.head != m_head.head ||
        result.request.excludedKeys != m_excluded)
        return;                    // a map of a head or mask no longer shown
    if (!coloringMatches(result))  // the options changed while it computed
        colorizeResult(result, coloring(), m_session->options().showCausal, palette().color(QPalette::Mid));
    Layer layer{std::move(result)};
    if (level == QLatin1String("detail"))
        m_detail = std::move(layer);
    else if (level == QLatin1String("overview") || !m_overview || !m_overview->result.exact)
        m_overview = std::move(layer);
    ++m_tilesReceived;
    if (level != QLatin1String("detail")) {
        dropDetailWhenOverviewSuffices();
        m_detailTimer.start();  // the overview may be too coarse for the current zoom
    }
    update();
    emit tileArrived();
}

void AttentionMapCanvas::recolor() {
    MapColoring c;
    c.logScale = m_session->options().logScale;
    c.maxPooling = m_session->options().maxPooling;
    const bool shade = m_session->options().showCausal;
    const QColor mask = palette().color(QPalette::Mid);
    for (auto* layer : {&m_overview, &m_detail})
        if (*layer) colorizeResult((*layer)->result, c, shade, mask);
    update();
}

void AttentionMapCanvas::viewChanged() {
    dropDetailWhenOverviewSuffices();
    m_detailTimer.start();
    update();
}

bool AttentionMapCanvas::overviewSuffices() const {
    if (!m_overview || !m_overview->result.exact) return false;
    const auto& o = m_overview->result.map;
    const double overviewTokensPerCell = double(o.rect.k1 - o.rect.k0) / std::max(o.width, 1);
    return overviewTokensPerCell <= std::max(1.0, m_view.tokensPerPixel) + 1e-9;
}

void AttentionMapCanvas::dropDetailWhenOverviewSuffices() {
    // A detail was coloured over its own (zoomed) range: kept after zooming back out, it would sit
    // on the overview as a rectangle in another colour scale, and set the colour bar.
    if (m_detail && overviewSuffices()) m_detail.reset();
}

bool AttentionMapCanvas::isUpToDate() const {
    if (overviewSuffices()) return true;
    // An exact detail of the view is up to date over a preview too (a preview stays the overview
    // of a long trace whose exact map is over the CPU budget).
    if (!m_overview || !m_detail) return false;
    const auto v = m_view.visible();
    const auto& r = m_detail->result.map.rect;
    return r.q0 == v.q0 && r.q1 == v.q1 && r.k0 == v.k0 && r.k1 == v.k1;
}

const MapResult* AttentionMapCanvas::shownMap() const {
    if (m_detail && isUpToDate()) return &m_detail->result;
    return m_overview && m_overview->result.exact ? &m_overview->result : nullptr;
}

bool AttentionMapCanvas::overviewWillSuffice() const {
    if (!m_overviewPending || !m_session->isOpen()) return false;
    const int64_t t = m_session->trace()->tokens();
    const double tokensPerCell = double(t) / double(std::min<int64_t>(t, kOverviewCells));
    return tokensPerCell <= std::max(1.0, m_view.tokensPerPixel) + 1e-9;
}

void AttentionMapCanvas::requestDetail() {
    // Over a sampled preview, a detail of a view the coming exact overview covers would compute
    // the same T×T work twice (on the CPU, twice the wait for the first exact map).
    if (!m_session->isOpen() || !m_overview || isUpToDate() || overviewWillSuffice()) return;
    const auto v = m_view.visible();
    if (v.q1 <= v.q0 || v.k1 <= v.k0) return;
    const QRectF plot = plotRect();
    MapRequest r;
    r.layer = m_head.layer;
    r.head = m_head.head;
    r.rect = {v.q0, v.q1, v.k0, v.k1};
    r.width = int(std::min<int64_t>(v.k1 - v.k0, int64_t(std::ceil(plot.width()))));
    r.height = int(std::min<int64_t>(v.q1 - v.q0, int64_t(std::ceil(plot.height()))));
    r.excludedKeys = m_excluded;
    submit(QStringLiteral("detail"), r, true);
}

void AttentionMapCanvas::setViewport(const MapViewport& view) {
    const QRectF plot = plotRect();
    m_view = view;
    m_view.resize(plot.width(), plot.height());
    viewChanged();
}

void AttentionMapCanvas::zoomBy(double factor) {
    const QRectF plot = plotRect();
    m_view.zoomAbout(plot.width() / 2, plot.height() / 2, factor);
    viewChanged();
    emit viewportChanged(m_view);
}

void AttentionMapCanvas::fitAll() {
    m_view.fitAll();
    m_detail.reset();
    viewChanged();
    emit viewportChanged(m_view);
}

void AttentionMapCanvas::zoomToToken(int64_t query, int64_t key, double pixelsPerToken) {
    const QRectF plot = plotRect();
    m_view.tokensPerPixel = 1.0 / pixelsPerToken;
    m_view.keyOrigin = double(key) + 0.5 - plot.width() / 2 * m_view.tokensPerPixel;
    m_view.queryOrigin = double(query) + 0.5 - plot.height() / 2 * m_view.tokensPerPixel;
    m_view.clamp();
    viewChanged();
    emit viewportChanged(m_view);
}

void AttentionMapCanvas::resizeEvent(QResizeEvent*) {
    const QRectF plot = plotRect();
    const bool overview = m_view.isOverview();
    m_view.resize(plot.width(), plot.height());
    if (overview) m_view.fitAll();
    viewChanged();
}

std::optional<float> AttentionMapCanvas::valueAt(int64_t query, int64_t key) const {
    const bool maxPooling = m_session->options().maxPooling;
    for (const auto* layer : {&m_detail, &m_overview}) {
        if (!*layer) continue;
        const AttentionMap& m = (*layer)->result.map;
        if (query < m.rect.q0 || query >= m.rect.q1 || key < m.rect.k0 || key >= m.rect.k1) continue;
        if (!(*layer)->result.exact && layer == &m_overview && m_detail) continue;
        const int64_t x = (key - m.rect.k0) * m.width / (m.rect.k1 - m.rect.k0);
        const int64_t y = (query - m.rect.q0) * m.height / (m.rect.q1 - m.rect.q0);
        const auto& values = pooledValues(m, maxPooling);
        const size_t i = size_t(y * m.width + x);
        if (i < values.size()) return values[i];
    }
    return std::nullopt;
}

void AttentionMapCanvas::wheelEvent(QWheelEvent* e) {
    const QPointF pos = e->position() - plotRect().topLeft();
    m_view.zoomAbout(pos.x(), pos.y(), std::pow(kWheelStep, e->angleDelta().y()));
    viewChanged();
    updateHover(e->position());
    emit viewportChanged(m_view);
    e->accept();
}

void AttentionMapCanvas::mousePressEvent(QMouseEvent* e) {
    m_pressPos = m_lastPos = e->position();
    m_dragging = false;
}

void AttentionMapCanvas::mouseMoveEvent(QMouseEvent* e) {
    if (e->buttons() & Qt::LeftButton) {
        if (!m_dragging && (e->position() - m_pressPos).manhattanLength() > kDragThreshold) m_dragging = true;
        if (m_dragging) {
            const QPointF d = e->position() - m_lastPos;
            m_view.panPixels(d.x(), d.y());
            m_lastPos = e->position();
            viewChanged();
            emit viewportChanged(m_view);
        }
    }
    updateHover(e->position());
}

void AttentionMapCanvas::mouseReleaseEvent(QMouseEvent* e) {
    if (!m_dragging && e->button() == Qt::LeftButton) {
        const QPointF pos = e->position() - plotRect().topLeft();
        const int64_t q = m_view.queryAt(pos.y()), k = m_view.keyAt(pos.x());
        if (q >= 0 && k >= 0) m_session->inspect(q, k);  // click a row to inspect that query
    }
    m_dragging = false;
}

void AttentionMapCanvas::mouseDoubleClickEvent(QMouseEvent*) { fitAll(); }

void AttentionMapCanvas::leaveEvent(QEvent*) {
    m_hoverText.clear();
    emit hovered({});
}

void AttentionMapCanvas::changeEvent(QEvent* e) {
    // Light/dark follows the system: masked cells take the palette's colour.
    if (e->type() == QEvent::PaletteChange) recolor();
    QWidget::changeEvent(e);
}

void AttentionMapCanvas::updateHover(QPointF widgetPos) {
    if (!m_session->isOpen()) return;
    const QPointF pos = widgetPos - plotRect().topLeft();
    const int64_t q = m_view.queryAt(pos.y()), k = m_view.keyAt(pos.x());
    if (q < 0 || k < 0 || !plotRect().contains(widgetPos)) {
        m_hoverText.clear();
    } else {
        const auto& tokens = m_session->trace()->metadata().tokens;
        auto tok = [&](int64_t i) {
            return size_t(i) < tokens.size() ? QStringLiteral(" “%1”").arg(shortToken(tokens[size_t(i)])) : QString();
        };
        const auto v = valueAt(q, k);
        const bool cell = m_view.tokensPerPixel <= 1.0 && m_detail;
        const QString what = cell ? tr("p") : (m_session->options().maxPooling ? tr("max") : tr("mean"));
        m_hoverText = tr("query %1%2 → key %3%4   %5 = %6")
                          .arg(q)
                          .arg(tok(q))
                          .arg(k)
                          .arg(tok(k))
                          .arg(what)
                          .arg(v ? QString::number(double(*v), 'g', 4) : tr("…"));
    }
    emit hovered(m_hoverText);
}

void AttentionMapCanvas::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    const QRectF plot = plotRect();
    if (!m_session->isOpen()) {
        p.drawText(rect(), Qt::AlignCenter, tr("No trace open"));
        return;
    }
    p.save();
    p.setClipRect(plot);
    // The sequence's extent in the shade maps have not covered yet; around it the page colour, so
    // a square map in a wide canvas has no grey margins.
    const QRectF sequence(QPointF(m_view.keyToX(0), m_view.queryToY(0)),
                          QPointF(m_view.keyToX(double(m_session->trace()->tokens())),
                                  m_view.queryToY(double(m_session->trace()->tokens()))));
    p.fillRect(sequence.translated(plot.topLeft()).intersected(plot), palette().color(QPalette::Window));
    if (m_overview) drawLayer(p, *m_overview);
    if (m_detail) drawLayer(p, *m_detail);
    drawOverlays(p);
    p.restore();
    drawAxes(p);
    drawColorBar(p);

    const auto& cfg = m_session->trace()->config(m_head.layer);
    QString title = tr("L%1 H%2  ·  %3 pooling  ·  %4")
                        .arg(m_head.layer)
                        .arg(m_head.head)
                        .arg(m_session->options().maxPooling ? tr("max") : tr("mean"))
                        .arg(m_session->options().logScale ? tr("log") : tr("linear"));
    if (!m_excluded.empty()) title += tr("  ·  %n sink key(s) excluded", nullptr, int(m_excluded.size()));
    if (cfg.slidingWindow > 0) title += tr("  ·  window %1").arg(cfg.slidingWindow);
    QString state;
    if (!m_error.isEmpty())
        state = tr("error: %1").arg(m_error);
    else if (!m_overview)
        state = tr("computing overview…");
    else if (!m_cpuLimit.isEmpty() && !isUpToDate())
        state = tr("preview (sampled rows) · %1").arg(m_cpuLimit);
    else if (!m_overview->result.exact)
        state = tr("preview (sampled rows), exact map computing…");
    else if (!isUpToDate())
        state = tr("refining…");
    else
        state = (m_detail ? m_detail : m_overview)->result.backend;
    const auto [shownTitle, shownState] = fitHeader(title, state, QFontMetricsF(p.font()), plot.width());
    p.setPen(palette().color(QPalette::Text));
    p.drawText(QRectF(kLeftMargin, 0, plot.width(), kTopMargin), Qt::AlignVCenter | Qt::AlignLeft, shownTitle);
    p.setPen(m_error.isEmpty() ? palette().color(QPalette::PlaceholderText) : QColor(Qt::red));
    p.drawText(QRectF(kLeftMargin, 0, plot.width(), kTopMargin), Qt::AlignVCenter | Qt::AlignRight, shownState);
}

std::pair<QString, QString> AttentionMapCanvas::fitHeader(const QString& title, const QString& state,
                                                          const QFontMetricsF& fm, double width) {
    // The state gets what it needs up to a share of the line; the title takes the rest.
    constexpr double kMaxStateShare = 0.45;
    const double room = std::max(0.0, width - kHeaderGap);
    const double stateWidth = std::min(fm.horizontalAdvance(state), room * kMaxStateShare);
    const QString shownState = fm.elidedText(state, Qt::ElideRight, stateWidth);
    const double titleWidth = room - fm.horizontalAdvance(shownState);
    return {fm.elidedText(title, Qt::ElideRight, std::max(0.0, titleWidth)), shownState};
}

void AttentionMapCanvas::drawLayer(QPainter& p, const Layer& layer) const {
    const AttentionMap& m = layer.result.map;
    if (layer.image().isNull() || m.width <= 0 || m.height <= 0) return;
    const auto v = m_view.visible();
    const double kPerCell = double(m.rect.k1 - m.rect.k0) / m.width;
    const double qPerCell = double(m.rect.q1 - m.rect.q0) / m.height;
    // Only the cells in view are drawn, so a deep zoom never scales the whole image up.
    const int cx0 = std::clamp(int(std::floor((v.k0 - m.rect.k0) / kPerCell)), 0, m.width);
    const int cx1 = std::clamp(int(std::ceil((v.k1 - m.rect.k0) / kPerCell)), 0, m.width);
    const int cy0 = std::clamp(int(std::floor((v.q0 - m.rect.q0) / qPerCell)), 0, m.height);
    const int cy1 = std::clamp(int(std::ceil((v.q1 - m.rect.q0) / qPerCell)), 0, m.height);
    if (cx1 <= cx0 || cy1 <= cy0) return;
    const QRectF plot = plotRect();
    const QPointF a(m_view.keyToX(m.rect.k0 + cx0 * kPerCell), m_view.queryToY(m.rect.q0 + cy0 * qPerCell));
    const QPointF b(m_view.keyToX(m.rect.k0 + cx1 * kPerCell), m_view.queryToY(m.rect.q0 + cy1 * qPerCell));
    p.drawImage(QRectF(a, b).translated(plot.topLeft()), layer.image(), QRectF(cx0, cy0, cx1 - cx0, cy1 - cy0));
}

void AttentionMapCanvas::drawOverlays(QPainter& p) const {
    const QRectF plot = plotRect();
    const ViewOptions& o = m_session->options();
    const double ppt = m_view.pixelsPerToken();
    if (o.showSinks) {
        for (int64_t s : m_session->sinkKeys(m_head)) {
            const double x = plot.left() + m_view.keyToX(double(s));
            const QRectF col(x, plot.top(), std::max(ppt, 2.0), plot.height());
            if (std::count(m_excluded.begin(), m_excluded.end(), s))
                p.fillRect(col, QBrush(kSinkColor, Qt::BDiagPattern));
            else
                p.fillRect(col, kSinkColor);
        }
    }
    if (o.showCoverage) drawCoverage(p);
    if (!o.variantOverlay.isEmpty()) drawVariantMask(p);
    if (m_session->inspectedQuery() >= 0) {
        const double y = plot.top() + m_view.queryToY(double(m_session->inspectedQuery()));
        p.setPen(QPen(kInspectColor, 1, Qt::DashLine));
        p.drawRect(QRectF(plot.left(), y, plot.width(), std::max(ppt, 1.0)));
    }
}

const AttentionMapCanvas::CoverageCache& AttentionMapCanvas::coverage() const {
    const ViewOptions& o = m_session->options();
    const ModelAnalysis* model = m_session->analysis().get();
    CoverageCache& c = m_coverage;
    if (c.head == m_head && c.gamma == o.gamma && c.blockSize == o.blockSize && c.analysis == model) return c;
    c = {m_head, o.gamma, o.blockSize, model, {}, nullptr};
    if (const HeadAnalysis* h = m_session->headAnalysis(m_head)) {
        for (const BlockSparsity& b : h->blocks) {
            if (b.blockSize == o.blockSize) {
                c.blocks = &b;
                c.kept = gammaBlockMask(b, o.gamma);
            }
        }
    }
    return c;
}

void AttentionMapCanvas::drawCoverage(QPainter& p) const {
    // Blocks outside the gamma-coverage set are dimmed: what a block-sparse kernel would skip.
    const CoverageCache& c = coverage();
    if (!c.blocks || c.kept.size() != size_t(c.blocks->blockRows * c.blocks->blockCols)) return;
    const QRectF plot = plotRect();
    const auto v = m_view.visible();
    const int64_t b = c.blocks->blockSize;
    QColor dim = palette().color(QPalette::Mid);
    dim.setAlpha(kCoverageAlpha);
    for (int64_t r = v.q0 / b; r <= (v.q1 - 1) / b && r < c.blocks->blockRows; ++r) {
        for (int64_t col = v.k0 / b; col <= (v.k1 - 1) / b && col < c.blocks->blockCols; ++col) {
            const size_t i = size_t(r * c.blocks->blockCols + col);
            if (c.kept[i] || !c.blocks->allowed[i]) continue;
            const QPointF a(m_view.keyToX(double(col * b)), m_view.queryToY(double(r * b)));
            const QPointF e(m_view.keyToX(double((col + 1) * b)), m_view.queryToY(double((r + 1) * b)));
            p.fillRect(QRectF(a, e).translated(plot.topLeft()), dim);
        }
    }
}

void AttentionMapCanvas::drawVariantMask(QPainter& p) const {
    // The variant's mask_mod is evaluated at one (query, key) per few-pixel cell of the screen:
    // cheap at any zoom, and exact per token once a token spans more than the cell.
    auto variant = parseVariant(m_session->options().variantOverlay.toStdString());
    if (!variant) return;
    const QRectF plot = plotRect();
    const int64_t t = m_session->trace()->tokens();
    const double step = std::max(double(kVariantCellPixels), m_view.pixelsPerToken());
    QColor shade = palette().color(QPalette::Dark);
    shade.setAlpha(kVariantAlpha);
    for (double y = 0; y < plot.height(); y += step) {
        const int64_t q = m_view.queryAt(y + step / 2);
        if (q < 0) continue;
        for (double x = 0; x < plot.width(); x += step) {
            const int64_t k = m_view.keyAt(x + step / 2);
            if (k >= 0 && !variantAllows(*variant, t, q, k))
                p.fillRect(QRectF(plot.left() + x, plot.top() + y, step, step), shade);
        }
    }
}

void AttentionMapCanvas::drawAxes(QPainter& p) const {
    const QRectF plot = plotRect();
    const auto v = m_view.visible();
    const auto& tokens = m_session->trace()->metadata().tokens;
    const double ppt = m_view.pixelsPerToken();
    p.setPen(palette().color(QPalette::Text));
    p.drawRect(plot.adjusted(-0.5, -0.5, 0.5, 0.5));
    QFont f = font();
    f.setPointSizeF(f.pointSizeF() * 0.85);
    p.setFont(f);
    const QFontMetricsF fm(f);
    const bool labels = ppt >= kLabelMinPixels && !tokens.empty();
    auto label = [&](int64_t i) {
        return labels && size_t(i) < tokens.size() ? shortToken(tokens[size_t(i)]) : QString::number(i);
    };
    // A vision trace away from token level: the axes count patch rows ("r5" at the first token
    // of patch row 5, rows in 1-2-5 steps) and faint lines mark every patch row on the plot, so
    // the 2-D layout reads from the 1-D token order.
    if (auto vision = m_session->trace()->metadata().kind == TraceKind::Vision ? visionLayout(*m_session->trace())
                                                                               : Result<VisionLayout>(Status());
        !labels && vision.ok() && vision->cols > 0) {
        drawPatchRowAxes(p, *vision, fm);
        return;
    }
    const double step = labels ? std::max(1.0, std::ceil(fm.height() / ppt))
                               : niceTickStep(std::max(1.0, (v.k1 - v.k0) / double(kTargetTicks)));
    const double half = labels ? 0.5 : 0.0;  // labels sit on cell centres, ticks on boundaries
    for (double k = std::ceil(v.k0 / step) * step; k < v.k1; k += step) {
        const double x = plot.left() + m_view.keyToX(k + half);
        if (x < plot.left() || x > plot.right())
            continue;  // a partly visible first/last token: its label would spill past the plot
        p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + 4));
        p.save();
        p.translate(x + fm.ascent() / 2 - 1, plot.bottom() + 6);
        p.rotate(90);
        p.drawText(QPointF(0, 0), label(int64_t(k)));
        p.restore();
    }
    const double qStep = labels ? step : niceTickStep(std::max(1.0, (v.q1 - v.q0) / double(kTargetTicks)));
    for (double q = std::ceil(v.q0 / qStep) * qStep; q < v.q1; q += qStep) {
        const double y = plot.top() + m_view.queryToY(q + half);
        if (y < plot.top() || y > plot.bottom()) continue;
        p.drawLine(QPointF(plot.left() - 4, y), QPointF(plot.left(), y));
        p.drawText(QRectF(0, y - fm.height() / 2, plot.left() - 6, fm.height()), Qt::AlignRight | Qt::AlignVCenter,
                   label(int64_t(q)));
    }
    p.drawText(QRectF(plot.left(), height() - fm.height() - 2, plot.width(), fm.height()), Qt::AlignRight, tr("key →"));
    p.save();
    p.translate(fm.height() / 2 + 1, plot.top());
    p.rotate(90);
    p.drawText(QPointF(0, 0), tr("query →"));
    p.restore();
}

void AttentionMapCanvas::drawPatchRowAxes(QPainter& p, const VisionLayout& layout, const QFontMetricsF& fm) const {
    const QRectF plot = plotRect();
    const auto v = m_view.visible();
    const double rowPixels = m_view.pixelsPerToken() * layout.cols;
    const int rowStep = int(niceTickStep(std::max(1.0, std::ceil(fm.height() * 1.5 / rowPixels))));
    auto rowStart = [&](int r) { return double(layout.patchToken(r, 0)); };
    if (rowPixels >= kPatchRowLineMinPixels) {  // every patch row boundary, faint
        p.save();
        p.setPen(QPen(QColor(255, 255, 255, 40), 0));
        p.setClipRect(plot);
        for (int r = 0; r <= layout.rows; ++r) {
            const double t = rowStart(r);
            if (t < v.k0 || t > v.k1) continue;
            const double x = plot.left() + m_view.keyToX(t);
            p.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()));
        }
        for (int r = 0; r <= layout.rows; ++r) {
            const double t = rowStart(r);
            if (t < v.q0 || t > v.q1) continue;
            const double y = plot.top() + m_view.queryToY(t);
            p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y));
        }
        p.restore();
    }
    auto label = [&](int r) { return r == 0 && layout.prefix > 0 ? tr("patches") : tr("r%1").arg(r); };
    for (int r = 0; r < layout.rows; r += rowStep) {
        const double t = rowStart(r);
        if (t >= v.k0 && t < v.k1) {
            const double x = plot.left() + m_view.keyToX(t);
            p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + 4));
            p.save();
            p.translate(x + fm.ascent() / 2 - 1, plot.bottom() + 6);
            p.rotate(90);
            p.drawText(QPointF(0, 0), label(r));
            p.restore();
        }
        if (t >= v.q0 && t < v.q1) {
            const double y = plot.top() + m_view.queryToY(t);
            p.drawLine(QPointF(plot.left() - 4, y), QPointF(plot.left(), y));
            p.drawText(QRectF(0, y - fm.height() / 2, plot.left() - 6, fm.height()), Qt::AlignRight | Qt::AlignVCenter,
                       label(r));
        }
    }
    p.drawText(QRectF(plot.left(), height() - fm.height() - 2, plot.width(), fm.height()), Qt::AlignRight,
               tr("key (patch rows) →"));
    p.save();
    p.translate(fm.height() / 2 + 1, plot.top());
    p.rotate(90);
    p.drawText(QPointF(0, 0), tr("query (patch rows) →"));
    p.restore();
}

void AttentionMapCanvas::drawColorBar(QPainter& p) const {
    const QRectF plot = plotRect();
    const MapColoring c = coloring();
    const QRectF bar(plot.right() + 10, plot.top(), 14, plot.height());
    const int steps = std::max(2, int(bar.height()));
    for (int i = 0; i < steps; ++i) {
        const double t = 1.0 - double(i) / (steps - 1);
        p.fillRect(QRectF(bar.left(), bar.top() + i, bar.width(), 1.0), colormapColor(c.colormap, t));
    }
    p.setPen(palette().color(QPalette::Text));
    p.drawRect(bar);
    const QFontMetricsF fm(p.font());
    const QRectF text(bar.right() + 3, bar.top() - fm.height() / 2, kRightMargin - bar.width() - 14, fm.height());
    p.drawText(text, Qt::AlignLeft | Qt::AlignVCenter, QString::number(double(c.vmax), 'g', 2));
    p.drawText(text.translated(0, bar.height()), Qt::AlignLeft | Qt::AlignVCenter,
               c.logScale ? QString::number(double(c.vmin()), 'g', 2) : QStringLiteral("0"));
    p.drawText(text.translated(0, bar.height() / 2), Qt::AlignLeft | Qt::AlignVCenter,
               c.logScale ? tr("log") : tr("lin"));
}

HeatmapFigure AttentionMapCanvas::figure() const {
    const MapResult* shown =
        m_detail && isUpToDate() ? &m_detail->result : (m_overview ? &m_overview->result : nullptr);
    const QString title = tr("Layer %1, head %2").arg(m_head.layer).arg(m_head.head);
    if (!shown || !m_session->isOpen()) {
        HeatmapFigure empty;
        empty.title = title;
        return empty;
    }
    const ViewOptions& o = m_session->options();
    HeatmapFigure f = mapFigure(shown->map, traceTokens(m_session->trace()->metadata()), o.maxPooling, title);
    f.subtitle = QStringLiteral("%1 · %2%3")
                     .arg(QString::fromStdString(m_session->trace()->metadata().model), f.subtitle,
                          m_excluded.empty() ? QString() : tr(" · sinks excluded"));
    if (!o.logScale) {
        f.scale = ColorScale::Linear;
        f.vmin = 0;
    }
    if (!o.showCausal)  // masked cells drawn as zero, as on screen
        for (float& v : f.values)
            if (std::isnan(v)) v = 0;
    return f;
}

}  // namespace attnscope
