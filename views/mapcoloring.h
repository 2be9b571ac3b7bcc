#pragma once
// Colour mapping of pooled attention maps for the interactive views: linear or log scale over an
// automatic range, masked cells shaded. The colours, the log floor and the levels are core's
// (attnscope/image.h, attnscope/scales.h), so the screen, exported figures and the CLI's PNGs agree.
#include <QColor>
#include <QImage>
#include <QString>

#include "attnscope/attention.h"

namespace attnscope {

struct MapColoring {
    bool logScale = true;
    bool maxPooling = false;
    float vmax = 1.0f;
    QString colormap = QStringLiteral("viridis");

    /// The bottom of the scale: logScaleFloor(vmax) on a log scale, else 0.
    float vmin() const;
    /// Position of `v` on the colour bar, in [0, 1] (core's scaleValue; 0 for NaN/Inf).
    double unit(float v) const;
    QRgb color(float v) const;
};

/// The values a coloring shows (mean or max pooling).
const std::vector<float>& pooledValues(const AttentionMap& map, bool maxPooling);
/// Largest finite pooled value (the automatic top of the range); a tiny positive value when empty.
float pooledMaximum(const AttentionMap& map, bool maxPooling);
/// The map as an image, one pixel per cell, in the bytes colorize() writes for the same values,
/// scale and maximum. With `shadeMasked`, cells the mask rules out entirely are drawn in
/// `maskColor` rather than as zero; NaN/Inf cells in core's kInvalidColor, as the CLI draws them.
QImage colorizeMap(const AttentionMap& map, const MapColoring& coloring, bool shadeMasked, QColor maskColor);

}  // namespace attnscope
