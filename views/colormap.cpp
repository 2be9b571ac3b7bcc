#include "colormap.h"

#include "attnscope/image.h"

namespace attnscope {

namespace {
Colormap colormapOf(const QString& name) {
    const auto parsed = parseColormap(name.toStdString());
    return parsed ? *parsed : Colormap::Viridis;
}
QColor toQColor(Rgb c) { return QColor(c.r, c.g, c.b); }
}  // namespace

QColor colormapColor(const QString& name, double t) { return toQColor(attnscope::colormapColor(colormapOf(name), t)); }

QColor colormapLevelColor(const QString& name, double t) { return toQColor(colormapLevel(colormapOf(name), t)); }

std::array<QRgb, kColorLevels> colormapRgbTable(const QString& name) {
    const auto& table = colormapTable(colormapOf(name));
    std::array<QRgb, kColorLevels> out{};
    for (size_t i = 0; i < out.size(); ++i) out[i] = qRgb(table[i].r, table[i].g, table[i].b);
    return out;
}

}  // namespace attnscope
