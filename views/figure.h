#pragma once
// The figure renderer: one render() per figure type, drawing in points (1/72 inch) with vector
// text, and save() to PNG (with a DPI), SVG (QSvgGenerator) or PDF (QPdfWriter, one page per
// figure). Used by the GUI's export and by attnscope-cli export/report, so files are identical.
#include <QByteArray>
#include <QRectF>
#include <QSizeF>
#include <QString>

#include <optional>
#include <vector>

#include "attnscope/status.h"
#include "figuremodel.h"

class QPainter;

namespace attnscope {

enum class FigureFormat { Png, Svg, Pdf };

/// From a file name's extension (.png/.svg/.pdf, case-insensitive); nullopt otherwise.
std::optional<FigureFormat> figureFormatFromPath(const QString& path);
QString figureFormatName(FigureFormat format);

/// The size a figure is designed for, in points (it adapts to other sizes).
QSizeF preferredFigureSize(const Figure& figure);

/// Draws the figure into `rect` (painter coordinates taken as points).
void renderFigure(QPainter& painter, const QRectF& rect, const Figure& figure);
void render(QPainter& painter, const QRectF& rect, const HeatmapFigure& figure);
void render(QPainter& painter, const QRectF& rect, const LinePlotFigure& figure);
void render(QPainter& painter, const QRectF& rect, const BarChartFigure& figure);
void render(QPainter& painter, const QRectF& rect, const ScatterFigure& figure);
void render(QPainter& painter, const QRectF& rect, const TokenFigure& figure);
void render(QPainter& painter, const QRectF& rect, const NeuronFigure& figure);

struct FigureSaveOptions {
    double dpi = 150;  ///< PNG only: pixels = points · dpi / 72
    QSizeF size;       ///< points; empty = preferredFigureSize()
};

/// Limits that keep a bad --dpi from allocating gigabytes.
inline constexpr double kMinFigureDpi = 36;
inline constexpr double kMaxFigureDpi = 1200;

/// The encoded file (PNG, SVG or a one-page PDF) in memory; for embedding in reports.
Result<QByteArray> encodeFigure(const Figure& figure, FigureFormat format, const FigureSaveOptions& options = {});
/// A PDF with one page per figure, each page sized to its figure.
Result<QByteArray> encodeFiguresPdf(const std::vector<Figure>& figures, const FigureSaveOptions& options = {});

/// Encodes and writes atomically (temp file + rename); errors name the path.
Status saveFigure(const Figure& figure, const QString& path, FigureFormat format,
                  const FigureSaveOptions& options = {});
Status saveFiguresPdf(const std::vector<Figure>& figures, const QString& path, const FigureSaveOptions& options = {});

}  // namespace attnscope
