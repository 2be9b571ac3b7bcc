// Numeric plots: line plots (alpha per key, density against gamma), grouped bar charts (mask
// recall, profile times) and scatter plots with a Pareto frontier (speed against accuracy).
#include <QPainter>
#include <QPainterPath>

#include <algorithm>
#include <cmath>

#include "figure.h"
#include "figurepainter.h"

namespace attnscope {

using namespace fig;

namespace {
constexpr int kMaxTicksX = 7;
constexpr int kMaxTicksY = 6;
constexpr double kMarkerRadius = 2.2;
constexpr double kLineWidth = 1.3;
constexpr double kRightPad = 10;   // room for the last x tick label
constexpr double kEndPad = 0.015;  // share of the x range added at both ends
constexpr double kTopPad = 0.08;   // share of the y range added above the data
constexpr double kBarFill = 0.8;   // share of a category band taken by its bars
constexpr double kMaxBarThickness = 16;
constexpr double kMaxCategoryLabel = 170;
const QColor kReferenceColor(150, 60, 60);
const QColor kFrontierColor(60, 60, 60);

void extend(double v, bool log, double& lo, double& hi) {
    if (!std::isfinite(v) || (log && v <= 0)) return;
    lo = std::min(lo, v), hi = std::max(hi, v);
}

QPointF toPlot(const QRectF& plot, const Axis& x, const Axis& y, double vx, double vy) {
    return {plot.left() + x.unit(vx) * plot.width(), plot.bottom() - y.unit(vy) * plot.height()};
}

// Plot rectangle inside `area` for numeric x/y axes.
QRectF numericPlotRect(const QRectF& area, const Axis& y, const QString& xLabel, const QString& yLabel) {
    const double left = yAxisWidth(y, yLabel, kMaxTicksY);
    const double bottom = xAxisHeight(xLabel);
    return QRectF(area.left() + left, area.top(), area.width() - left - kRightPad, area.height() - bottom);
}

}  // namespace

void render(QPainter& p, const QRectF& rect, const LinePlotFigure& f) {
    p.save();
    const QRectF area = drawTitleBlock(p, rect.adjusted(kMargin, kMargin, -kMargin, -kMargin), f.title, f.subtitle);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (const auto& s : f.series) {
        for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
            extend(s.x[i], f.logX, xlo, xhi);
            extend(s.y[i], f.logY, ylo, yhi);
        }
        if (s.stems && !f.logY) extend(0.0, false, ylo, yhi);
    }
    if (!std::isfinite(xlo)) {
        drawNoData(p, area, QStringLiteral("no data"));
        p.restore();
        return;
    }
    for (const auto& r : f.references) extend(r.y, f.logY, ylo, yhi);
    if (!f.logY) yhi += (yhi - ylo) * kTopPad;  // headroom for reference labels and point labels
    if (std::isfinite(f.yMin)) ylo = f.yMin;
    if (std::isfinite(f.yMax)) yhi = f.yMax;
    const bool discrete =
        std::any_of(f.series.begin(), f.series.end(), [](const LineSeries& s) { return s.stems || s.markers; });
    if (discrete && !f.logX) {  // stems and markers at the ends must not hide under the axes
        const double pad = (xhi - xlo) * kEndPad;
        xlo -= pad, xhi += pad;
    }
    const Axis xa = makeAxis(xlo, xhi, f.logX), ya = makeAxis(ylo, yhi, f.logY);
    const QRectF plot = numericPlotRect(area, ya, f.xLabel, f.yLabel);
    drawGrid(p, plot, &xa, &ya, kMaxTicksX, kMaxTicksY);

    p.setRenderHint(QPainter::Antialiasing, true);
    p.save();
    p.setClipRect(plot.adjusted(-kMarkerRadius, -kMarkerRadius, kMarkerRadius, kMarkerRadius));
    QStringList names;
    std::vector<QColor> colors;
    std::vector<QPointF> drawn;  // where the data is, so the legend can avoid it
    for (size_t si = 0; si < f.series.size(); ++si) {
        const auto& s = f.series[si];
        const QColor c = seriesColor(int(si));
        names << s.name;
        colors.push_back(c);
        const size_t n = std::min(s.x.size(), s.y.size());
        constexpr int kSegmentSamples = 8;  // lines between sparse points count too
        for (size_t i = 0; i < n; ++i) {
            if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
            const QPointF pt = toPlot(plot, xa, ya, s.x[i], s.y[i]);
            drawn.push_back(pt);
            if (s.stems || i + 1 >= n || !std::isfinite(s.x[i + 1]) || !std::isfinite(s.y[i + 1])) continue;
            const QPointF next = toPlot(plot, xa, ya, s.x[i + 1], s.y[i + 1]);
            for (int k = 1; k < kSegmentSamples; ++k) drawn.push_back(pt + (next - pt) * (double(k) / kSegmentSamples));
        }
        if (s.stems) {
            p.setPen(QPen(c, 0.8));
            const double base = f.logY ? ya.min : std::max(0.0, ya.min);
            for (size_t i = 0; i < n; ++i)
                if (std::isfinite(s.y[i]))
                    p.drawLine(toPlot(plot, xa, ya, s.x[i], base), toPlot(plot, xa, ya, s.x[i], s.y[i]));
        } else {
            QPainterPath path;
            bool open = false;
            for (size_t i = 0; i < n; ++i) {
                const bool ok = std::isfinite(s.x[i]) && std::isfinite(s.y[i]) && (!f.logY || s.y[i] > 0);
                if (!ok) {
                    open = false;
                    continue;
                }
                const QPointF pt = toPlot(plot, xa, ya, s.x[i], s.y[i]);
                if (open)
                    path.lineTo(pt);
                else
                    path.moveTo(pt), open = true;
            }
            p.setPen(QPen(c, kLineWidth, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin));
            p.drawPath(path);
        }
        if (s.markers) {
            p.setPen(Qt::NoPen);
            p.setBrush(c);
            for (size_t i = 0; i < n; ++i)
                if (std::isfinite(s.y[i]))
                    p.drawEllipse(toPlot(plot, xa, ya, s.x[i], s.y[i]), kMarkerRadius, kMarkerRadius);
            p.setBrush(Qt::NoBrush);
        }
    }
    p.restore();
    p.setFont(font(FontRole::Tick));
    for (const auto& r : f.references) {
        const double y = toPlot(plot, xa, ya, xa.min, r.y).y();
        p.setPen(QPen(kReferenceColor, 0.8, Qt::DashLine));
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y));
        p.setPen(kReferenceColor);
        p.drawText(QRectF(plot.left() + kGap, y - lineHeight(p.font()), plot.width() / 2, lineHeight(p.font())),
                   Qt::AlignLeft | Qt::AlignBottom, r.label);
    }
    p.setPen(Qt::black);
    for (const auto& l : f.labels) {
        const QPointF pt = toPlot(plot, xa, ya, l.x, l.y);
        const double w = textWidth(p.font(), l.text);
        // Keep labels inside the plot: flip to the left of the point near the right edge.
        const double x = pt.x() + kGap + w > plot.right() ? pt.x() - kGap - w : pt.x() + kGap;
        const double y = std::max(plot.top(), pt.y() - lineHeight(p.font()));
        p.drawText(QRectF(x, y, w + 1, lineHeight(p.font())), Qt::AlignLeft | Qt::AlignVCenter, l.text);
    }
    drawXAxis(p, plot, xa, f.xLabel, kMaxTicksX);
    drawYAxis(p, plot, ya, f.yLabel, kMaxTicksY);
    drawLegend(p, plot, names, colors, drawn);
    p.restore();
}

void render(QPainter& p, const QRectF& rect, const BarChartFigure& f) {
    p.save();
    const QRectF area = drawTitleBlock(p, rect.adjusted(kMargin, kMargin, -kMargin, -kMargin), f.title, f.subtitle);
    const int nc = int(f.categories.size()), ng = int(f.groups.size());
    double lo = f.logValue ? INFINITY : 0.0, hi = -INFINITY;
    for (const auto& g : f.groups)
        for (size_t i = 0; i < g.values.size(); ++i) {
            extend(g.values[i], f.logValue, lo, hi);
            if (i < g.errHigh.size()) extend(g.errHigh[i], f.logValue, lo, hi);
        }
    if (nc == 0 || ng == 0 || !std::isfinite(hi)) {
        drawNoData(p, area, QStringLiteral("no data"));
        p.restore();
        return;
    }
    if (std::isfinite(f.valueMax)) hi = f.valueMax;
    const Axis va = makeAxis(lo, hi, f.logValue);
    const QFont tf = font(FontRole::Tick);
    double catW = 0;
    for (const auto& c : f.categories) catW = std::max(catW, textWidth(tf, displayToken(c, tf, kMaxCategoryLabel)));

    QRectF plot;
    if (f.horizontal) {
        const double left = catW + kTickLength + 2 * kGap;
        double valueW = 0;  // the value printed after each bar
        if (ng == 1)
            for (double v : f.groups.front().values)
                valueW = std::max(valueW, textWidth(tf, formatNumber(v)) + 2 * kGap);
        plot = QRectF(area.left() + left, area.top(), area.width() - left - kRightPad - valueW,
                      area.height() - xAxisHeight(f.valueLabel));
        drawGrid(p, plot, &va, nullptr, kMaxTicksX, 0);
    } else {
        const double left = yAxisWidth(va, f.valueLabel, kMaxTicksY);
        const double bottom = std::min(catW, kMaxCategoryLabel) + kTickLength + 2 * kGap;
        plot = QRectF(area.left() + left, area.top(), area.width() - left - kRightPad, area.height() - bottom);
        drawGrid(p, plot, nullptr, &va, 0, kMaxTicksY);
    }
    const double band = (f.horizontal ? plot.height() : plot.width()) / nc;
    const double thick = std::min(kMaxBarThickness * ng, band * kBarFill) / ng;
    const double base = f.logValue ? va.min : std::max(0.0, va.min);
    p.setFont(tf);
    for (int c = 0; c < nc; ++c) {
        const double bandStart = (f.horizontal ? plot.top() : plot.left()) + c * band + (band - thick * ng) / 2;
        for (int g = 0; g < ng; ++g) {
            const auto& grp = f.groups[size_t(g)];
            if (size_t(c) >= grp.values.size() || !std::isfinite(grp.values[size_t(c)])) continue;
            const double v = grp.values[size_t(c)];
            const double u0 = va.unit(base), u1 = std::clamp(va.unit(v), 0.0, 1.0);
            const double s = bandStart + g * thick;
            QRectF bar = f.horizontal
                             ? QRectF(plot.left() + u0 * plot.width(), s, (u1 - u0) * plot.width(), thick * 0.92)
                             : QRectF(s, plot.bottom() - u1 * plot.height(), thick * 0.92, (u1 - u0) * plot.height());
            p.setPen(Qt::NoPen);
            p.setBrush(seriesColor(g));
            p.drawRect(bar.normalized());
            p.setBrush(Qt::NoBrush);
            const bool hasErr = size_t(c) < grp.errLow.size() && size_t(c) < grp.errHigh.size();
            if (hasErr && std::isfinite(grp.errLow[size_t(c)]) && std::isfinite(grp.errHigh[size_t(c)])) {
                p.setPen(QPen(Qt::black, 0.7));
                const double e0 = va.unit(grp.errLow[size_t(c)]),
                             e1 = std::clamp(va.unit(grp.errHigh[size_t(c)]), 0.0, 1.0);
                const double mid = s + thick * 0.46;
                if (f.horizontal)
                    p.drawLine(QPointF(plot.left() + e0 * plot.width(), mid),
                               QPointF(plot.left() + e1 * plot.width(), mid));
                else
                    p.drawLine(QPointF(mid, plot.bottom() - e0 * plot.height()),
                               QPointF(mid, plot.bottom() - e1 * plot.height()));
            }
            if (f.horizontal && ng == 1) {  // value at the bar's end: exact numbers for the reader
                p.setPen(Qt::black);
                const QString t = formatNumber(v);
                double end = bar.normalized().right();
                if (hasErr && std::isfinite(grp.errHigh[size_t(c)]))  // past the whisker, not over it
                    end = std::max(end,
                                   plot.left() + std::clamp(va.unit(grp.errHigh[size_t(c)]), 0.0, 1.0) * plot.width());
                const double x = end + kGap;
                p.drawText(QRectF(x, s, textWidth(tf, t) + 1, thick), Qt::AlignLeft | Qt::AlignVCenter, t);
            }
        }
        p.setPen(Qt::black);
        const QString label = displayToken(f.categories[c], tf, kMaxCategoryLabel);
        if (f.horizontal) {
            const double y = plot.top() + (c + 0.5) * band;
            p.drawText(QRectF(area.left(), y - lineHeight(tf) / 2, catW, lineHeight(tf)),
                       Qt::AlignRight | Qt::AlignVCenter, label);
        } else {
            const double x = plot.left() + (c + 0.5) * band;
            p.save();
            p.translate(x, plot.bottom() + kTickLength + kGap);
            p.rotate(-90);
            const double w = textWidth(tf, label);
            p.drawText(QRectF(-w, -lineHeight(tf) / 2, w, lineHeight(tf)), Qt::AlignRight | Qt::AlignVCenter, label);
            p.restore();
        }
    }
    if (f.horizontal) {
        drawXAxis(p, plot, va, f.valueLabel, kMaxTicksX);
        p.setPen(QPen(Qt::black, 0.8));
        p.drawLine(plot.topLeft(), plot.bottomLeft());
    } else {
        drawYAxis(p, plot, va, f.valueLabel, kMaxTicksY);
        p.setPen(QPen(Qt::black, 0.8));
        p.drawLine(plot.bottomLeft(), plot.bottomRight());
    }
    QStringList names;
    std::vector<QColor> colors;
    for (int g = 0; g < ng; ++g) names << f.groups[size_t(g)].name, colors.push_back(seriesColor(g));
    drawLegend(p, plot, names, colors);
    p.restore();
}

void render(QPainter& p, const QRectF& rect, const ScatterFigure& f) {
    p.save();
    const QRectF area = drawTitleBlock(p, rect.adjusted(kMargin, kMargin, -kMargin, -kMargin), f.title, f.subtitle);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (const auto& pt : f.points) extend(pt.x, f.logX, xlo, xhi), extend(pt.y, f.logY, ylo, yhi);
    if (!std::isfinite(xlo) || !std::isfinite(ylo)) {
        drawNoData(p, area, QStringLiteral("no data"));
        p.restore();
        return;
    }
    // Pad linear axes so markers and labels at the extremes are not cut by the frame.
    constexpr double kPad = 0.08;
    constexpr double kLogPad = 1.6;  // a fifth of a decade on log axes
    if (f.logX)
        xlo /= kLogPad, xhi *= kLogPad;
    else {
        const double d = std::max((xhi - xlo) * kPad, std::abs(xhi) * kPad);
        xlo -= d, xhi += d;
    }
    if (f.logY)
        ylo /= kLogPad, yhi *= kLogPad;
    else {
        const double d = std::max((yhi - ylo) * kPad, std::abs(yhi) * kPad);
        ylo -= d, yhi += d;
    }
    const Axis xa = makeAxis(xlo, xhi, f.logX), ya = makeAxis(ylo, yhi, f.logY);
    const QRectF plot = numericPlotRect(area, ya, f.xLabel, f.yLabel);
    drawGrid(p, plot, &xa, &ya, kMaxTicksX, kMaxTicksY);
    p.setRenderHint(QPainter::Antialiasing, true);

    std::vector<size_t> valid;
    for (size_t i = 0; i < f.points.size(); ++i) {
        const auto& pt = f.points[i];
        if (std::isfinite(pt.x) && std::isfinite(pt.y) && (!f.logX || pt.x > 0) && (!f.logY || pt.y > 0))
            valid.push_back(i);
    }
    if (f.paretoFrontier && valid.size() > 1) {
        // Sorted by x, a point is on the frontier when its y beats every point left of it.
        std::vector<size_t> order = valid;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
            return f.points[a].x < f.points[b].x || (f.points[a].x == f.points[b].x && f.points[a].y < f.points[b].y);
        });
        QPainterPath path;
        double best = INFINITY;
        for (size_t i : order) {
            if (f.points[i].y >= best) continue;
            const QPointF pt = toPlot(plot, xa, ya, f.points[i].x, f.points[i].y);
            if (path.elementCount() == 0)
                path.moveTo(pt);
            else
                path.lineTo(QPointF(pt.x(), path.currentPosition().y())), path.lineTo(pt);
            best = f.points[i].y;
        }
        p.setPen(QPen(kFrontierColor, 0.9, Qt::DashLine));
        p.drawPath(path);
    }
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    for (size_t k = 0; k < valid.size(); ++k) {
        const auto& pt = f.points[valid[k]];
        const QPointF c = toPlot(plot, xa, ya, pt.x, pt.y);
        p.setPen(QPen(Qt::white, 0.5));
        p.setBrush(seriesColor(int(k)));
        p.drawEllipse(c, kMarkerRadius * 1.5, kMarkerRadius * 1.5);
        p.setBrush(Qt::NoBrush);
        p.setPen(Qt::black);
        const double w = textWidth(tf, pt.label);
        const double x = c.x() + kGap * 2 + w > plot.right() ? c.x() - kGap * 2 - w : c.x() + kGap * 2;
        // Above the point: the frontier's horizontal runs pass through the point's own height.
        p.drawText(QRectF(x, c.y() - lineHeight(tf) - 1, w + 1, lineHeight(tf)), Qt::AlignLeft | Qt::AlignVCenter,
                   pt.label);
    }
    drawXAxis(p, plot, xa, f.xLabel, kMaxTicksX);
    drawYAxis(p, plot, ya, f.yLabel, kMaxTicksY);
    p.restore();
}

}  // namespace attnscope
