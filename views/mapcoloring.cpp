#include "mapcoloring.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "colormap.h"

namespace attnscope {

namespace {
constexpr int kLutSize = 256;
constexpr float kTinyValue = 1e-12f;

const std::array<QRgb, kLutSize>& lut(const QString& name)
{
    // One table per colormap name; the views only use a couple of names.
    static thread_local QString cachedName;
    static thread_local std::array<QRgb, kLutSize> table{};
    if (cachedName != name || table[kLutSize - 1] == 0) {
        for (int i = 0; i < kLutSize; ++i)
            table[size_t(i)] = colormapColor(name, double(i) / (kLutSize - 1)).rgb();
        cachedName = name;
    }
    return table;
}
}  // namespace

float MapColoring::vmin() const
{
    return logScale ? float(double(vmax) * std::pow(10.0, -kLogDecades)) : 0.0f;
}

double MapColoring::unit(float v) const
{
    if (!(v > 0) || !(vmax > 0))
        return 0.0;
    if (logScale)
        return std::clamp((std::log10(double(v)) - std::log10(double(vmax))) / kLogDecades + 1.0, 0.0, 1.0);
    return std::clamp(double(v) / double(vmax), 0.0, 1.0);
}

QRgb MapColoring::color(float v) const
{
    return lut(colormap)[size_t(std::lround(unit(v) * (kLutSize - 1)))];
}

const std::vector<float>& pooledValues(const AttentionMap& map, bool maxPooling)
{
    return maxPooling ? map.max : map.mean;
}

float pooledMaximum(const AttentionMap& map, bool maxPooling)
{
    float m = kTinyValue;
    for (float v : pooledValues(map, maxPooling))
        if (std::isfinite(v))
            m = std::max(m, v);
    return m;
}

QImage colorizeMap(const AttentionMap& map, const MapColoring& coloring, bool shadeMasked, QColor maskColor)
{
    QImage image(std::max(map.width, 1), std::max(map.height, 1), QImage::Format_RGB32);
    const auto& values = pooledValues(map, coloring.maxPooling);
    const auto& table = lut(coloring.colormap);
    const QRgb masked = maskColor.rgb();
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
            else
                line[x] = table[size_t(std::lround(coloring.unit(values[i]) * (kLutSize - 1)))];
        }
    }
    return image;
}

}  // namespace attnscope
