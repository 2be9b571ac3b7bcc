// Token-level figures: the BertViz-style head view (token lines) and the neuron view
// (q, k and q ⊙ k per dimension for one query/key pair).
#include <QPainter>

#include <algorithm>
#include <cmath>

#include "figure.h"
#include "figurepainter.h"

namespace attnscope {

using namespace fig;

namespace {
constexpr double kMaxRowHeight = 14;
constexpr double kColumnGap = 120;  // between the two token columns, where lines run
constexpr double kLineWidth = 1.6;
constexpr double kPanelGap = 10;
constexpr int kMaxDimTicks = 8;
constexpr int kPanelTicks = 5;
const QColor kFocusColor(255, 240, 170);
const QColor kPositive(33, 102, 172);
const QColor kNegative(178, 24, 43);

// Row i's vertical centre in a column of n rows starting at `top`.
double rowCenter(double top, double rowH, int i) { return top + (i + 0.5) * rowH; }

}  // namespace

void render(QPainter& p, const QRectF& rect, const TokenFigure& f) {
    p.save();
    QRectF area = drawTitleBlock(p, rect.adjusted(kMargin, kMargin, -kMargin, -kMargin), f.title, f.subtitle);
    const int nq = int(f.queryTokens.size()), nk = int(f.keyTokens.size());
    if (nq == 0 || nk == 0 || f.heads.empty()) {
        drawNoData(p, area, QStringLiteral("no tokens"));
        p.restore();
        return;
    }
    const QFont tf = font(FontRole::Label);
    // Legend row of heads above the columns.
    if (f.heads.size() > 1) {
        const QFont lf = font(FontRole::Tick);
        p.setFont(lf);
        const double h = lineHeight(lf);
        double legendW = 0;
        for (const auto& head : f.heads) legendW += h + kGap + textWidth(lf, head.name) + 3 * kGap;
        double x = area.left() + std::max(0.0, (area.width() - legendW) / 2);
        for (size_t hi = 0; hi < f.heads.size(); ++hi) {
            p.setPen(Qt::NoPen);
            p.setBrush(readableOn(seriesColor(int(hi)), Qt::white));
            p.drawRect(QRectF(x, area.top() + h * 0.2, h * 0.6 * 1.5, h * 0.6));
            p.setBrush(Qt::NoBrush);
            p.setPen(Qt::black);
            x += h + kGap;
            const double w = textWidth(lf, f.heads[hi].name);
            p.drawText(QRectF(x, area.top(), w + 1, h), Qt::AlignLeft | Qt::AlignVCenter, f.heads[hi].name);
            x += w + 3 * kGap;
        }
        area.setTop(area.top() + h + kGap);
    }
    const double rowH = std::min(kMaxRowHeight, area.height() / std::max(nq, nk));
    QFont rowFont = tf;
    rowFont.setPixelSize(std::max(4, std::min(kLabelSize, int(rowH * 0.8))));
    p.setFont(rowFont);
    double colW = 0;
    for (const auto& t : f.queryTokens) colW = std::max(colW, textWidth(rowFont, displayToken(t, rowFont)));
    for (const auto& t : f.keyTokens) colW = std::max(colW, textWidth(rowFont, displayToken(t, rowFont)));
    const double gap = std::min(kColumnGap, std::max(30.0, area.width() - 2 * colW - 4 * kGap));
    const double totalW = 2 * colW + gap + 4 * kGap;
    const double leftX = area.left() + (area.width() - totalW) / 2;
    const double lineL = leftX + colW + 2 * kGap, lineR = lineL + gap;
    const double rightX = lineR + 2 * kGap;

    if (f.focusQuery >= 0 && f.focusQuery < nq) {
        p.fillRect(QRectF(leftX - kGap, rowCenter(area.top(), rowH, f.focusQuery) - rowH / 2, colW + 2 * kGap, rowH),
                   kFocusColor);
    }
    p.setRenderHint(QPainter::Antialiasing, true);
    for (size_t hi = 0; hi < f.heads.size(); ++hi) {
        const auto& w = f.heads[hi].weights;
        if (w.size() != size_t(nq) * size_t(nk)) continue;
        const QColor base = readableOn(seriesColor(int(hi)), Qt::white);  // lines on paper
        for (int i = 0; i < nq; ++i) {
            if (f.focusQuery >= 0 && i != f.focusQuery) continue;
            for (int j = 0; j < nk; ++j) {
                const float a = w[size_t(i) * nk + j];
                if (!(a >= f.minWeight)) continue;
                QColor c = base;
                c.setAlphaF(tokenLineOpacity(a));
                p.setPen(QPen(c, kLineWidth, Qt::SolidLine, Qt::RoundCap));
                p.drawLine(QPointF(lineL, rowCenter(area.top(), rowH, i)),
                           QPointF(lineR, rowCenter(area.top(), rowH, j)));
            }
        }
    }
    p.setPen(Qt::black);
    for (int i = 0; i < nq; ++i)
        p.drawText(QRectF(leftX, rowCenter(area.top(), rowH, i) - rowH / 2, colW, rowH),
                   Qt::AlignRight | Qt::AlignVCenter, displayToken(f.queryTokens[i], rowFont));
    for (int j = 0; j < nk; ++j)
        p.drawText(QRectF(rightX, rowCenter(area.top(), rowH, j) - rowH / 2, colW, rowH),
                   Qt::AlignLeft | Qt::AlignVCenter, displayToken(f.keyTokens[j], rowFont));
    p.restore();
}

void render(QPainter& p, const QRectF& rect, const NeuronFigure& f) {
    p.save();
    const size_t d = std::min(f.q.size(), f.k.size());
    double dot = 0;
    for (size_t i = 0; i < d; ++i) dot += double(f.q[i]) * f.k[i];
    QString summary = QStringLiteral("query %1 → key %2   q·k = %3   scaled = %4")
                          .arg(f.queryToken, f.keyToken, formatNumber(dot), formatNumber(dot * f.scale));
    if (std::isfinite(f.probability)) summary += QStringLiteral("   p = %1").arg(formatNumber(f.probability));
    const QString subtitle = f.subtitle.isEmpty() ? summary : f.subtitle + QStringLiteral("  ·  ") + summary;
    const QRectF area = drawTitleBlock(p, rect.adjusted(kMargin, kMargin, -kMargin, -kMargin), f.title, subtitle);
    if (d == 0) {
        drawNoData(p, area, QStringLiteral("no Q/K vectors"));
        p.restore();
        return;
    }
    std::vector<double> prod(d);
    for (size_t i = 0; i < d; ++i) prod[i] = double(f.q[i]) * f.k[i];
    struct Panel {
        QString name;
        std::vector<double> v;
    };
    const Panel panels[] = {{QStringLiteral("q"), {f.q.begin(), f.q.begin() + long(d)}},
                            {QStringLiteral("k"), {f.k.begin(), f.k.begin() + long(d)}},
                            {QStringLiteral("q ⊙ k"), prod}};
    constexpr int kPanels = 3;
    const double bottom = xAxisHeight(QStringLiteral("dimension"));
    const double panelH = (area.height() - bottom - (kPanels - 1) * kPanelGap) / kPanels;
    // Shared left margin: the widest y axis of the three panels.
    double left = 0;
    std::vector<Axis> axes;
    for (const auto& pn : panels) {
        double m = 0;
        for (double v : pn.v) m = std::max(m, std::abs(v));
        axes.push_back(makeAxis(-m, m, false));
        left = std::max(left, yAxisWidth(axes.back(), pn.name, kPanelTicks));
    }
    const Axis dimAxis = makeAxis(-0.5, double(d) - 0.5, false);
    for (int k = 0; k < kPanels; ++k) {
        const QRectF plot(area.left() + left, area.top() + k * (panelH + kPanelGap), area.width() - left - kGap,
                          panelH);
        const Axis& ya = axes[size_t(k)];
        drawGrid(p, plot, nullptr, &ya, 0, kPanelTicks);
        const double barW = plot.width() / double(d);
        const double zeroY = plot.bottom() - ya.unit(0) * plot.height();
        p.setPen(Qt::NoPen);
        for (size_t i = 0; i < d; ++i) {
            const double v = panels[k].v[i];
            const double y = plot.bottom() - ya.unit(v) * plot.height();
            p.setBrush(v >= 0 ? kPositive : kNegative);
            p.drawRect(
                QRectF(plot.left() + i * barW + barW * 0.1, std::min(y, zeroY), barW * 0.8, std::abs(zeroY - y)));
        }
        p.setBrush(Qt::NoBrush);
        p.setPen(QPen(Qt::black, 0.5));
        p.drawLine(QPointF(plot.left(), zeroY), QPointF(plot.right(), zeroY));
        drawYAxis(p, plot, ya, panels[k].name, kPanelTicks);
        if (k == kPanels - 1) drawXAxis(p, plot, dimAxis, QStringLiteral("dimension"), kMaxDimTicks);
    }
    p.restore();
}

}  // namespace attnscope
