#pragma once
// The Qt adapter of core's colormaps (attnscope/image.h, their one home), so the screen, exported
// figures and the CLI's PNGs draw the same colours.
#include <array>

#include <QColor>
#include <QString>

#include "attnscope/image.h"

namespace attnscope {

/// Colour of colormap `name` ("viridis", "magma", "diverging", "gray") at t in [0, 1] (clamped),
/// interpolated; unknown names fall back to viridis.
QColor colormapColor(const QString& name, double t);
/// The same at t rounded to one of core's kColorLevels levels: the colours of colorize().
QColor colormapLevelColor(const QString& name, double t);
/// Core's level table as QRgb (index i is t = i / (kColorLevels − 1)).
std::array<QRgb, kColorLevels> colormapRgbTable(const QString& name);

}  // namespace attnscope
