// Heatmaps: the attention map (numeric position axes or token labels), the head grid and the
// similarity matrix (category labels, annotated cells).
#include <QFontMetricsF>
#include <QImage>
#include <QPainter>

#include <algorithm>
#include <cmath>

#include "figure.h"
#include "figurepainter.h"

namespace attnscope {

using namespace fig;

namespace {
// Up to this many cells are drawn as vector rectangles; larger maps as one image, which keeps
// SVG/PDF files small while token-level windows stay crisp at any zoom.
constexpr int kMaxVectorCells = 96 * 96;
constexpr double kMinAnnotatedCell = 18;  // points: smaller cells get no value text
constexpr int kMaxAxisTicks = 6;
const QColor kNoDataColor(215, 215, 215);
const QColor kHighlightColor(220, 20, 60);

struct Range {
    float lo, hi;
};

Range valueRange(const HeatmapFigure& f) {
    float lo = INFINITY, hi = -INFINITY, minPositive = INFINITY;
    for (float v : f.values) {
        if (!std::isfinite(v)) continue;
        lo = std::min(lo, v), hi = std::max(hi, v);
        if (v > 0) minPositive = std::min(minPositive, v);
    }
    if (f.scale == ColorScale::Log) lo = minPositive;
    if (std::isfinite(f.vmin)) lo = f.vmin;
    if (std::isfinite(f.vmax)) hi = f.vmax;
    return {lo, hi};
}

// Labels on one axis: category labels (thinned) or numeric ticks of positions.
struct AxisLabels {
    bool categories = false;
    int stride = 1;
    double extent = 0;  // space taken perpendicular to the axis
};

AxisLabels categoryLabels(const QStringList& cats, double pitch) {
    AxisLabels a;
    a.categories = true;
    const QFont tf = font(FontRole::Tick);
    a.stride = labelStride(pitch, lineHeight(tf));
    for (int i = 0; i < cats.size(); i += a.stride)
        a.extent = std::max(a.extent, textWidth(tf, displayToken(cats[i], tf)));
    a.extent += kTickLength + kGap;
    return a;
}

// Fixed decimals keep a grid of annotations aligned and uncluttered (0.00425 reads as noise).
QString cellText(float v) {
    const float a = std::abs(v);
    return QString::number(double(v), 'f', a < 10 ? 2 : a < 100 ? 1 : 0);
}

QImage mapImage(const HeatmapFigure& f, const Axis& axis) {
    QImage img(f.cols, f.rows, QImage::Format_RGB32);
    for (int r = 0; r < f.rows; ++r) {
        auto* line = reinterpret_cast<QRgb*>(img.scanLine(r));
        for (int c = 0; c < f.cols; ++c) {
            const float v = f.values[size_t(r) * f.cols + c];
            line[c] = std::isfinite(v) ? colormapLevelColor(f.colormap, std::clamp(axis.unit(v), 0.0, 1.0)).rgb()
                                       : kNoDataColor.rgb();
        }
    }
    return img;
}

void drawCells(QPainter& p, const QRectF& plot, const HeatmapFigure& f, const Axis& axis) {
    const double cw = plot.width() / f.cols, ch = plot.height() / f.rows;
    if (f.rows * f.cols > kMaxVectorCells) {
        p.save();
        p.setRenderHint(QPainter::SmoothPixmapTransform, false);
        p.drawImage(plot, mapImage(f, axis));
        p.restore();
        return;
    }
    p.save();
    // Anti-aliased edges of adjacent cells leave faint seams; cells are axis-aligned anyway.
    p.setRenderHint(QPainter::Antialiasing, false);
    p.setPen(Qt::NoPen);
    for (int r = 0; r < f.rows; ++r)
        for (int c = 0; c < f.cols; ++c) {
            const float v = f.values[size_t(r) * f.cols + c];
            p.setBrush(std::isfinite(v) ? colormapLevelColor(f.colormap, std::clamp(axis.unit(v), 0.0, 1.0))
                                        : kNoDataColor);
            p.drawRect(QRectF(plot.left() + c * cw, plot.top() + r * ch, cw, ch));
        }
    p.restore();
    if (!f.annotate || std::min(cw, ch) < kMinAnnotatedCell) return;
    p.setFont(font(FontRole::Tick));
    for (int r = 0; r < f.rows; ++r)
        for (int c = 0; c < f.cols; ++c) {
            const float v = f.values[size_t(r) * f.cols + c];
            if (!std::isfinite(v)) continue;
            const QColor bg = colormapLevelColor(f.colormap, std::clamp(axis.unit(v), 0.0, 1.0));
            p.setPen(bg.lightnessF() < 0.5 ? Qt::white : Qt::black);
            p.drawText(QRectF(plot.left() + c * cw, plot.top() + r * ch, cw, ch), Qt::AlignCenter, cellText(v));
        }
}

void drawCategoryX(QPainter& p, const QRectF& plot, const QStringList& cats, int stride) {
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    p.setPen(Qt::black);
    const double pitch = plot.width() / cats.size(), th = lineHeight(tf);
    for (int i = 0; i < cats.size(); i += stride) {
        const double x = plot.left() + (i + 0.5) * pitch;
        p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + kTickLength));
        const QString s = displayToken(cats[i], tf);
        // Rotated to read upwards, right-aligned against the axis.
        p.save();
        p.translate(x, plot.bottom() + kTickLength + kGap);
        p.rotate(-90);
        const double w = textWidth(tf, s);
        p.drawText(QRectF(-w, -th / 2, w, th), Qt::AlignRight | Qt::AlignVCenter, s);
        p.restore();
    }
}

void drawCategoryY(QPainter& p, const QRectF& plot, const QStringList& cats, int stride, double extent) {
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    p.setPen(Qt::black);
    const double pitch = plot.height() / cats.size(), th = lineHeight(tf);
    for (int i = 0; i < cats.size(); i += stride) {
        const double y = plot.top() + (i + 0.5) * pitch;
        p.drawLine(QPointF(plot.left() - kTickLength, y), QPointF(plot.left(), y));
        p.drawText(QRectF(plot.left() - extent, y - th / 2, extent - kTickLength - kGap, th),
                   Qt::AlignRight | Qt::AlignVCenter, displayToken(cats[i], tf));
    }
}

}  // namespace

void render(QPainter& p, const QRectF& rect, const HeatmapFigure& f) {
    p.save();
    const QRectF inner = rect.adjusted(kMargin, kMargin, -kMargin, -kMargin);
    QRectF area = drawTitleBlock(p, inner, f.title, f.subtitle);
    if (f.rows <= 0 || f.cols <= 0 || f.values.size() != size_t(f.rows) * size_t(f.cols)) {
        drawNoData(p, area, QStringLiteral("no data"));
        p.restore();
        return;
    }
    const Range range = valueRange(f);
    const Axis colorAxis = makeAxis(range.lo, range.hi, f.scale == ColorScale::Log);
    const bool xCats = f.xCategories.size() == f.cols, yCats = f.yCategories.size() == f.rows;
    const Axis xAxis = makeAxis(double(f.x0), double(f.x1 > f.x0 ? f.x1 : f.x0 + f.cols), false);
    const Axis yAxis = makeAxis(double(f.y0), double(f.y1 > f.y0 ? f.y1 : f.y0 + f.rows), false);
    const QFont lf = font(FontRole::Label);

    // Margins: a first guess at the cell pitch decides how many category labels survive
    // thinning, which decides the margins; one refinement is enough because labels only shrink.
    const double barW = colorBarWidth(colorAxis, f.colorBarLabel) + 2 * kGap;
    double left = 0, bottom = 0;
    AxisLabels xl, yl;
    for (int pass = 0; pass < 2; ++pass) {
        const double availW = area.width() - barW - left, availH = area.height() - bottom;
        const double cell = std::max(0.1, std::min(availW / f.cols, availH / f.rows));
        xl = xCats ? categoryLabels(f.xCategories, cell) : AxisLabels{};
        yl = yCats ? categoryLabels(f.yCategories, cell) : AxisLabels{};
        left = (yCats ? yl.extent : yAxisWidth(yAxis, QString(), kMaxAxisTicks) - kGap) +
               (f.yLabel.isEmpty() ? 0 : lineHeight(lf) + kGap);
        bottom = (xCats ? xl.extent : xAxisHeight(QString()) - kGap) + (f.xLabel.isEmpty() ? 0 : lineHeight(lf) + kGap);
    }
    const double availW = area.width() - barW - left, availH = area.height() - bottom;
    const double cell = std::max(0.1, std::min(availW / f.cols, availH / f.rows));
    const QSizeF plotSize(cell * f.cols, cell * f.rows);
    // Centre the block (axes + plot + bar) horizontally, top-align vertically.
    const double blockW = left + plotSize.width() + barW;
    const QRectF plot(area.left() + (area.width() - blockW) / 2 + left, area.top(), plotSize.width(),
                      plotSize.height());

    drawCells(p, plot, f, colorAxis);
    p.setPen(QPen(Qt::black, 0.6));
    p.setBrush(Qt::NoBrush);
    p.drawRect(plot);
    for (const QPoint& h : f.highlighted) {
        if (h.x() < 0 || h.y() < 0 || h.x() >= f.cols || h.y() >= f.rows) continue;
        p.setPen(QPen(kHighlightColor, 1.5));
        p.drawRect(QRectF(plot.left() + h.x() * cell, plot.top() + h.y() * cell, cell, cell));
    }

    if (xCats)
        drawCategoryX(p, plot, f.xCategories, xl.stride);
    else
        drawXAxis(p, plot, xAxis, QString(), kMaxAxisTicks);
    if (yCats)
        drawCategoryY(p, plot, f.yCategories, yl.stride, yl.extent);
    else {
        // Positions grow downwards like matrix rows: mirror the axis.
        const Axis& flipped = yAxis;
        const QFont tf = font(FontRole::Tick);
        p.setFont(tf);
        p.setPen(QPen(Qt::black, 0.8));
        const double labelsW = tickLabelWidth(flipped, kMaxAxisTicks), th = lineHeight(tf);
        for (double t : axisTicks(flipped, kMaxAxisTicks)) {
            const double y = plot.top() + flipped.unit(t) * plot.height();
            p.drawLine(QPointF(plot.left() - kTickLength, y), QPointF(plot.left(), y));
            p.drawText(QRectF(plot.left() - kTickLength - kGap - labelsW, y - th / 2, labelsW, th),
                       Qt::AlignRight | Qt::AlignVCenter, formatNumber(t));
        }
    }
    p.setFont(lf);
    p.setPen(Qt::black);
    if (!f.xLabel.isEmpty())
        p.drawText(QRectF(plot.left(), plot.bottom() + bottom - lineHeight(lf), plot.width(), lineHeight(lf)),
                   Qt::AlignCenter, f.xLabel);
    if (!f.yLabel.isEmpty())
        drawRotatedText(p, QPointF(plot.left() - left + lineHeight(lf) / 2, plot.center().y()), f.yLabel);

    constexpr double kMinBarHeight = 60;  // a one-row grid still gets a readable bar
    const double barH = std::min(area.height(), std::max(plot.height(), kMinBarHeight));
    drawColorBar(p, QRectF(plot.right() + 2 * kGap, plot.top(), kColorBarWidth, barH), f.colormap, colorAxis,
                 f.colorBarLabel);
    p.restore();
}

}  // namespace attnscope
