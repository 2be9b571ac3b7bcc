#pragma once
// Colour mapping of pooled attention maps for the interactive views: linear or log scale over an
// automatic range, masked cells shaded. Colours come from the figure renderer's colormaps, so the
// screen and exported figures agree.
#include <QColor>
#include <QImage>
#include <QString>

#include "attnscope/attention.h"

namespace attnscope {

struct MapColoring {
    /// Decades shown by the log scale below the maximum (smaller values clamp to the bottom).
    static constexpr double kLogDecades = 4.0;

    bool logScale = true;
    bool maxPooling = false;
    float vmax = 1.0f;
    QString colormap = QStringLiteral("viridis");

    float vmin() const;
    /// Position of `v` on the colour bar, in [0, 1].
    double unit(float v) const;
    QRgb color(float v) const;
};

/// The values a coloring shows (mean or max pooling).
const std::vector<float>& pooledValues(const AttentionMap& map, bool maxPooling);
/// Largest finite pooled value (the automatic top of the range); a tiny positive value when empty.
float pooledMaximum(const AttentionMap& map, bool maxPooling);
/// The map as an image, one pixel per cell. With `shadeMasked`, cells the mask rules out entirely
/// are drawn in `maskColor` rather than as zero.
QImage colorizeMap(const AttentionMap& map, const MapColoring& coloring, bool shadeMasked, QColor maskColor);

}  // namespace attnscope
