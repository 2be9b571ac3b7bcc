// Colormaps, colour scales and a dependency-free PNG writer.
#include "attnscope/image.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "attnscope/trace.h"
#include "png_checksums.h"

namespace attnscope {

namespace {

struct ControlPoint {
    double t;
    Rgb c;
};

// matplotlib's viridis and magma sampled at 9 evenly spaced points (viridis(linspace(0, 1, 9))),
// a ColorBrewer-like blue–white–red; linear RGB interpolation between them stays within a few
// levels of the full 256-entry tables.
constexpr std::array<ControlPoint, 9> kViridis = {{{0.000, {68, 1, 84}},
                                                   {0.125, {71, 44, 122}},
                                                   {0.250, {59, 81, 139}},
                                                   {0.375, {44, 113, 142}},
                                                   {0.500, {33, 144, 141}},
                                                   {0.625, {39, 173, 129}},
                                                   {0.750, {92, 200, 99}},
                                                   {0.875, {170, 220, 50}},
                                                   {1.000, {253, 231, 37}}}};
constexpr std::array<ControlPoint, 9> kMagma = {{{0.000, {0, 0, 4}},
                                                 {0.125, {28, 16, 68}},
                                                 {0.250, {79, 18, 123}},
                                                 {0.375, {129, 37, 129}},
                                                 {0.500, {181, 54, 122}},
                                                 {0.625, {229, 80, 100}},
                                                 {0.750, {251, 135, 97}},
                                                 {0.875, {254, 194, 135}},
                                                 {1.000, {252, 253, 191}}}};
constexpr std::array<ControlPoint, 5> kDiverging = {{{0.00, {33, 102, 172}},
                                                     {0.25, {103, 169, 207}},
                                                     {0.50, {247, 247, 247}},
                                                     {0.75, {239, 138, 98}},
                                                     {1.00, {178, 24, 43}}}};
constexpr std::array<ControlPoint, 2> kGray = {{{0.0, {0, 0, 0}}, {1.0, {255, 255, 255}}}};

template <size_t N>
Rgb interpolate(const std::array<ControlPoint, N>& pts, double t) {
    t = std::isnan(t) ? 0.0 : std::clamp(t, 0.0, 1.0);
    size_t i = 1;
    while (i + 1 < N && pts[i].t < t) ++i;
    const ControlPoint& a = pts[i - 1];
    const ControlPoint& b = pts[i];
    const double f = (t - a.t) / (b.t - a.t);
    auto mix = [f](uint8_t x, uint8_t y) { return static_cast<uint8_t>(std::lround(x + f * (double(y) - double(x)))); };
    return {mix(a.c.r, b.c.r), mix(a.c.g, b.c.g), mix(a.c.b, b.c.b)};
}

constexpr uint32_t kCrcPolynomial = 0xEDB88320u;  // reflected CRC-32 polynomial
constexpr uint32_t kAdlerModulus = 65521;         // largest prime below 2^16
constexpr size_t kStoredBlockMax = 65535;         // deflate stored blocks carry at most 2^16 − 1 bytes
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr uint8_t kBitDepth = 8, kColorTypeRgb = 2;

const std::array<uint32_t, 256>& crcTable() {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t n = 0; n < 256; ++n) {
            uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? kCrcPolynomial ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    return table;
}

void putU32(std::vector<uint8_t>& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

void putChunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
    putU32(out, static_cast<uint32_t>(data.size()));
    const size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    putU32(out, crc32(out.data() + start, out.size() - start));
}

}  // namespace

const char* colormapName(Colormap map) {
    switch (map) {
    case Colormap::Viridis: return "viridis";
    case Colormap::Magma: return "magma";
    case Colormap::Diverging: return "diverging";
    case Colormap::Gray: return "gray";
    }
    return "viridis";
}

Result<Colormap> parseColormap(std::string_view name) {
    for (Colormap m : {Colormap::Viridis, Colormap::Magma, Colormap::Diverging, Colormap::Gray})
        if (name == colormapName(m)) return m;
    if (name == "grey") return Colormap::Gray;
    return Status(ErrorCode::InvalidArgument,
                  "colormap '" + std::string(name) + "' is not one of viridis, magma, diverging, gray");
}

Rgb colormapColor(Colormap map, double t) {
    switch (map) {
    case Colormap::Magma: return interpolate(kMagma, t);
    case Colormap::Diverging: return interpolate(kDiverging, t);
    case Colormap::Gray: return interpolate(kGray, t);
    case Colormap::Viridis: break;
    }
    return interpolate(kViridis, t);
}

const std::array<Rgb, kColorLevels>& colormapTable(Colormap map) {
    using Table = std::array<Rgb, kColorLevels>;
    auto build = [](Colormap m) {
        Table t{};
        for (int i = 0; i < kColorLevels; ++i) t[size_t(i)] = colormapColor(m, double(i) / (kColorLevels - 1));
        return t;
    };
    static const std::array<Table, 4> tables = {build(Colormap::Viridis), build(Colormap::Magma),
                                                build(Colormap::Diverging), build(Colormap::Gray)};
    switch (map) {
    case Colormap::Magma: return tables[1];
    case Colormap::Diverging: return tables[2];
    case Colormap::Gray: return tables[3];
    case Colormap::Viridis: break;
    }
    return tables[0];
}

Rgb colormapLevel(Colormap map, double t) {
    t = std::isnan(t) ? 0.0 : std::clamp(t, 0.0, 1.0);
    return colormapTable(map)[size_t(std::lround(t * (kColorLevels - 1)))];
}

double scaleValue(double value, ColorScale scale, double lo, double hi) {
    if (!std::isfinite(value)) return std::numeric_limits<double>::quiet_NaN();
    if (scale == ColorScale::Log) {
        if (!(lo > 0) || !(hi > lo)) return value >= hi ? 1.0 : 0.0;
        if (value <= lo) return 0.0;
        return std::clamp((std::log10(value) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)), 0.0, 1.0);
    }
    if (!(hi > lo)) return value >= hi ? 1.0 : 0.0;
    return std::clamp((value - lo) / (hi - lo), 0.0, 1.0);
}

Rgb Image::pixel(int x, int y) const {
    const size_t i = (size_t(y) * size_t(width) + size_t(x)) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

Image colorize(const std::vector<float>& values, int width, int height, const ColorizeOptions& options) {
    Image img;
    img.width = std::max(0, width);
    img.height = std::max(0, height);
    const size_t n = std::min(values.size(), size_t(img.width) * size_t(img.height));
    double lo = options.lo, hi = options.hi;
    if (std::isnan(lo) || std::isnan(hi)) {
        double maxV = 0, maxAbs = 0;
        for (size_t i = 0; i < n; ++i) {
            const double v = values[i];
            if (!std::isfinite(v)) continue;
            maxV = std::max(maxV, v);
            maxAbs = std::max(maxAbs, std::abs(v));
        }
        if (options.map == Colormap::Diverging) {
            if (std::isnan(lo)) lo = -maxAbs;
            if (std::isnan(hi)) hi = maxAbs;
        } else if (options.scale == ColorScale::Log) {
            if (std::isnan(hi)) hi = maxV > 0 ? maxV : 1.0;  // nothing positive: every cell at the bottom
            if (std::isnan(lo)) lo = logScaleFloor(hi);
        } else {
            if (std::isnan(lo)) lo = 0;
            if (std::isnan(hi)) hi = maxV;
        }
    }
    img.rgb.assign(size_t(img.width) * size_t(img.height) * 3, 0);
    for (size_t i = 0; i < n; ++i) {
        const double t = scaleValue(values[i], options.scale, lo, hi);
        // Diverging maps keep exact interpolation so that 0 stays white (t = 0.5 is no level).
        const Rgb c = std::isnan(t)                        ? kInvalidColor
                      : options.map == Colormap::Diverging ? colormapColor(options.map, t)
                                                           : colormapLevel(options.map, t);
        img.rgb[3 * i] = c.r;
        img.rgb[3 * i + 1] = c.g;
        img.rgb[3 * i + 2] = c.b;
    }
    return img;
}

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
    const auto& table = crcTable();
    uint32_t c = crc ^ 0xFFFFFFFFu;
    for (size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFFu] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t adler32(const uint8_t* data, size_t size, uint32_t adler) {
    uint32_t a = adler & 0xFFFFu, b = adler >> 16;
    for (size_t i = 0; i < size; ++i) {
        a = (a + data[i]) % kAdlerModulus;
        b = (b + a) % kAdlerModulus;
    }
    return (b << 16) | a;
}

std::vector<uint8_t> encodePng(const Image& image) {
    // Raw scanlines, each led by filter type 0 (none).
    const size_t stride = size_t(image.width) * 3;
    std::vector<uint8_t> raw;
    raw.reserve((stride + 1) * size_t(image.height));
    for (int y = 0; y < image.height; ++y) {
        raw.push_back(0);
        raw.insert(raw.end(), image.rgb.begin() + std::ptrdiff_t(size_t(y) * stride),
                   image.rgb.begin() + std::ptrdiff_t(size_t(y + 1) * stride));
    }
    // zlib stream: CMF/FLG (deflate, 32K window, no dictionary; 0x7801 is divisible by 31),
    // stored blocks, Adler-32 of the raw data.
    std::vector<uint8_t> z = {0x78, 0x01};
    size_t pos = 0;
    do {
        const size_t len = std::min(kStoredBlockMax, raw.size() - pos);
        const bool last = pos + len == raw.size();
        z.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
        z.push_back(static_cast<uint8_t>(len & 0xFF));
        z.push_back(static_cast<uint8_t>(len >> 8));
        z.push_back(static_cast<uint8_t>(~len & 0xFF));
        z.push_back(static_cast<uint8_t>((~len >> 8) & 0xFF));
        z.insert(z.end(), raw.begin() + std::ptrdiff_t(pos), raw.begin() + std::ptrdiff_t(pos + len));
        pos += len;
    } while (pos < raw.size());
    putU32(z, adler32(raw.data(), raw.size()));

    std::vector<uint8_t> png(std::begin(kPngSignature), std::end(kPngSignature));
    std::vector<uint8_t> ihdr;
    putU32(ihdr, static_cast<uint32_t>(image.width));
    putU32(ihdr, static_cast<uint32_t>(image.height));
    ihdr.insert(ihdr.end(), {kBitDepth, kColorTypeRgb, 0, 0, 0});  // deflate, adaptive filters, no interlace
    putChunk(png, "IHDR", ihdr);
    putChunk(png, "IDAT", z);
    putChunk(png, "IEND", {});
    return png;
}

Status writePng(const std::string& path, const Image& image) {
    if (image.width <= 0 || image.height <= 0 || image.rgb.size() != size_t(image.width) * size_t(image.height) * 3)
        return {ErrorCode::InvalidArgument, path + ": image " + std::to_string(image.width) + "x" +
                                                std::to_string(image.height) + " has no pixels or a wrong buffer size"};
    const std::vector<uint8_t> bytes = encodePng(image);
    return writeFileAtomic(path, bytes.data(), bytes.size());
}

}  // namespace attnscope
