#pragma once
// Qt-free image output for the CLI and reports, and the one home of the colormaps every front end
// draws with (views/colormap.h is the Qt adapter): colormaps, linear/log colour scales and a small
// PNG encoder (zlib stream with stored deflate blocks, CRC-32 and Adler-32 written by hand).
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "attnscope/scales.h"
#include "attnscope/status.h"

namespace attnscope {

enum class Colormap {
    Viridis,    ///< perceptually ordered, dark blue → yellow (default for maps)
    Magma,      ///< black → purple → light yellow
    Diverging,  ///< blue ← white → red, for difference maps (0 is white)
    Gray,       ///< black → white
};
const char* colormapName(Colormap map);
/// "viridis", "magma", "diverging", "gray" (also "grey").
Result<Colormap> parseColormap(std::string_view name);

struct Rgb {
    uint8_t r = 0, g = 0, b = 0;
    bool operator==(const Rgb&) const = default;
};
/// Colour at t ∈ [0, 1] (clamped; NaN gives the bottom colour), interpolated between the map's
/// control points.
Rgb colormapColor(Colormap map, double t);
/// Levels a colour scale is drawn with: t is rounded to one of kColorLevels evenly spaced values,
/// in colorize() and in the views' lookup tables alike, so their pixels are the same bytes
/// (colorize() interpolates the diverging map exactly, so that 0 stays white).
inline constexpr int kColorLevels = 256;
/// The map's colours at t = i / (kColorLevels − 1).
const std::array<Rgb, kColorLevels>& colormapTable(Colormap map);
/// The table's colour for t ∈ [0, 1] (clamped; NaN gives the bottom colour).
Rgb colormapLevel(Colormap map, double t);
/// Colour shown for NaN / Inf cells, outside every colormap.
constexpr Rgb kInvalidColor{255, 0, 255};

enum class ColorScale { Linear, Log };

/// Maps `value` to [0, 1] over [lo, hi]. Log: log10 between lo and hi (lo > 0); values ≤ lo give
/// 0. Returns NaN for non-finite values.
double scaleValue(double value, ColorScale scale, double lo, double hi);

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;
    Rgb pixel(int x, int y) const;
};

struct ColorizeOptions {
    Colormap map = Colormap::Viridis;
    ColorScale scale = ColorScale::Linear;
    /// Range; NaN = automatic: linear [0, max] (diverging: [−a, a], a = max |v|); log
    /// [logScaleFloor(max), max] (kLogScaleDecades below the maximum, as the GUI draws maps).
    double lo = std::numeric_limits<double>::quiet_NaN();
    double hi = std::numeric_limits<double>::quiet_NaN();
};

/// Colours a row-major [height × width] grid of values.
///   Image img = colorize(map.mean, map.width, map.height, {Colormap::Magma, ColorScale::Log});
Image colorize(const std::vector<float>& values, int width, int height, const ColorizeOptions& options = {});

/// The PNG file bytes of `image` (8-bit RGB, no interlace).
std::vector<uint8_t> encodePng(const Image& image);
/// Encodes and writes atomically (temp file + rename).
Status writePng(const std::string& path, const Image& image);

}  // namespace attnscope
