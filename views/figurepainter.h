#pragma once
// Shared drawing pieces of the figure renderer: fonts, title block, numeric axes with nice
// ticks, colour bars, legends and token display. Everything is in points.
#include <QColor>
#include <QFont>
#include <QRectF>
#include <QString>
#include <QStringList>

#include <vector>

#include "colormap.h"

class QPainter;

namespace attnscope::fig {

/// Type sizes in points: readable when a figure is scaled to one column of a paper.
inline constexpr int kTitleSize = 12;
inline constexpr int kSubtitleSize = 8;
inline constexpr int kLabelSize = 9;
inline constexpr int kTickSize = 7;
inline constexpr double kMinLineContrast = 3.0;  ///< WCAG's minimum for graphics
inline constexpr double kMinLineOpacity = 0.25;
inline constexpr double kMargin = 8;  ///< around the whole figure
inline constexpr double kTickLength = 3;
inline constexpr double kGap = 3;  ///< between a tick and its label, a label and its axis
inline constexpr double kColorBarWidth = 10;
inline constexpr double kMaxTokenLabelWidth = 70;  ///< longer tokens are elided

enum class FontRole { Title, Subtitle, Label, Tick };
QFont font(FontRole role);
double textWidth(const QFont& font, const QString& text);
double lineHeight(const QFont& font);

/// Draws the title (bold) and optional subtitle at the top of `rect`; returns the rest.
QRectF drawTitleBlock(QPainter& p, const QRectF& rect, const QString& title, const QString& subtitle);

/// A numeric axis: maps values in [min, max] (log10 when `log`) to [0, 1].
struct Axis {
    double min = 0, max = 1;
    bool log = false;
    double unit(double v) const;
};
/// An axis spanning [lo, hi]; widened when empty, clamped to positive values for log axes.
Axis makeAxis(double lo, double hi, bool log);
/// 1-2-5 ticks for linear axes, decades for log axes (at most about `maxTicks`).
std::vector<double> axisTicks(const Axis& axis, int maxTicks);
QString formatNumber(double v);

/// Widest tick label of the axis with the tick font (for margins).
double tickLabelWidth(const Axis& axis, int maxTicks);

/// Axis lines with ticks, tick labels and the axis title, outside `plot`.
void drawXAxis(QPainter& p, const QRectF& plot, const Axis& axis, const QString& label, int maxTicks);
void drawYAxis(QPainter& p, const QRectF& plot, const Axis& axis, const QString& label, int maxTicks);
/// Light grid lines at the ticks, drawn before the data.
void drawGrid(QPainter& p, const QRectF& plot, const Axis* x, const Axis* y, int maxTicksX, int maxTicksY);
/// Space the y axis needs left of the plot (ticks + labels + rotated title).
double yAxisWidth(const Axis& axis, const QString& label, int maxTicks);
/// Space the x axis needs below the plot.
double xAxisHeight(const QString& label);

/// Vertical colour bar with ticks on its right and a rotated label; `bar` is the bar itself.
void drawColorBar(QPainter& p, const QRectF& bar, const QString& colormap, const Axis& axis, const QString& label);
/// Width a colour bar with its ticks and label takes.
double colorBarWidth(const Axis& axis, const QString& label);

/// Categorical colours (Okabe–Ito, readable by colour-blind readers); cycles.
QColor seriesColor(int index);

/// WCAG contrast ratio of two colours, 1 (same luminance) to 21 (black on white).
double contrastRatio(const QColor& a, const QColor& b);
/// `color` darkened (or, on a dark background, lightened) until its contrast with `background`
/// reaches kMinLineContrast: yellow and orange lines on white paper become readable.
QColor readableOn(const QColor& color, const QColor& background);
/// Opacity of a token line of attention weight `w` (head views, on screen and exported): the
/// square root, so weights of a few percent stay visible, never below kMinLineOpacity.
double tokenLineOpacity(float w);

/// A legend box of coloured swatches in the corner of `plot` that covers the fewest of `avoid`
/// (the plotted points), top-right when none is given.
void drawLegend(QPainter& p, const QRectF& plot, const QStringList& names, const std::vector<QColor>& colors,
                const std::vector<QPointF>& avoid = {});

/// Token text for display: control characters and spaces made visible, elided to `maxWidth`.
QString displayToken(const QString& token, const QFont& font, double maxWidth = kMaxTokenLabelWidth);

/// Every `stride`-th label fits when labels `labelExtent` tall sit on a pitch of `pitch`.
int labelStride(double pitch, double labelExtent);

/// Text rotated by -90° (reading upwards) centred on `center`.
void drawRotatedText(QPainter& p, const QPointF& center, const QString& text);

/// The "no data" message drawn in place of an empty plot.
void drawNoData(QPainter& p, const QRectF& area, const QString& why);

}  // namespace attnscope::fig
