// Colormaps, colour scales and the PNG writer: the file's structure is decoded here by hand
// (signature, chunk CRCs, IHDR, zlib stored blocks, Adler-32) and its pixels compared.
#include <QtTest>

#include <QTemporaryDir>
#include <fstream>
#include <iterator>
#include <random>

#include "attnscope/image.h"
#include "brute_attention.h"
#include "png_checksums.h"

using namespace attnscope;

namespace {
uint32_t readU32(const std::vector<uint8_t>& b, size_t at) {
    return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) | b[at + 3];
}

struct DecodedPng {
    bool ok = false;
    QString error;
    int width = 0, height = 0;
    std::vector<uint8_t> raw;  ///< inflated scanlines (filter byte + RGB)
};

/// Minimal decoder for what encodePng writes: checks every chunk CRC and the zlib framing.
DecodedPng decode(const std::vector<uint8_t>& png) {
    DecodedPng d;
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (png.size() < 8 || !std::equal(sig, sig + 8, png.begin())) return d.error = "bad signature", d;
    std::vector<uint8_t> idat;
    size_t pos = 8;
    bool sawEnd = false;
    while (pos + 12 <= png.size()) {
        const uint32_t len = readU32(png, pos);
        if (pos + 12 + len > png.size()) return d.error = "chunk past end", d;
        const std::string type(png.begin() + long(pos + 4), png.begin() + long(pos + 8));
        if (crc32(png.data() + pos + 4, len + 4) != readU32(png, pos + 8 + len)) return d.error = "CRC mismatch", d;
        const uint8_t* data = png.data() + pos + 8;
        if (type == "IHDR") {
            if (len != 13) return d.error = "IHDR length", d;
            d.width = int(readU32(png, pos + 8));
            d.height = int(readU32(png, pos + 12));
            if (data[8] != 8 || data[9] != 2) return d.error = "not 8-bit RGB", d;
        } else if (type == "IDAT") {
            idat.insert(idat.end(), data, data + len);
        } else if (type == "IEND") {
            sawEnd = true;
        }
        pos += 12 + len;
    }
    if (!sawEnd || pos != png.size()) return d.error = "no IEND at the end", d;
    if (idat.size() < 6 || ((idat[0] << 8) | idat[1]) % 31 != 0 || (idat[0] & 0x0F) != 8)
        return d.error = "zlib header", d;
    size_t z = 2;
    for (bool last = false; !last;) {
        if (z + 5 > idat.size()) return d.error = "truncated deflate", d;
        last = idat[z] & 1;
        if ((idat[z] >> 1) != 0) return d.error = "not a stored block", d;
        const uint16_t len = uint16_t(idat[z + 1] | (idat[z + 2] << 8));
        const uint16_t nlen = uint16_t(idat[z + 3] | (idat[z + 4] << 8));
        if (uint16_t(~len) != nlen) return d.error = "LEN/NLEN mismatch", d;
        d.raw.insert(d.raw.end(), idat.begin() + long(z + 5), idat.begin() + long(z + 5 + len));
        z += 5 + len;
    }
    if (z + 4 != idat.size() || adler32(d.raw.data(), d.raw.size()) != readU32(idat, z)) return d.error = "Adler-32", d;
    d.ok = true;
    return d;
}
}  // namespace

class TestImage : public QObject {
    Q_OBJECT
private slots:
    void checksumsMatchKnownValues();
    void colormapEndpoints();
    void sharedScales();
    void scales();
    void colorizeAutoRange();
    void pngStructure_data();
    void pngStructure();
    void writePngIsAtomicAndChecked();
};

void TestImage::checksumsMatchKnownValues() {
    const std::string check = "123456789";  // the CRC catalogue's check input
    QCOMPARE(crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
    const std::string wiki = "Wikipedia";
    QCOMPARE(adler32(reinterpret_cast<const uint8_t*>(wiki.data()), wiki.size()), 0x11E60398u);
}

void TestImage::colormapEndpoints() {
    QCOMPARE(colormapColor(Colormap::Viridis, 0.0), (Rgb{68, 1, 84}));
    QCOMPARE(colormapColor(Colormap::Viridis, 1.0), (Rgb{253, 231, 37}));
    QCOMPARE(colormapColor(Colormap::Magma, 0.0), (Rgb{0, 0, 4}));
    QCOMPARE(colormapColor(Colormap::Magma, 1.0), (Rgb{252, 253, 191}));
    QCOMPARE(colormapColor(Colormap::Diverging, 0.5), (Rgb{247, 247, 247}));
    QCOMPARE(colormapColor(Colormap::Viridis, -3.0), colormapColor(Colormap::Viridis, 0.0));
    QCOMPARE(colormapColor(Colormap::Magma, 7.0), colormapColor(Colormap::Magma, 1.0));
    // Luminance rises monotonically along the sequential maps.
    for (Colormap m : {Colormap::Viridis, Colormap::Magma}) {
        double prev = -1;
        for (int i = 0; i <= 20; ++i) {
            const Rgb c = colormapColor(m, i / 20.0);
            const double lum = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b;
            QVERIFY2(lum > prev, colormapName(m));
            prev = lum;
        }
    }
    QCOMPARE(parseColormap("magma").value(), Colormap::Magma);
    QCOMPARE(parseColormap("grey").value(), Colormap::Gray);
    QVERIFY(!parseColormap("jet").ok());
    // matplotlib's viridis(linspace(0, 1, 9)) at its samples (the views once used a skewed table).
    QCOMPARE(colormapColor(Colormap::Viridis, 0.125), (Rgb{71, 44, 122}));
    QCOMPARE(colormapColor(Colormap::Viridis, 0.5), (Rgb{33, 144, 141}));
    QCOMPARE(colormapColor(Colormap::Gray, 0.5), (Rgb{128, 128, 128}));
    QCOMPARE(colormapColor(Colormap::Magma, std::nan("")), colormapColor(Colormap::Magma, 0.0));
    // The drawn levels: the table at i / 255, t rounded to the nearest level.
    for (Colormap m : {Colormap::Viridis, Colormap::Magma, Colormap::Diverging, Colormap::Gray}) {
        const auto& table = colormapTable(m);
        for (int i = 0; i < kColorLevels; i += 17) QCOMPARE(table[size_t(i)], colormapColor(m, i / 255.0));
        QCOMPARE(colormapLevel(m, 0.5), table[128]);
        QCOMPARE(colormapLevel(m, 0.5 / 255 - 1e-9), table[0]);
        QCOMPARE(colormapLevel(m, 2.0), table[255]);
    }
}

void TestImage::sharedScales() {
    QCOMPARE(kLogScaleDecades, 4.0);
    QVERIFY(std::abs(logScaleFloor(0.5) - 0.5e-4) < 1e-18);
    // 1-2-5 steps: the smallest 1, 2 or 5 x 10^k at least as large as the raw step.
    const std::pair<double, double> cases[] = {{0.7, 1},  {1, 1},   {1.01, 2},    {2, 2},     {3, 5},
                                               {5.5, 10}, {12, 20}, {0.03, 0.05}, {450, 500}, {0.0011, 0.002}};
    for (const auto& [raw, step] : cases)
        QVERIFY2(std::abs(niceTickStep(raw) - step) < 1e-12 * step, qPrintable(QString::number(raw)));
    QCOMPARE(niceTickStep(0), 1.0);
    QCOMPARE(niceTickStep(std::nan("")), 1.0);
    // Against the definition on random raw steps over 12 decades.
    std::mt19937_64 rng(testing::freshSeed());
    std::uniform_real_distribution<double> exponent(-6, 6);
    for (int i = 0; i < 1000; ++i) {
        const double raw = std::pow(10.0, exponent(rng));
        const double step = niceTickStep(raw);
        QVERIFY(step >= raw * (1 - 1e-12));
        const double mantissa = step / std::pow(10.0, std::floor(std::log10(step) + 1e-12));
        QVERIFY2(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 || std::abs(mantissa - 5) < 1e-9,
                 qPrintable(QString::number(step)));
        // The next smaller 1-2-5 step would be too small.
        const double smaller = std::abs(mantissa - 1) < 1e-9   ? step / 2
                               : std::abs(mantissa - 2) < 1e-9 ? step / 2
                                                               : step * 0.4;
        QVERIFY(smaller < raw * (1 + 1e-12));
    }
}

void TestImage::scales() {
    QCOMPARE(scaleValue(5, ColorScale::Linear, 0, 10), 0.5);
    QCOMPARE(scaleValue(-1, ColorScale::Linear, 0, 10), 0.0);
    QCOMPARE(scaleValue(1e-3, ColorScale::Log, 1e-6, 1), 0.5);
    QCOMPARE(scaleValue(0, ColorScale::Log, 1e-6, 1), 0.0);
    QVERIFY(std::isnan(scaleValue(std::nan(""), ColorScale::Linear, 0, 1)));
}

void TestImage::colorizeAutoRange() {
    const std::vector<float> v = {0.0f, 0.5f, 1.0f, std::nanf("")};
    const Image img = colorize(v, 2, 2);
    QCOMPARE(img.pixel(0, 0), colormapLevel(Colormap::Viridis, 0));
    QCOMPARE(img.pixel(1, 0), colormapLevel(Colormap::Viridis, 0.5));
    QCOMPARE(img.pixel(0, 1), colormapLevel(Colormap::Viridis, 1));
    QCOMPARE(img.pixel(1, 1), kInvalidColor);
    const std::vector<float> diff = {-2.0f, 0.0f, 1.0f};
    const Image d = colorize(diff, 3, 1, {Colormap::Diverging, ColorScale::Linear});
    QCOMPARE(d.pixel(1, 0), (Rgb{247, 247, 247}));
    QCOMPARE(d.pixel(0, 0), colormapColor(Colormap::Diverging, 0));
    // Log: kLogScaleDecades (4) below the maximum, whatever the smallest positive value.
    const std::vector<float> logv = {1e-5f, 1e-2f, 2.0f, 0.0f};
    const Image l = colorize(logv, 4, 1, {Colormap::Magma, ColorScale::Log});
    QCOMPARE(l.pixel(0, 0), colormapLevel(Colormap::Magma, 0));  // below the floor 2e-4
    QCOMPARE(l.pixel(1, 0), colormapLevel(Colormap::Magma, (std::log10(1e-2f) - std::log10(2e-4)) / 4));
    QCOMPARE(l.pixel(2, 0), colormapLevel(Colormap::Magma, 1));
    QCOMPARE(l.pixel(3, 0), colormapLevel(Colormap::Magma, 0));
    const std::vector<float> narrow = {0.5f, 1.0f};  // one decade: not stretched to [min, max]
    const Image n = colorize(narrow, 2, 1, {Colormap::Viridis, ColorScale::Log});
    QCOMPARE(n.pixel(0, 0), colormapLevel(Colormap::Viridis, (std::log10(0.5) + 4) / 4));
}

void TestImage::pngStructure_data() {
    QTest::addColumn<int>("width");
    QTest::addColumn<int>("height");
    QTest::newRow("1x1") << 1 << 1;
    QTest::newRow("3x2") << 3 << 2;
    QTest::newRow("300x300 (several stored blocks)") << 300 << 300;
}

void TestImage::pngStructure() {
    QFETCH(int, width);
    QFETCH(int, height);
    Image img;
    img.width = width;
    img.height = height;
    img.rgb.resize(size_t(width * height * 3));
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 7 + 3);
    const DecodedPng d = decode(encodePng(img));
    QVERIFY2(d.ok, qPrintable(d.error));
    QCOMPARE(d.width, width);
    QCOMPARE(d.height, height);
    QCOMPARE(d.raw.size(), size_t(height) * (size_t(width) * 3 + 1));
    for (int y = 0; y < height; ++y) {
        const uint8_t* line = d.raw.data() + size_t(y) * (size_t(width) * 3 + 1);
        QCOMPARE(int(line[0]), 0);
        QVERIFY(std::equal(line + 1, line + 1 + width * 3, img.rgb.begin() + long(size_t(y) * size_t(width) * 3)));
    }
}

void TestImage::writePngIsAtomicAndChecked() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("map.png").toStdString();
    const Image img = colorize({0.1f, 0.2f, 0.3f, 0.4f}, 2, 2);
    QVERIFY(writePng(path, img).ok());
    std::ifstream in(path, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    QCOMPARE(bytes, encodePng(img));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files).size(), 1);  // no temp file left behind
    Image broken = img;
    broken.rgb.pop_back();
    const Status s = writePng(path, broken);
    QCOMPARE(s.code(), ErrorCode::InvalidArgument);
    QVERIFY(s.message().find("map.png") != std::string::npos);
    QVERIFY(!writePng(dir.filePath("no/such/dir/x.png").toStdString(), img).ok());
}

QTEST_GUILESS_MAIN(TestImage)
#include "tst_image.moc"
