#include "colormap.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace attnscope {

namespace {
// Perceptually uniform maps sampled at 9 evenly spaced points (matplotlib's viridis and magma);
// linear interpolation between them stays within a few levels of the full 256-entry tables.
// Core has no colormap API yet (attnscope/image.h was planned); when it lands this should
// delegate to it so the Qt-free CLI and the views share one table.
constexpr int kStops = 9;
using Stops = std::array<unsigned, kStops>;
constexpr Stops kViridis = {0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e, 0x1f9e89, 0x35b779, 0x6ece58, 0xfde725};
constexpr Stops kMagma = {0x000004, 0x1c1044, 0x4f127b, 0x812581, 0xb5367a, 0xe55064, 0xfb8861, 0xfec287, 0xfcfdbf};
constexpr Stops kGray = {0x000000, 0x202020, 0x404040, 0x606060, 0x808080, 0x9f9f9f, 0xbfbfbf, 0xdfdfdf, 0xffffff};

const Stops& stopsFor(const QString& name) {
    if (name == QLatin1String("magma")) return kMagma;
    if (name == QLatin1String("gray") || name == QLatin1String("grey")) return kGray;
    return kViridis;
}

int channel(unsigned rgb, int shift) { return int((rgb >> shift) & 0xffu); }
}  // namespace

QColor colormapColor(const QString& name, double t) {
    const Stops& s = stopsFor(name);
    if (!std::isfinite(t)) t = 0;
    const double x = std::clamp(t, 0.0, 1.0) * (kStops - 1);
    const int i = std::min(int(x), kStops - 2);
    const double f = x - i;
    auto mix = [&](int shift) { return int(std::lround(channel(s[size_t(i)], shift) * (1 - f) + channel(s[size_t(i + 1)], shift) * f)); };
    return QColor(mix(16), mix(8), mix(0));
}

}  // namespace attnscope
