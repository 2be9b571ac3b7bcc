#include "figurepainter.h"

#include <QFontMetricsF>
#include <QLinearGradient>
#include <QPainter>

#include <algorithm>
#include <cmath>

#include "attnscope/scales.h"

namespace attnscope::fig {

namespace {
const QColor kAxisColor(40, 40, 40);
const QColor kGridColor(225, 225, 225);
const QColor kTextColor(20, 20, 20);
constexpr int kColorBarStops = 32;  // enough stops that a gradient matches the colormap
constexpr double kLegendSwatch = 8;
constexpr int kMaxLegendEntries = 10;  // beyond this the legend says "+N more"
}  // namespace

QFont font(FontRole role) {
    QFont f(QStringLiteral("DejaVu Sans"));
    f.setStyleHint(QFont::SansSerif);
    // Pixel sizes are interpreted in the painter's units (points) and scale with its transform,
    // so text has the same size on every device; point sizes would also apply the device DPI.
    f.setHintingPreference(QFont::PreferNoHinting);
    switch (role) {
    case FontRole::Title:
        f.setPixelSize(kTitleSize);
        f.setBold(true);
        break;
    case FontRole::Subtitle: f.setPixelSize(kSubtitleSize); break;
    case FontRole::Label: f.setPixelSize(kLabelSize); break;
    case FontRole::Tick: f.setPixelSize(kTickSize); break;
    }
    return f;
}

double textWidth(const QFont& f, const QString& text) { return QFontMetricsF(f).horizontalAdvance(text); }
double lineHeight(const QFont& f) { return QFontMetricsF(f).height(); }

QRectF drawTitleBlock(QPainter& p, const QRectF& rect, const QString& title, const QString& subtitle) {
    QRectF rest = rect;
    p.setPen(kTextColor);
    if (!title.isEmpty()) {
        const QFont f = font(FontRole::Title);
        p.setFont(f);
        const QString shown = QFontMetricsF(f).elidedText(title, Qt::ElideRight, rect.width());
        const double h = lineHeight(f);
        p.drawText(QRectF(rect.left(), rest.top(), rect.width(), h), Qt::AlignHCenter | Qt::AlignVCenter, shown);
        rest.setTop(rest.top() + h);
    }
    if (!subtitle.isEmpty()) {
        const QFont f = font(FontRole::Subtitle);
        p.setFont(f);
        const QString shown = QFontMetricsF(f).elidedText(subtitle, Qt::ElideRight, rect.width());
        const double h = lineHeight(f);
        p.setPen(kTextColor.lighter(200));
        p.drawText(QRectF(rect.left(), rest.top(), rect.width(), h), Qt::AlignHCenter | Qt::AlignVCenter, shown);
        p.setPen(kTextColor);
        rest.setTop(rest.top() + h);
    }
    rest.setTop(rest.top() + kGap * 2);
    return rest;
}

double Axis::unit(double v) const {
    if (log) {
        const double lv = std::log10(std::max(v, min));
        return (lv - std::log10(min)) / (std::log10(max) - std::log10(min));
    }
    return (v - min) / (max - min);
}

Axis makeAxis(double lo, double hi, bool log) {
    if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
    if (lo > hi) std::swap(lo, hi);
    if (log) {
        if (hi <= 0) hi = 1;
        if (lo <= 0) lo = logScaleFloor(hi);  // no positive minimum: core's log floor
        if (hi / lo < 10) {                   // at least one decade so there is a tick
            lo = std::pow(10.0, std::floor(std::log10(lo)));
            hi = std::pow(10.0, std::ceil(std::log10(hi)));
            if (hi <= lo) hi = lo * 10;
        }
        return {lo, hi, true};
    }
    if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
        const double pad = std::abs(hi) > 0 ? std::abs(hi) * 0.5 : 1.0;
        lo -= pad, hi += pad;
    }
    return {lo, hi, false};
}

std::vector<double> axisTicks(const Axis& axis, int maxTicks) {
    std::vector<double> ticks;
    maxTicks = std::max(2, maxTicks);
    if (axis.log) {
        const int d0 = int(std::ceil(std::log10(axis.min) - 1e-9));
        const int d1 = int(std::floor(std::log10(axis.max) + 1e-9));
        const int step = std::max(1, (d1 - d0 + maxTicks - 1) / maxTicks);
        for (int d = d0; d <= d1; d += step) ticks.push_back(std::pow(10.0, d));
        return ticks;
    }
    const double span = axis.max - axis.min;
    const double step = niceTickStep(span / maxTicks);
    const double first = std::ceil(axis.min / step - 1e-9) * step;
    for (double t = first; t <= axis.max + step * 1e-9; t += step) ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    return ticks;
}

QString formatNumber(double v) {
    if (!std::isfinite(v)) return QStringLiteral("–");
    const double a = std::abs(v);
    if (a != 0 && (a >= 1e5 || a < 1e-3)) return QString::number(v, 'g', 2);
    if (a >= 100 || v == std::round(v)) return QString::number(v, 'f', 0);
    if (a >= 10) return QString::number(v, 'f', 1);
    return QString::number(v, 'g', 3);
}

double tickLabelWidth(const Axis& axis, int maxTicks) {
    const QFont f = font(FontRole::Tick);
    double w = 0;
    for (double t : axisTicks(axis, maxTicks)) w = std::max(w, textWidth(f, formatNumber(t)));
    return w;
}

double yAxisWidth(const Axis& axis, const QString& label, int maxTicks) {
    double w = kTickLength + kGap + tickLabelWidth(axis, maxTicks) + kGap;
    if (!label.isEmpty()) w += lineHeight(font(FontRole::Label));
    return w;
}

double xAxisHeight(const QString& label) {
    double h = kTickLength + kGap + lineHeight(font(FontRole::Tick));
    if (!label.isEmpty()) h += kGap + lineHeight(font(FontRole::Label));
    return h;
}

void drawRotatedText(QPainter& p, const QPointF& center, const QString& text) {
    p.save();
    p.translate(center);
    p.rotate(-90);
    const double w = textWidth(p.font(), text), h = lineHeight(p.font());
    p.drawText(QRectF(-w / 2, -h / 2, w, h), Qt::AlignCenter, text);
    p.restore();
}

void drawXAxis(QPainter& p, const QRectF& plot, const Axis& axis, const QString& label, int maxTicks) {
    p.setPen(QPen(kAxisColor, 0.8));
    p.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.bottom()));
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    const double th = lineHeight(tf);
    for (double t : axisTicks(axis, maxTicks)) {
        const double x = plot.left() + axis.unit(t) * plot.width();
        p.drawLine(QPointF(x, plot.bottom()), QPointF(x, plot.bottom() + kTickLength));
        const QString s = formatNumber(t);
        const double w = textWidth(tf, s);
        p.drawText(QRectF(x - w / 2, plot.bottom() + kTickLength + kGap, w, th), Qt::AlignCenter, s);
    }
    if (!label.isEmpty()) {
        const QFont lf = font(FontRole::Label);
        p.setFont(lf);
        const double y = plot.bottom() + kTickLength + kGap + th + kGap;
        p.drawText(QRectF(plot.left(), y, plot.width(), lineHeight(lf)), Qt::AlignHCenter | Qt::AlignTop, label);
    }
}

void drawYAxis(QPainter& p, const QRectF& plot, const Axis& axis, const QString& label, int maxTicks) {
    p.setPen(QPen(kAxisColor, 0.8));
    p.drawLine(QPointF(plot.left(), plot.top()), QPointF(plot.left(), plot.bottom()));
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    const double th = lineHeight(tf);
    const double labelsW = tickLabelWidth(axis, maxTicks);
    for (double t : axisTicks(axis, maxTicks)) {
        const double y = plot.bottom() - axis.unit(t) * plot.height();
        p.drawLine(QPointF(plot.left() - kTickLength, y), QPointF(plot.left(), y));
        p.drawText(QRectF(plot.left() - kTickLength - kGap - labelsW, y - th / 2, labelsW, th),
                   Qt::AlignRight | Qt::AlignVCenter, formatNumber(t));
    }
    if (!label.isEmpty()) {
        const QFont lf = font(FontRole::Label);
        p.setFont(lf);
        const double x = plot.left() - kTickLength - kGap - labelsW - kGap - lineHeight(lf) / 2;
        drawRotatedText(p, QPointF(x, plot.center().y()), label);
    }
}

void drawGrid(QPainter& p, const QRectF& plot, const Axis* x, const Axis* y, int maxTicksX, int maxTicksY) {
    p.setPen(QPen(kGridColor, 0.5));
    if (x)
        for (double t : axisTicks(*x, maxTicksX)) {
            const double px = plot.left() + x->unit(t) * plot.width();
            p.drawLine(QPointF(px, plot.top()), QPointF(px, plot.bottom()));
        }
    if (y)
        for (double t : axisTicks(*y, maxTicksY)) {
            const double py = plot.bottom() - y->unit(t) * plot.height();
            p.drawLine(QPointF(plot.left(), py), QPointF(plot.right(), py));
        }
}

void drawColorBar(QPainter& p, const QRectF& bar, const QString& colormap, const Axis& axis, const QString& label) {
    // A gradient stays vector in SVG and PDF (no embedded image for the bar).
    QLinearGradient g(bar.bottomLeft(), bar.topLeft());
    for (int i = 0; i <= kColorBarStops; ++i) {
        const double t = double(i) / kColorBarStops;
        g.setColorAt(t, colormapColor(colormap, t));
    }
    p.setPen(Qt::NoPen);
    p.setBrush(g);
    p.drawRect(bar);
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(kAxisColor, 0.6));
    p.drawRect(bar);
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    const double th = lineHeight(tf);
    constexpr int kBarTicks = 5;
    double labelsW = 0;
    for (double t : axisTicks(axis, kBarTicks)) {
        const double y = bar.bottom() - axis.unit(t) * bar.height();
        p.drawLine(QPointF(bar.right(), y), QPointF(bar.right() + kTickLength, y));
        const QString s = formatNumber(t);
        labelsW = std::max(labelsW, textWidth(tf, s));
        p.drawText(QRectF(bar.right() + kTickLength + kGap, y - th / 2, textWidth(tf, s) + 1, th),
                   Qt::AlignLeft | Qt::AlignVCenter, s);
    }
    if (!label.isEmpty()) {
        p.setFont(font(FontRole::Label));
        const double x = bar.right() + kTickLength + kGap + labelsW + kGap + lineHeight(p.font()) / 2;
        drawRotatedText(p, QPointF(x, bar.center().y()), label);
    }
}

double colorBarWidth(const Axis& axis, const QString& label) {
    constexpr int kBarTicks = 5;
    double w = kColorBarWidth + kTickLength + kGap + tickLabelWidth(axis, kBarTicks) + kGap;
    if (!label.isEmpty()) w += lineHeight(font(FontRole::Label));
    return w;
}

QColor seriesColor(int index) {
    static const QColor kPalette[] = {QColor(0, 114, 178),   QColor(230, 159, 0),  QColor(0, 158, 115),
                                      QColor(204, 121, 167), QColor(86, 180, 233), QColor(213, 94, 0),
                                      QColor(120, 120, 120), QColor(240, 228, 66)};
    constexpr int n = int(sizeof(kPalette) / sizeof(kPalette[0]));
    return kPalette[((index % n) + n) % n];
}

namespace {
double relativeLuminance(const QColor& c) {
    auto channel = [](double v) { return v <= 0.03928 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF());
}
}  // namespace

double contrastRatio(const QColor& a, const QColor& b) {
    constexpr double kFlare = 0.05;  // WCAG's allowance for ambient light
    const double la = relativeLuminance(a), lb = relativeLuminance(b);
    return (std::max(la, lb) + kFlare) / (std::min(la, lb) + kFlare);
}

QColor readableOn(const QColor& color, const QColor& background) {
    constexpr int kStepPercent = 110;  // QColor::darker/lighter factor per step
    constexpr int kMaxSteps = 40;
    const bool darken = relativeLuminance(background) > 0.5;
    QColor c = color;
    for (int i = 0; i < kMaxSteps && contrastRatio(c, background) < kMinLineContrast; ++i)
        c = darken ? c.darker(kStepPercent) : c.lighter(kStepPercent);
    c.setAlpha(color.alpha());
    return c;
}

double tokenLineOpacity(float w) { return std::clamp(std::sqrt(std::max(double(w), 0.0)), kMinLineOpacity, 1.0); }

void drawLegend(QPainter& p, const QRectF& plot, const QStringList& names, const std::vector<QColor>& colors,
                const std::vector<QPointF>& avoid) {
    if (names.size() < 2) return;
    const QFont tf = font(FontRole::Tick);
    p.setFont(tf);
    const double th = lineHeight(tf);
    const int shown = std::min<int>(int(names.size()), kMaxLegendEntries);
    const int hidden = int(names.size()) - shown;
    double w = 0;
    for (int i = 0; i < shown; ++i) w = std::max(w, textWidth(tf, names[i]));
    const QString more = hidden > 0 ? QStringLiteral("+%1 more").arg(hidden) : QString();
    w = std::max(w, textWidth(tf, more));
    const int lines = shown + (hidden > 0 ? 1 : 0);
    const QSizeF size(w + kLegendSwatch + 3 * kGap, lines * th + 2 * kGap);
    const double left = plot.left() + kGap, right = plot.right() - size.width() - kGap;
    const double top = plot.top() + kGap, bottom = plot.bottom() - size.height() - kGap;
    QRectF box;
    int fewest = -1;
    for (const QPointF corner :
         {QPointF(right, top), QPointF(left, top), QPointF(right, bottom), QPointF(left, bottom)}) {
        const QRectF candidate(corner, size);
        const int covered =
            int(std::count_if(avoid.begin(), avoid.end(), [&](const QPointF& pt) { return candidate.contains(pt); }));
        if (fewest < 0 || covered < fewest) box = candidate, fewest = covered;
    }
    p.setPen(QPen(kGridColor.darker(120), 0.5));
    p.setBrush(QColor(255, 255, 255, 230));
    p.drawRect(box);
    for (int i = 0; i < shown; ++i) {
        const double y = box.top() + kGap + i * th;
        p.setPen(Qt::NoPen);
        p.setBrush(colors[size_t(i)]);
        p.drawRect(QRectF(box.left() + kGap, y + (th - kLegendSwatch) / 2, kLegendSwatch, kLegendSwatch));
        p.setBrush(Qt::NoBrush);
        p.setPen(kTextColor);
        p.drawText(QRectF(box.left() + 2 * kGap + kLegendSwatch, y, w + kGap, th), Qt::AlignLeft | Qt::AlignVCenter,
                   names[i]);
    }
    if (hidden > 0)
        p.drawText(QRectF(box.left() + kGap, box.top() + kGap + shown * th, w + kLegendSwatch + kGap, th),
                   Qt::AlignLeft | Qt::AlignVCenter, more);
}

QString displayToken(const QString& token, const QFont& f, double maxWidth) {
    // Spaces are shown as ␣ only in all-blank tokens; elsewhere they read as the word boundary.
    const bool blank = token.trimmed().isEmpty();
    QString s;
    s.reserve(token.size());
    for (QChar c : token) {
        if (c == QLatin1Char('\n'))
            s += QChar(0x21B5);  // ↵
        else if (c == QLatin1Char('\t'))
            s += QChar(0x2192);  // →
        else if (c == QLatin1Char(' '))
            s += blank ? QChar(0x2423) : c;
        else if (c.category() == QChar::Other_Control)
            s += QChar(0xFFFD);
        else
            s += c;
    }
    if (s.isEmpty()) s = QStringLiteral("∅");
    return QFontMetricsF(f).elidedText(s, Qt::ElideRight, maxWidth);
}

int labelStride(double pitch, double labelExtent) {
    if (pitch <= 0) return 1;
    return std::max(1, int(std::ceil(labelExtent * 1.15 / pitch)));
}

void drawNoData(QPainter& p, const QRectF& area, const QString& why) {
    p.setPen(kTextColor.lighter(250));
    p.setFont(font(FontRole::Label));
    p.drawText(area, Qt::AlignCenter | Qt::TextWordWrap, why);
}

}  // namespace attnscope::fig
