// Renders every figure type to PNG, SVG and PDF and checks what is inside the files.
#include <QFile>
#include <QGuiApplication>
#include <QImage>
#include <QProcess>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include <set>

#include "figure.h"
#include "figurepainter.h"
#include "figuresamples.h"

using namespace attnscope;

Q_DECLARE_METATYPE(attnscope::Figure)

namespace {

struct SvgContent {
    bool wellFormed = false;
    QString error;
    QStringList texts;
    std::set<QString> elements;
};

SvgContent parseSvg(const QByteArray& bytes) {
    SvgContent c;
    QXmlStreamReader xml(bytes);
    QString currentText;
    while (!xml.atEnd()) {
        xml.readNext();
        if (xml.isStartElement()) c.elements.insert(xml.name().toString());
        if (xml.isCharacters() && !xml.isWhitespace()) currentText += xml.text();
        if (xml.isEndElement() && xml.name() == QLatin1String("text")) {
            c.texts << currentText.trimmed();
            currentText.clear();
        }
        if (xml.isEndElement() && xml.name() != QLatin1String("text")) currentText.clear();
    }
    c.wellFormed = !xml.hasError();
    c.error = xml.errorString();
    return c;
}

// Distinct colours in the image (a uniform or nearly blank image has very few).
int distinctColors(const QImage& img) {
    std::set<QRgb> colors;
    for (int y = 0; y < img.height(); y += 2)
        for (int x = 0; x < img.width(); x += 2) colors.insert(img.pixel(x, y));
    return int(colors.size());
}

// "Pages: N" from pdfinfo, -1 when pdfinfo is missing or fails.
int pdfPages(const QString& path) {
    const QString pdfinfo = QStandardPaths::findExecutable(QStringLiteral("pdfinfo"));
    if (pdfinfo.isEmpty()) return -1;
    QProcess proc;
    proc.start(pdfinfo, {path});
    if (!proc.waitForFinished(30000) || proc.exitCode() != 0) return -2;
    const QString out = QString::fromUtf8(proc.readAllStandardOutput());
    const auto m = QRegularExpression(QStringLiteral("Pages:\\s+(\\d+)")).match(out);
    return m.hasMatch() ? m.captured(1).toInt() : -3;
}

}  // namespace

class TestFigure : public QObject {
    Q_OBJECT

private slots:
    void figures_data();
    void png_data() { figures_data(); }
    void png();
    void svg_data() { figures_data(); }
    void svg();
    void pdfOnePagePerFigure();
    void pngSizeFollowsDpi_data();
    void pngSizeFollowsDpi();
    void heatmapUsesVectorCellsWhenSmall();
    void badInputIsRefused();
    void formatFromPath_data();
    void formatFromPath();
    void emptyFiguresSayNoData();
    void tokenLinesReadable();
};

void TestFigure::figures_data() {
    QTest::addColumn<Figure>("figure");
    QTest::addColumn<QString>("title");
    QTest::addColumn<QString>("element");  // an SVG element the figure must contain
    QTest::newRow("map-overview") << Figure(test::sampleMap(200, false)) << "Layer 1 head 3 map"
                                  << "image";
    QTest::newRow("map-tokens") << Figure(test::sampleMap(24, true)) << "Layer 1 head 3 map"
                                << "rect";
    QTest::newRow("grid") << Figure(test::sampleGrid()) << "Head grid: entropy"
                          << "rect";
    QTest::newRow("sinks") << Figure(test::sampleSinks()) << "Sink scores"
                           << "polyline";
    QTest::newRow("density") << Figure(test::sampleDensity()) << "Density against gamma"
                             << "path";
    QTest::newRow("bars") << Figure(test::sampleBars()) << "Mask recall"
                          << "rect";
    QTest::newRow("scatter") << Figure(test::sampleScatter()) << "Speed against accuracy"
                             << "circle";
    QTest::newRow("tokens") << Figure(test::sampleTokens()) << "Token view"
                            << "polyline";
    QTest::newRow("neuron") << Figure(test::sampleNeuron()) << "Neuron view"
                            << "rect";
}

void TestFigure::png() {
    QFETCH(Figure, figure);
    const double dpi = 100;
    auto bytes = encodeFigure(figure, FigureFormat::Png, {dpi, {}});
    QVERIFY2(bytes.ok(), bytes.message().c_str());
    QImage img;
    QVERIFY(img.loadFromData(*bytes, "PNG"));
    const QSizeF pt = preferredFigureSize(figure);
    QCOMPARE(img.width(), int(std::ceil(pt.width() * dpi / 72)));
    QCOMPARE(img.height(), int(std::ceil(pt.height() * dpi / 72)));
    // Text, axes and data: far more than a background and a frame.
    QVERIFY2(distinctColors(img) > 20, qPrintable(QString::number(distinctColors(img))));
    // Nothing drawn in the outer margin's last pixel columns (no clipping at the right edge).
    QCOMPARE(img.pixel(img.width() - 1, img.height() / 2), qRgb(255, 255, 255));
}

void TestFigure::svg() {
    QFETCH(Figure, figure);
    QFETCH(QString, title);
    QFETCH(QString, element);
    auto bytes = encodeFigure(figure, FigureFormat::Svg);
    QVERIFY2(bytes.ok(), bytes.message().c_str());
    const SvgContent c = parseSvg(*bytes);
    QVERIFY2(c.wellFormed, qPrintable(c.error));
    QVERIFY(c.elements.count(QStringLiteral("svg")));
    QVERIFY2(c.texts.contains(title), qPrintable(c.texts.join(QLatin1Char('|'))));
    QVERIFY2(c.elements.count(element), qPrintable(element));
    QVERIFY(c.texts.size() >= 3);  // title plus axis/tick/token labels, as vector text
}

void TestFigure::pdfOnePagePerFigure() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    std::vector<Figure> figures = {test::sampleMap(64, false), test::sampleGrid(),    test::sampleSinks(),
                                   test::sampleBars(),         test::sampleScatter(), test::sampleNeuron()};
    const QString many = dir.filePath(QStringLiteral("all.pdf"));
    const QString one = dir.filePath(QStringLiteral("one.pdf"));
    QVERIFY(saveFiguresPdf(figures, many).ok());
    QVERIFY(saveFigure(test::sampleTokens(), one, FigureFormat::Pdf).ok());
    QFile f(many);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QVERIFY(f.read(5) == "%PDF-");
    const int pages = pdfPages(many);
    if (pages == -1) QSKIP("pdfinfo (poppler-utils) not installed");
    QCOMPARE(pages, int(figures.size()));
    QCOMPARE(pdfPages(one), 1);
    // No temp files left behind by the atomic writes.
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files).size(), 2);
}

void TestFigure::pngSizeFollowsDpi_data() {
    QTest::addColumn<double>("dpi");
    QTest::newRow("72") << 72.0;
    QTest::newRow("150") << 150.0;
    QTest::newRow("300") << 300.0;
}

void TestFigure::pngSizeFollowsDpi() {
    QFETCH(double, dpi);
    const Figure fig = test::sampleGrid();
    FigureSaveOptions o;
    o.dpi = dpi;
    o.size = QSizeF(360, 240);
    auto bytes = encodeFigure(fig, FigureFormat::Png, o);
    QVERIFY(bytes.ok());
    QImage img;
    QVERIFY(img.loadFromData(*bytes, "PNG"));
    QCOMPARE(img.size(), QSize(int(std::ceil(360 * dpi / 72 - 1e-6)), int(std::ceil(240 * dpi / 72 - 1e-6))));
    QCOMPARE(qRound(img.dotsPerMeterX() / 39.3700787), qRound(dpi));
}

void TestFigure::heatmapUsesVectorCellsWhenSmall() {
    // A token-level window must stay crisp: vector cells, no embedded bitmap.
    auto small = encodeFigure(test::sampleMap(16, true), FigureFormat::Svg);
    QVERIFY(small.ok());
    QVERIFY(!parseSvg(*small).elements.count(QStringLiteral("image")));
    QVERIFY(parseSvg(*small).texts.contains(QStringLiteral("tok15")));
    auto big = encodeFigure(test::sampleMap(300, false), FigureFormat::Svg);
    QVERIFY(big.ok());
    QVERIFY(parseSvg(*big).elements.count(QStringLiteral("image")));
}

void TestFigure::badInputIsRefused() {
    FigureSaveOptions o;
    o.dpi = 1e6;
    auto r = encodeFigure(test::sampleGrid(), FigureFormat::Png, o);
    QVERIFY(!r.ok());
    QVERIFY(QString::fromStdString(r.message()).contains(QStringLiteral("dpi")));
    const Status s = saveFigure(test::sampleGrid(), QStringLiteral("/nonexistent-dir/x.png"), FigureFormat::Png);
    QVERIFY(!s.ok());
    QVERIFY(QString::fromStdString(s.message()).contains(QStringLiteral("/nonexistent-dir")));
    QVERIFY(!saveFiguresPdf({}, QStringLiteral("/tmp/never.pdf")).ok());
    // A heatmap whose values do not match its shape renders "no data" instead of reading past the end.
    HeatmapFigure broken = test::sampleGrid();
    broken.values.resize(3);
    QVERIFY(encodeFigure(broken, FigureFormat::Png).ok());
}

void TestFigure::formatFromPath_data() {
    QTest::addColumn<QString>("path");
    QTest::addColumn<int>("format");  // -1: none
    QTest::newRow("png") << "a/b.png" << int(FigureFormat::Png);
    QTest::newRow("SVG") << "x.SVG" << int(FigureFormat::Svg);
    QTest::newRow("pdf") << "x.y.pdf" << int(FigureFormat::Pdf);
    QTest::newRow("jpg") << "x.jpg" << -1;
    QTest::newRow("none") << "x" << -1;
}

void TestFigure::formatFromPath() {
    QFETCH(QString, path);
    QFETCH(int, format);
    const auto f = figureFormatFromPath(path);
    QCOMPARE(f ? int(*f) : -1, format);
}

void TestFigure::emptyFiguresSayNoData() {
    LinePlotFigure empty;
    empty.title = QStringLiteral("Empty");
    auto bytes = encodeFigure(empty, FigureFormat::Svg);
    QVERIFY(bytes.ok());
    QVERIFY(parseSvg(*bytes).texts.contains(QStringLiteral("no data")));
}

void TestFigure::tokenLinesReadable() {
    // Head views draw one colour per head on white paper: yellow and orange lines at the opacity
    // of a few-percent weight were close to invisible.
    const QColor paper(Qt::white), dark(30, 30, 30);
    constexpr int kHeads = 8;
    QVERIFY(fig::contrastRatio(fig::seriesColor(kHeads - 1), paper) < fig::kMinLineContrast);  // the yellow
    for (int h = 0; h < kHeads; ++h) {
        QVERIFY2(fig::contrastRatio(fig::readableOn(fig::seriesColor(h), paper), paper) >= fig::kMinLineContrast,
                 qPrintable(fig::seriesColor(h).name()));
        QVERIFY(fig::contrastRatio(fig::readableOn(fig::seriesColor(h), dark), dark) >= fig::kMinLineContrast);
    }
    QCOMPARE(fig::readableOn(fig::seriesColor(0), paper), fig::seriesColor(0));  // readable colours stay
    QVERIFY(fig::tokenLineOpacity(0.01f) >= fig::kMinLineOpacity);
    QVERIFY(fig::tokenLineOpacity(0.05f) < fig::tokenLineOpacity(0.2f));
    QCOMPARE(fig::tokenLineOpacity(1.0f), 1.0);
    QCOMPARE(fig::contrastRatio(Qt::black, Qt::white), 21.0);
}

int main(int argc, char** argv) {
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    QGuiApplication app(argc, argv);
    TestFigure t;
    return QTest::qExec(&t, argc, argv);
}

#include "tst_figure.moc"
