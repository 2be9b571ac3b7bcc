#include "visionview.h"

#include <QHBoxLayout>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

#include "attnscope/image.h"
#include "computeservice.h"
#include "tracesession.h"

namespace attnscope {

namespace {
const QString kRowTag = QStringLiteral("head:vision");
const QString kImageTag = QStringLiteral("head:vision-image");
constexpr double kHeatmapOpacity = 0.6;  ///< over the image; the grid alone shows it opaque
constexpr int kGridLineMinPixels = 6;    ///< patch lines are drawn when a patch is at least this wide
constexpr int kPrefixPanelWidth = 220;
const QString kHeadsTag = QStringLiteral("head:vision-heads");
constexpr int kStripHeight = 118;  ///< the small multiples' row: heatmap, then its label
constexpr int kStripLabel = 16;
constexpr int kStripGap = 6;
constexpr int kStripMaxCell = 96;
}  // namespace

VisionGeometry VisionGeometry::fit(QRectF area, int width, int height, int rows, int cols) {
    VisionGeometry g;
    g.rows = rows;
    g.cols = cols;
    if (width <= 0 || height <= 0 || area.isEmpty()) return g;
    const double s = std::min(area.width() / width, area.height() / height);
    const QSizeF size(width * s, height * s);
    g.target = QRectF(area.center() - QPointF(size.width() / 2, size.height() / 2), size);
    return g;
}

std::optional<std::pair<int, int>> VisionGeometry::patchAt(QPointF p) const {
    if (rows <= 0 || cols <= 0 || target.isEmpty()) return std::nullopt;
    const double fx = (p.x() - target.left()) / target.width(), fy = (p.y() - target.top()) / target.height();
    if (fx < 0 || fy < 0 || fx >= 1 || fy >= 1) return std::nullopt;
    return std::pair{std::min(rows - 1, int(fy * rows)), std::min(cols - 1, int(fx * cols))};
}

QRectF VisionGeometry::patchRect(int r, int c) const {
    const double x0 = target.left() + target.width() * c / cols, x1 = target.left() + target.width() * (c + 1) / cols;
    const double y0 = target.top() + target.height() * r / rows, y1 = target.top() + target.height() * (r + 1) / rows;
    return QRectF(QPointF(x0, y0), QPointF(x1, y1));
}

QImage visionHeatmap(const QueryPatchAttention& row, bool logScale) {
    ColorizeOptions o;  // core's colormap and scale: the same colours as the maps and the CLI's PNGs
    o.scale = logScale ? ColorScale::Log : ColorScale::Linear;
    const Image img = colorize(row.patches, row.cols, row.rows, o);
    QImage out(img.width, img.height, QImage::Format_RGB888);
    for (int y = 0; y < img.height; ++y)
        std::copy_n(img.rgb.data() + size_t(y) * size_t(img.width) * 3, size_t(img.width) * 3, out.scanLine(y));
    return out;
}

VisionCanvas::VisionCanvas(QWidget* parent) : QWidget(parent) {
    setMinimumSize(200, 200);
    setCursor(Qt::CrossCursor);
}

void VisionCanvas::setPicture(QImage image, int rows, int cols) {
    m_picture = std::move(image);
    m_rows = rows;
    m_cols = cols;
    m_heatmap = {};
    update();
}

void VisionCanvas::setHeatmap(QImage heatmap, std::optional<std::pair<int, int>> query) {
    m_heatmap = std::move(heatmap);
    m_query = query;
    update();
}

VisionGeometry VisionCanvas::geometryNow() const {
    // Without an image the grid's patches are square.
    const int w = m_picture.isNull() ? m_cols : m_picture.width(), h = m_picture.isNull() ? m_rows : m_picture.height();
    return VisionGeometry::fit(QRectF(rect()).adjusted(4, 4, -4, -4), w, h, m_rows, m_cols);
}

void VisionCanvas::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().window());
    const VisionGeometry g = geometryNow();
    if (g.target.isEmpty()) return;
    if (!m_picture.isNull()) p.drawImage(g.target, m_picture);
    if (!m_heatmap.isNull()) {
        p.setOpacity(m_picture.isNull() ? 1.0 : kHeatmapOpacity);
        p.setRenderHint(QPainter::SmoothPixmapTransform, false);  // one block per patch
        p.drawImage(g.target, m_heatmap);
        p.setOpacity(1.0);
    }
    if (g.target.width() / std::max(1, m_cols) >= kGridLineMinPixels) {
        p.setPen(QPen(QColor(255, 255, 255, 50), 0));
        for (int c = 1; c < m_cols; ++c) {
            const double x = g.patchRect(0, c).left();
            p.drawLine(QPointF(x, g.target.top()), QPointF(x, g.target.bottom()));
        }
        for (int r = 1; r < m_rows; ++r) {
            const double y = g.patchRect(r, 0).top();
            p.drawLine(QPointF(g.target.left(), y), QPointF(g.target.right(), y));
        }
    }
    if (m_query) {
        p.setPen(QPen(Qt::white, 2));
        p.setBrush(Qt::NoBrush);
        p.drawRect(g.patchRect(m_query->first, m_query->second));
    }
}

void VisionCanvas::mousePressEvent(QMouseEvent* e) {
    if (e->button() != Qt::LeftButton) return;
    if (auto patch = geometryNow().patchAt(e->position())) emit patchClicked(patch->first, patch->second);
}

VisionHeadStrip::VisionHeadStrip(QWidget* parent) : QWidget(parent) {
    setFixedHeight(kStripHeight);
    setCursor(Qt::PointingHandCursor);
}

void VisionHeadStrip::setRows(VisionHeadRows rows, int currentHead, int gridRows, int gridCols) {
    m_rows = std::move(rows);
    m_current = currentHead;
    m_gridRows = gridRows;
    m_gridCols = gridCols;
    update();
}

void VisionHeadStrip::clear() {
    m_rows = {};
    m_current = -1;
    update();
}

QRectF VisionHeadStrip::cellRect(int h) const {
    const int n = int(m_rows.heatmaps.size());
    if (h < 0 || h >= n || m_gridRows <= 0 || m_gridCols <= 0) return {};
    // Every head in one row: cells as large as the width allows, the grid's aspect ratio kept.
    const double side = std::min<double>(
        {double(kStripMaxCell), double(height() - kStripLabel - 2), (width() - kStripGap * (n + 1)) / double(n)});
    if (side <= 2) return {};
    const double w = m_gridCols >= m_gridRows ? side : side * m_gridCols / m_gridRows;
    const double hgt = m_gridRows >= m_gridCols ? side : side * m_gridRows / m_gridCols;
    return {kStripGap + h * (side + kStripGap) + (side - w) / 2, 1 + (side - hgt) / 2, w, hgt};
}

void VisionHeadStrip::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), palette().window());
    p.setRenderHint(QPainter::SmoothPixmapTransform, false);
    for (int h = 0; h < int(m_rows.heatmaps.size()); ++h) {
        const QRectF cell = cellRect(h);
        if (cell.isEmpty()) continue;
        p.drawImage(cell, m_rows.heatmaps[size_t(h)]);
        if (h == m_current) {
            p.setPen(QPen(palette().color(QPalette::Highlight), 3));
            p.drawRect(cell.adjusted(-2, -2, 2, 2));
        }
        p.setPen(palette().color(QPalette::Text));
        const QString label = h < int(m_rows.prefixMass.size()) && m_rows.prefixMass[size_t(h)] >= 0.005f
                                  ? tr("H%1 · %2").arg(h).arg(double(m_rows.prefixMass[size_t(h)]), 0, 'f', 2)
                                  : tr("H%1").arg(h);
        p.drawText(
            QRectF(cell.center().x() - kStripMaxCell, kStripHeight - kStripLabel, 2 * kStripMaxCell, kStripLabel),
            Qt::AlignCenter, label);
    }
}

void VisionHeadStrip::mousePressEvent(QMouseEvent* e) {
    if (e->button() != Qt::LeftButton) return;
    for (int h = 0; h < int(m_rows.heatmaps.size()); ++h)
        if (cellRect(h).adjusted(-kStripGap / 2.0, 0, kStripGap / 2.0, kStripLabel).contains(e->position())) {
            emit headClicked(h);
            return;
        }
}

VisionView::VisionView(TraceSession* session, QWidget* parent) : QWidget(parent), m_session(session) {
    m_canvas = new VisionCanvas(this);
    m_heads = new VisionHeadStrip(this);
    m_heads->setToolTip(
        tr("This query in every head of the layer (each in its own range; the number is the "
           "mass on the prefix tokens). Click a head to show it above."));
    m_summary = new QLabel(this);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_prefix = new QLabel(this);
    m_prefix->setAlignment(Qt::AlignTop | Qt::AlignLeft);
    m_prefix->setTextFormat(Qt::RichText);
    m_prefix->setFixedWidth(kPrefixPanelWidth);
    m_prefix->setWordWrap(true);
    auto* body = new QHBoxLayout;
    body->addWidget(m_canvas, 1);
    body->addWidget(m_prefix);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(m_summary);
    layout->addLayout(body, 1);
    layout->addWidget(m_heads);

    connect(session, &TraceSession::traceOpened, this, &VisionView::traceChanged);
    connect(session, &TraceSession::traceClosed, this, &VisionView::traceChanged);
    connect(session, &TraceSession::currentChanged, this, &VisionView::request);
    connect(session, &TraceSession::optionsChanged, this, &VisionView::request);
    connect(m_heads, &VisionHeadStrip::headClicked, this, [this](int h) {
        m_session->select({m_session->current().layer, h});
    });
    // A clicked patch is the session's inspected query (the Heads dock's thumbnails, the neuron
    // view and the token view follow it); a query row clicked in the map comes back here.
    connect(m_canvas, &VisionCanvas::patchClicked, this, [this](int r, int c) {
        if (!m_layout) return;
        setQuery(m_layout->patchToken(r, c));
        m_session->inspect(m_query, std::max<int64_t>(0, m_session->inspectedKey()));
    });
    connect(session, &TraceSession::inspected, this, [this](qint64 query, qint64) {
        if (query != m_query) setQuery(query);
    });
    traceChanged();
}

void VisionView::traceChanged() {
    m_row.reset();
    m_image = {};
    m_layout.reset();
    m_query = -1;
    auto trace = m_session->isOpen() ? m_session->trace() : nullptr;
    if (trace)
        if (auto l = visionLayout(*trace)) m_layout = *l;
    m_heads->clear();
    if (!m_layout) {
        m_canvas->setPicture({}, 0, 0);
        m_summary->setText(tr("Not a vision trace: the Vision view needs kind 'vision' with a patch grid."));
        m_prefix->clear();
        return;
    }
    m_canvas->setPicture({}, m_layout->rows, m_layout->cols);
    m_query = m_layout->patchToken(m_layout->rows / 2, m_layout->cols / 2);
    if (trace->imageTensor())
        m_session->compute()->submitCpu(
            kImageTag, [trace](const CancelToken&) { return trace->image(); }, this,
            [this, trace](Result<TraceImage> r) {
                if (!r || trace != m_session->trace() || !m_layout) return;  // no image: the grid alone
                QImage img(r->width, r->height, QImage::Format_RGB888);
                for (int y = 0; y < r->height; ++y)
                    std::copy_n(r->rgb.data() + size_t(y) * size_t(r->width) * 3, size_t(r->width) * 3,
                                img.scanLine(y));
                m_image = img;
                m_canvas->setPicture(m_image, m_layout->rows, m_layout->cols);
                if (m_row) showRow(*m_row);
            });
    request();
}

void VisionView::setQuery(int64_t query) {
    if (!m_layout || query < 0 || query >= m_layout->tokens) return;
    m_query = query;
    request();
}

bool VisionView::isUpToDate() const {
    const HeadId h = m_session->current();
    return m_row && m_row->layer == h.layer && m_row->head == h.head && m_row->query == m_query;
}

void VisionView::request() {
    if (!m_layout || !m_session->isOpen()) return;
    auto trace = m_session->trace();
    const HeadId h = m_session->current();
    const int64_t query = m_query;
    m_session->compute()->submitCpu(
        kRowTag, [trace, h, query](const CancelToken&) { return queryPatchAttention(*trace, h.layer, h.head, query); },
        this, [this](Result<QueryPatchAttention> r) { showRow(std::move(r)); });
    // The same query in every head of the layer (a layer's heads cost H rows: cheap).
    const bool logScale = m_session->options().logScale;
    m_session->compute()->submitCpu(
        kHeadsTag,
        [trace, layer = h.layer, query, logScale](const CancelToken& cancel) -> Result<VisionHeadRows> {
            VisionHeadRows out;
            out.layer = layer;
            out.query = query;
            for (int head = 0; head < trace->config(layer).heads; ++head) {
                if (cancel.cancelled()) return Status(ErrorCode::Cancelled, "cancelled");
                auto row = queryPatchAttention(*trace, layer, head, query);
                if (!row) return row.status();
                float prefix = 0;
                for (float v : row->prefix) prefix += v;
                out.heatmaps.push_back(visionHeatmap(*row, logScale));
                out.prefixMass.push_back(prefix);
            }
            return out;
        },
        this, [this](Result<VisionHeadRows> r) { showHeads(std::move(r)); });
}

void VisionView::showHeads(Result<VisionHeadRows> r) {
    if (!r || !m_layout) return;  // cancelled by a newer request; an error shows with the main row
    if (r->layer != m_session->current().layer || r->query != m_query) return;
    m_heads->setRows(std::move(*r), m_session->current().head, m_layout->rows, m_layout->cols);
}

void VisionView::showRow(Result<QueryPatchAttention> r) {
    if (r.status().code() == ErrorCode::Cancelled) return;  // a newer request replaced it
    if (!r) {
        m_summary->setText(tr("error: %1").arg(QString::fromStdString(r.message())));
        return;
    }
    if (!m_layout || r->rows != m_layout->rows || r->cols != m_layout->cols) return;  // another trace's row
    m_row = std::move(*r);
    const bool logScale = m_session->options().logScale;
    std::optional<std::pair<int, int>> patch;
    if (m_layout->isPatch(m_row->query))
        patch = std::pair{m_layout->patchRow(m_row->query), m_layout->patchCol(m_row->query)};
    m_canvas->setHeatmap(visionHeatmap(*m_row, logScale), patch);
    const auto& tokens = m_session->trace()->metadata().tokens;
    const QString name = size_t(m_row->query) < tokens.size() ? QString::fromStdString(tokens[size_t(m_row->query)])
                                                              : QString::number(m_row->query);
    double patchMass = 0;
    for (float v : m_row->patches) patchMass += v;
    m_summary->setText(tr("Layer %1, head %2: query %3 (token %4) over %5×%6 patches: mass on patches %7, largest %8 "
                          "(%9 scale). Click a patch to make it the query.")
                           .arg(m_row->layer)
                           .arg(m_row->head)
                           .arg(name)
                           .arg(m_row->query)
                           .arg(m_row->rows)
                           .arg(m_row->cols)
                           .arg(patchMass, 0, 'f', 3)
                           .arg(double(m_row->maxPatch), 0, 'g', 3)
                           .arg(logScale ? tr("log") : tr("linear")));
    showPrefix();
    emit rowShown();
}

void VisionView::showPrefix() {
    if (!m_row || m_row->prefix.empty()) {
        m_prefix->setText(tr("<b>Prefix tokens</b><br>none (patches only)"));
        return;
    }
    const auto& tokens = m_session->trace()->metadata().tokens;
    QString text = tr("<b>Prefix tokens</b> (this query's attention)<br>");
    for (size_t t = 0; t < m_row->prefix.size(); ++t) {
        const QString name = t < tokens.size() ? QString::fromStdString(tokens[t]).toHtmlEscaped() : QString::number(t);
        text += QStringLiteral("%1&nbsp;&nbsp;%2<br>").arg(name).arg(double(m_row->prefix[t]), 0, 'f', 3);
    }
    m_prefix->setText(text);
}

}  // namespace attnscope
