#include "headgridcanvas.h"

#include <QMouseEvent>
#include <QPainter>
#include <QToolTip>

#include <algorithm>

#include "analysisrunner.h"
#include "colormap.h"
#include "computeservice.h"
#include "mapcoloring.h"
#include "mapjobs.h"
#include "visionview.h"

namespace attnscope {

namespace {
constexpr int kThumbCells = 48;  ///< thumbnail resolution (cells per side)
constexpr double kLabelWidth = 28, kHeaderHeight = 16;
constexpr double kMinCell = 20, kMaxCell = 96;
constexpr double kFrame = 4;              ///< metric frame width
constexpr int kThumbPriority = -1;        ///< below the visible map's jobs
constexpr int kPendingAlpha = 150;        ///< veil over layers the running analysis has not reached
constexpr int kLabelBandAlpha = 110;      ///< dark band under a cell's label
constexpr double kLabelScale = 0.8;       ///< grid text, of the widget font
constexpr double kSmallLabelScale = 0.7;  ///< a cell label that does not fit at kLabelScale
const QString kMetricColormap = QStringLiteral("magma");
const QString kTagPrefix = QStringLiteral("head:thumb:");

quint64 keyOf(HeadId h) { return (quint64(uint32_t(h.layer)) << 32) | uint32_t(h.head); }
}  // namespace

HeadGridCanvas::HeadGridCanvas(TraceSession* session, AnalysisRunner* analysis, QWidget* parent)
    : QWidget(parent), m_session(session), m_analysis(analysis) {
    setMouseTracking(true);
    QSizePolicy policy(QSizePolicy::Preferred, QSizePolicy::Preferred);
    policy.setHeightForWidth(true);
    setSizePolicy(policy);
    connect(session, &TraceSession::traceOpened, this, &HeadGridCanvas::requestThumbnails);
    connect(session, &TraceSession::traceClosed, this, [this] {
        m_thumbs.clear();
        m_thumbQuery = -1;
        m_freshThumbs = 0;
        updateGeometry();
        update();
    });
    // On a vision trace the thumbnails follow the inspected query (a patch clicked in the Vision
    // tab, a query row clicked in the map).
    connect(session, &TraceSession::inspected, this, [this](qint64 query, qint64) {
        if (m_thumbQuery < 0 || query < 0 || query == m_thumbQuery || query >= m_session->trace()->tokens()) return;
        m_thumbQuery = query;
        requestVisionThumbnails(query);
    });
    connect(session, &TraceSession::currentChanged, this, qOverload<>(&QWidget::update));
    connect(session, &TraceSession::comparedChanged, this, qOverload<>(&QWidget::update));
    connect(session, &TraceSession::optionsChanged, this, qOverload<>(&QWidget::update));
    connect(analysis, &AnalysisRunner::analysisFinished, this, qOverload<>(&QWidget::update));
    connect(analysis, &AnalysisRunner::layerFinished, this, qOverload<>(&QWidget::update));
}

void HeadGridCanvas::requestThumbnails() {
    m_thumbs.clear();
    updateGeometry();
    const auto trace = m_session->trace();
    // A vision trace's heads read best as images (DINO's per-head [CLS] maps): each thumbnail is
    // the first prefix token's attention over the patch grid, or the centre patch's without one,
    // until a query is inspected.
    if (auto layout = visionLayout(*trace)) {
        m_thumbQuery = layout->prefix > 0 ? 0 : layout->patchToken(layout->rows / 2, layout->cols / 2);
        requestVisionThumbnails(m_thumbQuery);
        return;
    }
    m_thumbQuery = -1;
    std::shared_ptr<HeadCache> cache = m_session->cache();  // owned by the job too
    const int64_t t = trace->tokens();
    for (int l = 0; l < trace->numLayers(); ++l) {
        for (int h = 0; h < trace->config(l).heads; ++h) {
            MapRequest r;
            r.layer = l;
            r.head = h;
            r.rect = {0, t, 0, t};
            r.width = r.height = int(std::min<int64_t>(t, kThumbCells));
            r.sampledRows = t > kExactOverviewTokens;  // thumbnails of long sequences: sampled rows
            m_session->compute()->submitCpu(
                thumbTag({l, h}),
                [cache, trace, r](const CancelToken& cancel) { return computeMap(*cache, r, cancel); }, this,
                [this](Result<MapResult> m) {
                    if (m)  // a failed thumbnail stays blank; the map of the head says why
                        showThumbnail(*m);
                },
                kThumbPriority);
        }
    }
    update();
}

QString HeadGridCanvas::thumbTag(HeadId h) { return kTagPrefix + QStringLiteral("%1:%2").arg(h.layer).arg(h.head); }

void HeadGridCanvas::requestVisionThumbnails(int64_t query) {
    const auto trace = m_session->trace();
    m_freshThumbs = 0;
    for (int l = 0; l < trace->numLayers(); ++l) {
        for (int h = 0; h < trace->config(l).heads; ++h) {
            m_session->compute()->submitCpu(
                thumbTag({l, h}),
                [trace, l, h, query](const CancelToken&) { return queryPatchAttention(*trace, l, h, query); }, this,
                [this, trace](Result<QueryPatchAttention> row) {
                    // Failed: blank, as above; the old thumbnail stays until the new query's arrives.
                    if (!row || trace != m_session->trace() || row->query != m_thumbQuery) return;
                    // The log scale of the map thumbnails (MapColoring's default), in core's colormap.
                    m_thumbs.insert(keyOf({row->layer, row->head}), visionHeatmap(*row, MapColoring{}.logScale));
                    ++m_freshThumbs;
                    update(cellRect({row->layer, row->head}).toAlignedRect());
                },
                kThumbPriority);
        }
    }
    update();
}

QImage HeadGridCanvas::thumbnail(HeadId head) const { return m_thumbs.value(keyOf(head)); }

void HeadGridCanvas::showThumbnail(const MapResult& r) {
    MapColoring c;
    c.vmax = pooledMaximum(r.map, false);
    m_thumbs.insert(keyOf({r.request.layer, r.request.head}),
                    colorizeMap(r.map, c, true, palette().color(QPalette::Mid)));
    update(cellRect({r.request.layer, r.request.head}).toAlignedRect());
}

int HeadGridCanvas::maxHeads() const {
    if (!m_session->isOpen()) return 1;
    int n = 1;
    for (int l = 0; l < m_session->trace()->numLayers(); ++l) n = std::max(n, m_session->trace()->config(l).heads);
    return n;
}

double HeadGridCanvas::cellSize(int w) const { return std::clamp((w - kLabelWidth) / maxHeads(), kMinCell, kMaxCell); }

int HeadGridCanvas::heightForWidth(int w) const {
    const int layers = m_session->isOpen() ? m_session->trace()->numLayers() : 1;
    return int(kHeaderHeight + layers * cellSize(w)) + 2;
}

QSize HeadGridCanvas::sizeHint() const {
    const int w = int(kLabelWidth + maxHeads() * kMinCell * 1.5);
    return {w, heightForWidth(w)};
}

QRectF HeadGridCanvas::cellRect(HeadId h) const {
    const double c = cellSize(width());
    return {kLabelWidth + h.head * c, kHeaderHeight + h.layer * c, c, c};
}

std::optional<HeadId> HeadGridCanvas::headAt(QPointF pos) const {
    if (!m_session->isOpen()) return std::nullopt;
    const double c = cellSize(width());
    const int head = int(std::floor((pos.x() - kLabelWidth) / c));
    const int layer = int(std::floor((pos.y() - kHeaderHeight) / c));
    if (layer < 0 || layer >= m_session->trace()->numLayers() || head < 0 ||
        head >= m_session->trace()->config(layer).heads)
        return std::nullopt;
    return HeadId{layer, head};
}

void HeadGridCanvas::click(HeadId head, bool shift) {
    if (shift)
        m_session->toggleCompared(head);
    else
        m_session->select(head);
}

void HeadGridCanvas::mousePressEvent(QMouseEvent* e) {
    if (const auto h = headAt(e->position())) click(*h, e->modifiers() & Qt::ShiftModifier);
}

void HeadGridCanvas::mouseMoveEvent(QMouseEvent* e) {
    const auto h = headAt(e->position());
    if (!h) {
        QToolTip::hideText();
        return;
    }
    QString tip = tr("Layer %1, head %2").arg(h->layer).arg(h->head);
    if (const HeadAnalysis* a = m_analysis->head(h->layer, h->head))
        tip += QStringLiteral("\n%1: %2")
                   .arg(QString::fromStdString(a->role.label), QString::fromStdString(a->role.evidence));
    if (m_thumbQuery >= 0 && m_session->isOpen()) {
        const auto& names = m_session->trace()->metadata().tokens;
        const QString who = m_thumbQuery < int64_t(names.size()) ? QString::fromStdString(names[size_t(m_thumbQuery)])
                                                                 : QStringLiteral("token %1").arg(m_thumbQuery);
        tip += tr("\nThumbnail: the attention of %1 over the patch grid").arg(who);
    }
    tip += tr("\nClick: show · Shift-click: compare");
    QToolTip::showText(e->globalPosition().toPoint(), tip, this);
}

void HeadGridCanvas::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().color(QPalette::Base));
    if (!m_session->isOpen()) return;
    const Trace& t = *m_session->trace();
    const double c = cellSize(width());
    QFont f = font();
    f.setPointSizeF(f.pointSizeF() * kLabelScale);
    p.setFont(f);
    QFont small = f;  // for cell labels that do not fit at the grid's own size
    small.setPointSizeF(font().pointSizeF() * kSmallLabelScale);
    p.setPen(palette().color(QPalette::Text));
    for (int h = 0; h < maxHeads(); ++h)
        p.drawText(QRectF(kLabelWidth + h * c, 0, c, kHeaderHeight), Qt::AlignCenter, QStringLiteral("H%1").arg(h));
    const ViewOptions& o = m_session->options();
    const auto& compared = m_session->compared();
    const QFontMetricsF fm(f), smallFm(small);
    for (int l = 0; l < t.numLayers(); ++l) {
        // While the analysis runs, layers it has not reached yet are greyed out: the grid fills in.
        const bool pending = m_analysis->isRunning() && !m_analysis->head(l, 0);
        p.setPen(palette().color(pending ? QPalette::PlaceholderText : QPalette::Text));
        p.drawText(QRectF(0, kHeaderHeight + l * c, kLabelWidth - 2, c), Qt::AlignRight | Qt::AlignVCenter,
                   QStringLiteral("L%1").arg(l));
        for (int h = 0; h < t.config(l).heads; ++h) {
            const HeadId id{l, h};
            const QRectF cell = cellRect(id).adjusted(1, 1, -1, -1);
            QString text;
            const auto value = headMetric(*m_analysis, id, metric, o.gamma, o.blockSize, &text);
            p.fillRect(cell, value ? colormapColor(kMetricColormap, *value) : palette().color(QPalette::Window));
            const QRectF inner = value ? cell.adjusted(kFrame, kFrame, -kFrame, -kFrame) : cell;
            if (auto it = m_thumbs.find(keyOf(id)); it != m_thumbs.end()) {
                if (m_thumbQuery >= 0) {  // a patch grid keeps its aspect ratio, centred in the cell
                    p.fillRect(inner, palette().color(QPalette::AlternateBase));
                    const QSizeF fitted = QSizeF(it->size()).scaled(inner.size(), Qt::KeepAspectRatio);
                    p.drawImage(QRectF(inner.center() - QPointF(fitted.width(), fitted.height()) / 2, fitted), *it);
                } else {
                    p.drawImage(inner, *it);
                }
            } else
                p.fillRect(inner, palette().color(QPalette::AlternateBase));
            if (pending) {
                QColor veil = palette().color(QPalette::Window);
                veil.setAlpha(kPendingAlpha);
                p.fillRect(cell, veil);
            }
            const QRectF textRect = inner.adjusted(2, 0, -2, -1);
            const bool fits = fm.horizontalAdvance(text) <= textRect.width();
            const QFontMetricsF& lfm = fits ? fm : smallFm;
            if (value && c >= 2 * kMinCell && lfm.horizontalAdvance(text) <= textRect.width()) {
                // On a dark band, so the text reads on any thumbnail.
                const QRectF band(textRect.left() - 1, textRect.bottom() - lfm.height(),
                                  lfm.horizontalAdvance(text) + 2, lfm.height());
                p.fillRect(band, QColor(0, 0, 0, kLabelBandAlpha));
                p.setPen(Qt::white);
                p.setFont(fits ? f : small);
                p.drawText(textRect, Qt::AlignBottom | Qt::AlignLeft, text);
                p.setFont(f);
            }
            if (const int i = int(compared.indexOf(id)); i >= 0) {
                p.setPen(QPen(palette().color(QPalette::Link), 2, Qt::DashLine));
                p.drawRect(cell.adjusted(1, 1, -1, -1));
                p.setPen(palette().color(QPalette::Link));
                p.drawText(cell.adjusted(3, 1, -3, -1), Qt::AlignTop | Qt::AlignRight, QString::number(i + 1));
            }
            if (id == m_session->current()) {
                p.setPen(QPen(palette().color(QPalette::Highlight), 3));
                p.drawRect(cell);
            }
        }
    }
}

}  // namespace attnscope
