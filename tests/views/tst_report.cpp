// Generates the report of a small synthetic trace and checks every output: HTML (valid, no
// external URL), Markdown (references existing files), JSON (the keys and types documented in
// docs/report-schema.md), CSV (row counts), PDF pages, cancellation and bad input.
#include <QDir>
#include <QFile>
#include <QGuiApplication>
#include <QProcess>
#include <QRegularExpression>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include "attnscope/json.h"
#include "attnscope/synth.h"
#include "attnscope/synth_vision.h"
#include "report.h"
#include "synth_fixture.h"

using namespace attnscope;

namespace {

/// Small figures (cells of the maps, tokens of the zoom and of the window) at 72 dpi: the
/// content checks do not depend on size or DPI, and small PNGs keep the tests fast.
ReportOptions smallReport(int mapCells, int zoomTokens, int windowTokens) {
    ReportOptions ro;
    ro.mapCells = mapCells;
    ro.zoomTokens = zoomTokens;
    ro.windowTokens = windowTokens;
    ro.dpi = 72;
    return ro;
}

constexpr int64_t kTokens = 256;
constexpr int kLayers = 2;

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

// One "path type" requirement from the schema document.
struct Requirement {
    QString path;
    QStringList types;
};

std::vector<Requirement> schemaRequirements() {
    const QString doc = QString::fromUtf8(readAll(QStringLiteral(ATTNSCOPE_SOURCE_DIR "/docs/report-schema.md")));
    const int begin = doc.indexOf(QStringLiteral("<!-- report-schema-begin -->"));
    const int end = doc.indexOf(QStringLiteral("<!-- report-schema-end -->"));
    std::vector<Requirement> out;
    if (begin < 0 || end < begin) return out;
    for (const QString& line : doc.mid(begin, end - begin).split(QLatin1Char('\n'))) {
        const QStringList parts = line.simplified().split(QLatin1Char(' '));
        if (parts.size() != 2 || parts[0].startsWith(QLatin1Char('<')) || parts[0].startsWith(QLatin1Char('`')))
            continue;
        out.push_back({parts[0], parts[1].split(QLatin1Char('|'))});
    }
    return out;
}

QString typeName(const Json& j) {
    switch (j.type()) {
    case Json::Type::Null: return QStringLiteral("null");
    case Json::Type::Bool: return QStringLiteral("bool");
    case Json::Type::Number: return QStringLiteral("number");
    case Json::Type::String: return QStringLiteral("string");
    case Json::Type::Array: return QStringLiteral("array");
    case Json::Type::Object: return QStringLiteral("object");
    }
    return {};
}

// Checks `path` (a.b, a[].b) below `j`; appends failures to `errors`.
void checkPath(const Json& j, QStringList segments, const Requirement& req, const QString& where, QStringList& errors) {
    if (segments.isEmpty()) {
        if (!req.types.contains(typeName(j)))
            errors << QStringLiteral("%1: %2, expected %3").arg(where, typeName(j), req.types.join(QLatin1Char('|')));
        return;
    }
    QString seg = segments.takeFirst();
    const bool each = seg.endsWith(QStringLiteral("[]"));
    if (each) seg.chop(2);
    const Json* child = j.find(seg.toStdString());
    if (!child) {
        errors << QStringLiteral("%1.%2: missing").arg(where, seg);
        return;
    }
    if (!each) return checkPath(*child, segments, req, where + QLatin1Char('.') + seg, errors);
    if (!child->isArray()) {
        errors << QStringLiteral("%1.%2: not an array").arg(where, seg);
        return;
    }
    for (size_t i = 0; i < child->asArray().size(); ++i)
        checkPath(child->asArray()[i], segments, req, QStringLiteral("%1.%2[%3]").arg(where, seg).arg(i), errors);
}

int csvRows(const QString& path) {
    const QByteArray text = readAll(path);
    return text.isEmpty() ? -1 : int(text.count('\n')) - 1;  // minus the header
}

}  // namespace

class TestReport : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void writesEveryFormat();
    void htmlIsValidAndSelfContained();
    void markdownReferencesExistingFiles();
    void jsonMatchesDocumentedSchema();
    void csvHasOneRowPerItem();
    void pdfHasOnePagePerFigure();
    void chosenHeadsAreShown();
    void formatsAndHeadsParse_data();
    void formatsAndHeadsParse();
    void cancelStopsTheReport();
    void badInputGivesClearErrors();
    void visionTraceAddsItsSection();

private:
    QTemporaryDir m_dir;
    QString m_trace, m_out;
    ReportResult m_result;
    SynthTruth m_truth;
};

void TestReport::initTestCase() {
    QVERIFY(m_dir.isValid());
    m_trace = m_dir.filePath(QStringLiteral("synth.attn.safetensors"));
    auto truth = testing::writeSynthTrace(m_trace, kTokens, kLayers, 32);
    QVERIFY2(truth.ok(), truth.message().c_str());
    m_truth = *truth;
    m_out = m_dir.filePath(QStringLiteral("report"));
    ReportOptions ro = smallReport(64, 64, 12);
    ro.autoHeads = 2;
    int calls = 0;
    double last = -1;
    bool monotonic = true;
    auto r = generateReport(m_trace.toStdString(), m_out.toStdString(), ro, [&](double f, std::string_view) {
        ++calls;
        monotonic = monotonic && f >= last - 1e-9;
        last = f;
        return true;
    });
    QVERIFY2(r.ok(), r.message().c_str());
    m_result = *r;
    QVERIFY(calls > 5);
    QVERIFY(monotonic);
    QCOMPARE(last, 1.0);
}

void TestReport::writesEveryFormat() {
    for (const char* f : {"report.html", "report.md", "report.json", "report-figures.pdf", "csv/heads.csv",
                          "csv/layers.csv", "csv/sinks.csv", "csv/sparsity.csv", "csv/masks.csv"}) {
        QVERIFY2(QFile::exists(m_out + QLatin1Char('/') + QLatin1String(f)), f);
        QVERIFY2(std::find(m_result.files.begin(), m_result.files.end(), std::string(f)) != m_result.files.end(), f);
    }
    QVERIFY(!QFile::exists(m_out + QStringLiteral("/csv/profile.csv")));  // no --profile, no profile table
    // Atomic writes leave no temporary files behind.
    QDirIterator it(m_out, QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) QVERIFY2(!it.next().contains(QStringLiteral(".tmp")), qPrintable(it.filePath()));
}

void TestReport::htmlIsValidAndSelfContained() {
    const QByteArray html = readAll(m_out + QStringLiteral("/report.html"));
    QVERIFY(html.startsWith("<!DOCTYPE html>"));
    // Well-formed as XML too (every element closed, everything escaped).
    QXmlStreamReader xml(html.mid(html.indexOf('\n') + 1));
    int images = 0;
    QStringList sections;
    while (!xml.atEnd()) {
        xml.readNext();
        if (xml.isStartElement() && xml.name() == QLatin1String("img")) {
            ++images;
            QVERIFY(xml.attributes().value(QLatin1String("src")).startsWith(QLatin1String("data:image/png;base64,")));
        }
        if (xml.isStartElement() && xml.name() == QLatin1String("div") &&
            xml.attributes().value(QLatin1String("class")) == QLatin1String("section"))
            sections << xml.attributes().value(QLatin1String("id")).toString();
    }
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QCOMPARE(sections, QStringList({"summary", "overview", "sinks", "sparsity", "roles", "heads"}));
    QVERIFY(images >= 10);
    // Nothing outside the file: no URLs, no external scripts, styles or fonts.
    for (const char* bad : {"http://", "https://", "//cdn", "<script", "<link", "@import", "url("})
        QVERIFY2(!html.contains(bad), bad);
    const QRegularExpression src(QStringLiteral("(src|href)=\"([^\"]*)\""));
    for (auto m = src.globalMatch(QString::fromUtf8(html)); m.hasNext();) {
        const auto hit = m.next();
        const QString v = hit.captured(2);
        QVERIFY2(v.startsWith(QLatin1String("data:")) || v.startsWith(QLatin1Char('#')), qPrintable(v.left(80)));
    }
    const QString xmllint = QStandardPaths::findExecutable(QStringLiteral("xmllint"));
    if (xmllint.isEmpty()) QSKIP("xmllint (libxml2-utils) not installed: HTML checked as XML only");
    QProcess p;
    p.start(xmllint, {QStringLiteral("--html"), QStringLiteral("--noout"), m_out + QStringLiteral("/report.html")});
    QVERIFY(p.waitForFinished(60000));
    const QByteArray errors = p.readAllStandardError();
    QVERIFY2(errors.isEmpty() && p.exitCode() == 0, errors.constData());
}

void TestReport::markdownReferencesExistingFiles() {
    const QString md = QString::fromUtf8(readAll(m_out + QStringLiteral("/report.md")));
    QVERIFY(md.startsWith(QLatin1String("# attnscope report")));
    const QRegularExpression img(QStringLiteral("!\\[[^\\]]*\\]\\(([^)]+)\\)"));
    int n = 0;
    for (auto it = img.globalMatch(md); it.hasNext();) {
        const QString rel = it.next().captured(1);
        QVERIFY2(!rel.contains(QLatin1String("://")), qPrintable(rel));
        QVERIFY2(QFile::exists(m_out + QLatin1Char('/') + rel), qPrintable(rel));
        QVERIFY(QFileInfo(m_out + QLatin1Char('/') + rel).size() > 1000);
        ++n;
    }
    QVERIFY(n >= 10);
    for (const char* h : {"## Trace summary", "## Model overview", "## Attention sinks", "## Sparsity",
                          "## Head roles and similarity", "## Selected heads at three scales"})
        QVERIFY2(md.contains(QLatin1String(h)), h);
}

void TestReport::jsonMatchesDocumentedSchema() {
    const auto reqs = schemaRequirements();
    QVERIFY2(reqs.size() > 40, "docs/report-schema.md: the required-keys block is missing or short");
    auto json = Json::parse(readAll(m_out + QStringLiteral("/report.json")).toStdString(), "report.json");
    QVERIFY2(json.ok(), json.message().c_str());
    QStringList errors;
    for (const auto& r : reqs) checkPath(*json, r.path.split(QLatin1Char('.')), r, QStringLiteral("$"), errors);
    QVERIFY2(errors.isEmpty(), qPrintable(errors.mid(0, 10).join(QLatin1Char('\n'))));
    QCOMPARE(QString::fromStdString(json->find("schema")->asString()), QStringLiteral("attnscope.report"));
    QCOMPARE(int(json->find("analysis")->find("heads")->size()), kLayers * int(SynthOptions().heads.size()));
    QVERIFY(json->find("profile")->isNull());
    QVERIFY(json->find("vision")->isNull());  // not a vision trace
    QCOMPARE(int(json->find("selectedHeads")->size()), 2);
    // The file list names real files.
    for (const auto& f : json->find("files")->asArray())
        QVERIFY2(QFile::exists(m_out + QLatin1Char('/') + QString::fromStdString(f.asString())), f.asString().c_str());
}

void TestReport::csvHasOneRowPerItem() {
    const int heads = kLayers * int(SynthOptions().heads.size());
    QCOMPARE(csvRows(m_out + QStringLiteral("/csv/heads.csv")), heads);
    QCOMPARE(csvRows(m_out + QStringLiteral("/csv/layers.csv")), kLayers);
    const HeadAnalysisOptions defaults;
    QCOMPARE(csvRows(m_out + QStringLiteral("/csv/sparsity.csv")),
             heads * int(defaults.gammas.size() * defaults.blockSizes.size()));
    QVERIFY(csvRows(m_out + QStringLiteral("/csv/masks.csv")) >= heads);
    // The planted first-token sink heads appear in the sink table, each with key 0.
    const QString sinks = QString::fromUtf8(readAll(m_out + QStringLiteral("/csv/sinks.csv")));
    int planted = 0;
    for (size_t i = 0; i < m_truth.heads.size(); ++i)
        if (m_truth.heads[i] == SynthHead::FirstTokenSink) {
            const int layer = int(i / SynthOptions().heads.size()), head = int(i % SynthOptions().heads.size());
            QVERIFY2(sinks.contains(QStringLiteral("\n%1,%2,0,").arg(layer).arg(head)), qPrintable(sinks.left(400)));
            ++planted;
        }
    QVERIFY(planted > 0);
}

void TestReport::pdfHasOnePagePerFigure() {
    const QString pdfinfo = QStandardPaths::findExecutable(QStringLiteral("pdfinfo"));
    if (pdfinfo.isEmpty()) QSKIP("pdfinfo (poppler-utils) not installed");
    QProcess p;
    p.start(pdfinfo, {m_out + QStringLiteral("/report-figures.pdf")});
    QVERIFY(p.waitForFinished(30000));
    const auto m =
        QRegularExpression(QStringLiteral("Pages:\\s+(\\d+)")).match(QString::fromUtf8(p.readAllStandardOutput()));
    QVERIFY(m.hasMatch());
    const int figures = int(QDir(m_out + QStringLiteral("/figures")).entryList({QStringLiteral("*.png")}).size());
    QCOMPARE(m.captured(1).toInt(), figures);
}

void TestReport::chosenHeadsAreShown() {
    const QString out = m_dir.filePath(QStringLiteral("chosen"));
    ReportOptions ro = smallReport(32, 32, 8);
    ro.formats = {ReportFormat::Markdown, ReportFormat::Json};
    ro.heads = {{1, 3}};
    ro.analysis.layers = {1};
    ro.analysis.similarity = false;
    auto r = generateReport(m_trace.toStdString(), out.toStdString(), ro);
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(QFile::exists(out + QStringLiteral("/figures/map-L1-H3-overview.png")));
    QVERIFY(QFile::exists(out + QStringLiteral("/figures/map-L1-H3-tokens.png")));
    QVERIFY(!QFile::exists(out + QStringLiteral("/report.html")));
    QVERIFY(!QDir(out + QStringLiteral("/csv")).exists());
    auto json = Json::parse(readAll(out + QStringLiteral("/report.json")).toStdString());
    QVERIFY(json.ok());
    QCOMPARE(int(json->find("analysis")->find("heads")->size()), int(SynthOptions().heads.size()));
}

void TestReport::formatsAndHeadsParse_data() {
    QTest::addColumn<QString>("formats");
    QTest::addColumn<int>("count");  // -1: error
    QTest::newRow("all") << "html,md,json,csv" << 4;
    QTest::newRow("markdown alias, duplicate") << "markdown,md" << 1;
    QTest::newRow("unknown") << "html,docx" << -1;
    QTest::newRow("empty") << "," << -1;
}

void TestReport::formatsAndHeadsParse() {
    QFETCH(QString, formats);
    QFETCH(int, count);
    auto f = parseReportFormats(formats.toStdString());
    QCOMPARE(f.ok() ? int(f->size()) : -1, count);
    if (!f.ok()) QVERIFY(QString::fromStdString(f.message()).contains(QLatin1String("--format")));
    auto h = parseHeadRefs("0:3,2:1,0:3");
    QVERIFY(h.ok());
    QCOMPARE(int(h->size()), 2);
    QCOMPARE(h->at(1).layer, 2);
    for (const char* bad : {"3", "1:x", "1:2:3", "-1:0"}) QVERIFY2(!parseHeadRefs(bad).ok(), bad);
}

void TestReport::cancelStopsTheReport() {
    const QString out = m_dir.filePath(QStringLiteral("cancelled"));
    auto r = generateReport(m_trace.toStdString(), out.toStdString(), {},
                            [](double f, std::string_view) { return f < 0.1; });
    QVERIFY(!r.ok());
    QCOMPARE(r.status().code(), ErrorCode::Cancelled);
    QVERIFY(!QFile::exists(out + QStringLiteral("/report.html")));
}

void TestReport::badInputGivesClearErrors() {
    auto missing =
        generateReport("/nonexistent/x.attn.safetensors", m_dir.filePath(QStringLiteral("bad")).toStdString());
    QVERIFY(!missing.ok());
    QVERIFY(QString::fromStdString(missing.message()).contains(QLatin1String("/nonexistent/x.attn.safetensors")));
    ReportOptions ro;
    ro.heads = {{0, 99}};
    auto badHead = generateReport(m_trace.toStdString(), m_dir.filePath(QStringLiteral("bad2")).toStdString(), ro);
    QVERIFY(!badHead.ok());
    QVERIFY(QString::fromStdString(badHead.message()).contains(QLatin1String("0:99")));
}

/// A vision trace's report: the Vision section (HTML, Markdown), `vision` in the JSON with one entry
/// per head, and csv/vision.csv with a share column per prefix token; the planted register-sink
/// head's last register takes most of the patch queries' attention.
void TestReport::visionTraceAddsItsSection() {
    const testing::SmallVision v;  // 6 × 7 patches after [CLS] and two registers, 2 layers of 4 heads
    const QString trace = m_dir.filePath(QStringLiteral("vision.attn.safetensors"));
    auto truth = testing::writeVisionTrace(trace, v);
    QVERIFY2(truth.ok(), truth.message().c_str());
    const QString out = m_dir.filePath(QStringLiteral("vision-report"));
    ReportOptions ro = smallReport(32, 16, 8);
    ro.autoHeads = 1;
    ro.formats = {ReportFormat::Json, ReportFormat::Csv, ReportFormat::Markdown};
    auto r = generateReport(trace.toStdString(), out.toStdString(), ro);
    QVERIFY2(r.ok(), r.message().c_str());
    auto json = Json::parse(readAll(out + QStringLiteral("/report.json")).toStdString(), "report.json");
    QVERIFY2(json.ok(), json.message().c_str());
    const Json* vision = json->find("vision");
    QVERIFY(vision && vision->isObject());
    QCOMPARE(int(vision->find("heads")->size()), v.layers * v.heads);
    QCOMPARE(vision->find("layout")->find("prefixTokens")->asNumber(), 3.0);
    QCOMPARE(csvRows(out + QStringLiteral("/csv/vision.csv")), v.layers * v.heads);
    const QString csv = QString::fromUtf8(readAll(out + QStringLiteral("/csv/vision.csv")));
    QVERIFY2(csv.startsWith(QStringLiteral("layer,head,patch_queries,patch_distance,prefix_share,share [CLS],share "
                                           "[REG0],share [REG1]\n")),
             qPrintable(csv.left(200)));
    const Json& sink = vision->find("heads")->asArray()[1];  // kv head 1 plants the register sink
    QVERIFY(sink.find("prefixTokenShare")->asArray()[2].asNumber() > 0.9);
    QVERIFY(readAll(out + QStringLiteral("/report.md")).contains("Vision: attention distance and prefix tokens"));
}

int main(int argc, char** argv) {
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
    QGuiApplication app(argc, argv);
    TestReport t;
    return QTest::qExec(&t, argc, argv);
}

#include "tst_report.moc"
