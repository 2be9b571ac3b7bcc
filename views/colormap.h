#pragma once
// Colormaps for figures and the interactive views (one source, so screen and exports agree).
// The tables themselves live in core (attnscope/image.h); this is the Qt-side accessor.
#include <QColor>
#include <QString>

namespace attnscope {

/// Colour of colormap `name` ("viridis", "magma", …) at t in [0, 1] (clamped); unknown names
/// fall back to viridis.
QColor colormapColor(const QString& name, double t);

}  // namespace attnscope
