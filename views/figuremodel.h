#pragma once
// The figure model: plain data for every publication figure (no Qt widgets, no engine types).
// Builders (figurebuilders.h) fill these from the engine's results; figure.h renders them with
// QPainter to PNG, SVG and PDF so the GUI's File > Export and the CLI produce identical files.
#include <QPoint>
#include <QString>
#include <QStringList>

#include <cmath>
#include <cstdint>
#include <limits>
#include <variant>
#include <vector>

#include "attnscope/image.h"  // ColorScale, the colormaps and the log floor: core's, one home

namespace attnscope {

/// A colour-mapped matrix with axes: the attention map, the head grid, the similarity matrix.
struct HeatmapFigure {
    QString title;
    QString subtitle;  ///< one line under the title (model, pooling, rectangle)
    int rows = 0, cols = 0;
    std::vector<float> values;  ///< row-major [rows × cols]; NaN = no data (drawn hatched grey)
    ColorScale scale = ColorScale::Linear;
    float vmin = std::numeric_limits<float>::quiet_NaN();  ///< NaN: from the data
    float vmax = std::numeric_limits<float>::quiet_NaN();
    QString colormap = QStringLiteral("viridis");
    QString colorBarLabel;
    QString xLabel, yLabel;
    /// Numeric axes: column c covers positions [x0 + c·(x1-x0)/cols, …); same for rows.
    int64_t x0 = 0, x1 = 0, y0 = 0, y1 = 0;
    /// Category labels per column / row (tokens, "H3", "L2"); when set they replace numeric
    /// ticks and are thinned to what fits.
    QStringList xCategories, yCategories;
    bool annotate = false;            ///< print each cell's value when the cells are large enough
    std::vector<QPoint> highlighted;  ///< (col, row) cells outlined (selected heads)
};

/// One or more (x, y) series on numeric axes: alpha per key, density against gamma.
struct LineSeries {
    QString name;
    std::vector<double> x, y;
    bool markers = false;
    bool stems = false;  ///< vertical lines from 0 (a sparse per-key profile reads better this way)
};
struct ReferenceLine {
    double y = 0;
    QString label;
};
struct PointLabel {
    double x = 0, y = 0;
    QString text;
};
struct LinePlotFigure {
    QString title, subtitle;
    QString xLabel, yLabel;
    bool logX = false, logY = false;
    double yMin = std::numeric_limits<double>::quiet_NaN();  ///< NaN: from the data
    double yMax = std::numeric_limits<double>::quiet_NaN();
    std::vector<LineSeries> series;
    std::vector<ReferenceLine> references;  ///< dashed horizontal thresholds (eps = 0.3 …)
    std::vector<PointLabel> labels;         ///< annotated points (detected sinks)
};

/// Grouped bars: per category one bar per group (mask recall per mask, time per variant).
struct BarGroup {
    QString name;
    std::vector<double> values;           ///< one per category; NaN = missing
    std::vector<double> errLow, errHigh;  ///< optional whiskers (absolute values), same length
};
struct BarChartFigure {
    QString title, subtitle;
    QString valueLabel;  ///< the numeric axis
    QStringList categories;
    std::vector<BarGroup> groups;
    bool horizontal = true;  ///< category labels read better on the left
    bool logValue = false;
    double valueMax = std::numeric_limits<double>::quiet_NaN();  ///< NaN: from the data
};

/// Labelled points with an optional Pareto frontier (speed against accuracy).
struct ScatterPoint {
    double x = 0, y = 0;
    QString label;
};
struct ScatterFigure {
    QString title, subtitle;
    QString xLabel, yLabel;
    bool logX = false, logY = false;
    std::vector<ScatterPoint> points;
    /// Draw the frontier of points not dominated when both x and y are minimised.
    bool paretoFrontier = true;
};

/// BertViz-style head view: query tokens on the left, key tokens on the right, joined by lines
/// whose opacity is the attention weight; one colour per head.
struct TokenHeadLines {
    QString name;
    std::vector<float> weights;  ///< row-major [queries × keys] of the window
};
struct TokenFigure {
    QString title, subtitle;
    QStringList queryTokens;                 ///< the window's query tokens (left column)
    QStringList keyTokens;                   ///< the window's key tokens (right column)
    int64_t queryOffset = 0, keyOffset = 0;  ///< positions of the first row / column
    std::vector<TokenHeadLines> heads;
    int focusQuery = -1;      ///< >= 0: only this query's lines (hover focus)
    float minWeight = 0.01f;  ///< lines below this weight are not drawn
};

/// Neuron view for one query/key pair: q, k and q ⊙ k per dimension, with the sum q·k.
struct NeuronFigure {
    QString title, subtitle;
    QString queryToken, keyToken;
    std::vector<float> q, k;
    double scale = 1.0;                                             ///< the layer's score scale (shown with the sum)
    double probability = std::numeric_limits<double>::quiet_NaN();  ///< softmax p, when known
};

using Figure = std::variant<HeatmapFigure, LinePlotFigure, BarChartFigure, ScatterFigure, TokenFigure, NeuronFigure>;

/// The figure's title (for file names, PDF page titles and report captions).
QString figureTitle(const Figure& figure);

}  // namespace attnscope
