#include "mapcoloring.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "colormap.h"

namespace attnscope {

namespace {
constexpr float kTinyValue = 1e-12f;

const std::array<QRgb, kColorLevels>& lut(const QString& name) {
    // One table per colormap name; the views only use a couple of names.
    static thread_local QString cachedName;
    static thread_local std::array<QRgb, kColorLevels> table{};
    if (cachedName != name || table[kColorLevels - 1] == 0) {
        table = colormapRgbTable(name);
        cachedName = name;
    }
    return table;
}

size_t level(double unit) { return size_t(std::lround(unit * (kColorLevels - 1))); }
}  // namespace

float MapColoring::vmin() const { return logScale ? float(logScaleFloor(double(vmax))) : 0.0f; }

double MapColoring::unit(float v) const {
    if (!(vmax > 0)) return 0.0;
    const double t = logScale ? scaleValue(v, ColorScale::Log, logScaleFloor(double(vmax)), double(vmax))
                              : scaleValue(v, ColorScale::Linear, 0.0, double(vmax));
    return std::isnan(t) ? 0.0 : t;
}

QRgb MapColoring::color(float v) const { return lut(colormap)[level(unit(v))]; }

const std::vector<float>& pooledValues(const AttentionMap& map, bool maxPooling) {
    return maxPooling ? map.max : map.mean;
}

float pooledMaximum(const AttentionMap& map, bool maxPooling) {
    float m = kTinyValue;
    for (float v : pooledValues(map, maxPooling))
        if (std::isfinite(v)) m = std::max(m, v);
    return m;
}

QImage colorizeMap(const AttentionMap& map, const MapColoring& coloring, bool shadeMasked, QColor maskColor) {
    QImage image(std::max(map.width, 1), std::max(map.height, 1), QImage::Format_RGB32);
    const auto& values = pooledValues(map, coloring.maxPooling);
    const auto& table = lut(coloring.colormap);
    const QRgb masked = maskColor.rgb();
    const QRgb invalid = qRgb(kInvalidColor.r, kInvalidColor.g, kInvalidColor.b);
    const bool hasAllowed = map.allowed.size() == values.size();
    for (int y = 0; y < map.height; ++y) {
        auto* line = reinterpret_cast<QRgb*>(image.scanLine(y));
        for (int x = 0; x < map.width; ++x) {
            const size_t i = size_t(y) * size_t(map.width) + size_t(x);
            if (i >= values.size()) {
                line[x] = masked;
                continue;
            }
            if (shadeMasked && hasAllowed && map.allowed[i] <= 0.f)
                line[x] = masked;
            else if (!std::isfinite(values[i]))
                line[x] = invalid;
            else
                line[x] = table[level(coloring.unit(values[i]))];
        }
    }
    return image;
}

}  // namespace attnscope
