// End-to-end checks of `attnscope-cli export` and `attnscope-cli report` on a synthetic trace:
// exit codes, the files written and their formats, and one-line errors for bad input.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include "attnscope/synth.h"

#include "cli_run.h"
#include "synth_fixture.h"

using namespace attnscope;

namespace {
using cliTest::cli;
using cliTest::Run;

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}
}  // namespace

class TestFigureVerbs : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void exportEachViewAndFormat_data();
    void exportEachViewAndFormat();
    void exportRefusesBadInput_data();
    void exportRefusesBadInput();
    void reportWritesRequestedFormats();
    void reportRefusesBadInput();
    void reportDefaultsToTheDemoTrace();

private:
    QTemporaryDir m_dir;
    QString m_trace;
};

void TestFigureVerbs::initTestCase() {
    if (!cli({QStringLiteral("--help")}).out.contains(QLatin1String("export")))
        QSKIP("attnscope-cli was built without the views (ATTNSCOPE_GUI=OFF): no export/report verbs");
    QVERIFY(m_dir.isValid());
    m_trace = m_dir.filePath(QStringLiteral("s.attn.safetensors"));
    auto t = testing::writeSynthTrace(m_trace, 192, 2, 32);
    QVERIFY2(t.ok(), t.message().c_str());
}

void TestFigureVerbs::exportEachViewAndFormat_data() {
    QTest::addColumn<QString>("view");
    QTest::addColumn<QString>("ext");
    for (const char* v : {"map", "grid", "tokens", "neuron", "sinks", "sparsity"})
        for (const char* e : {"png", "svg", "pdf"})
            QTest::newRow(qPrintable(QStringLiteral("%1.%2").arg(v, e))) << v << e;
}

void TestFigureVerbs::exportEachViewAndFormat() {
    QFETCH(QString, view);
    QFETCH(QString, ext);
    const QString out = m_dir.filePath(view + QLatin1Char('.') + ext);
    const Run r =
        cli({QStringLiteral("export"), m_trace, QStringLiteral("--layer"), QStringLiteral("1"),
             QStringLiteral("--head"), QStringLiteral("0"), QStringLiteral("--view"), view, QStringLiteral("--dpi"),
             QStringLiteral("72"), QStringLiteral("--no-progress"), QStringLiteral("-o"), out});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.err.isEmpty(), qPrintable(r.err));  // no Qt noise on a headless machine
    const QByteArray bytes = readAll(out);
    QVERIFY(bytes.size() > 1000);
    if (ext == QLatin1String("png")) QVERIFY(bytes.startsWith("\x89PNG\r\n"));
    if (ext == QLatin1String("pdf")) QVERIFY(bytes.startsWith("%PDF-"));
    if (ext == QLatin1String("svg")) {
        QXmlStreamReader xml(bytes);
        int texts = 0;
        while (!xml.atEnd())
            if (xml.readNext() == QXmlStreamReader::StartElement && xml.name() == QLatin1String("text")) ++texts;
        QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
        QVERIFY(texts >= 3);
    }
}

void TestFigureVerbs::exportRefusesBadInput_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("message");
    QTest::newRow("view") << QStringList{"--view", "pie", "-o", "x.png"} << "--view";
    QTest::newRow("extension") << QStringList{"-o", "x.jpg"} << "unknown extension";
    QTest::newRow("layer") << QStringList{"--layer", "9", "-o", "x.png"} << "--layer";
    QTest::newRow("head") << QStringList{"--head", "99", "-o", "x.png"} << "--head";
    QTest::newRow("rect") << QStringList{"--rect", "5,2,0,4", "-o", "x.png"} << "--rect";
    QTest::newRow("dpi") << QStringList{"--dpi", "100000", "-o", "x.png"} << "--dpi";
    QTest::newRow("no output") << QStringList{} << "-o";
}

void TestFigureVerbs::exportRefusesBadInput() {
    QFETCH(QStringList, args);
    QFETCH(QString, message);
    QStringList full{QStringLiteral("export"), m_trace};
    for (QString a : args)
        full << (a.endsWith(QLatin1String(".png")) || a.endsWith(QLatin1String(".jpg")) ? m_dir.filePath(a) : a);
    const Run r = cli(full);
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains(message), qPrintable(r.err));
    QCOMPARE(r.err.count(QLatin1Char('\n')), 1);  // the one-line error rule
    QVERIFY(!QFile::exists(m_dir.filePath(QStringLiteral("x.png"))));
}

void TestFigureVerbs::reportWritesRequestedFormats() {
    const QString out = m_dir.filePath(QStringLiteral("rep"));
    const Run r = cli({QStringLiteral("report"), m_trace, QStringLiteral("-o"), out, QStringLiteral("--format"),
                       QStringLiteral("md,json"), QStringLiteral("--heads"), QStringLiteral("1:2"),
                       QStringLiteral("--dpi"), QStringLiteral("72"), QStringLiteral("--no-progress")});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(r.out.contains(QLatin1String("report.md")));
    QVERIFY(QFile::exists(out + QStringLiteral("/report.json")));
    QVERIFY(QFile::exists(out + QStringLiteral("/figures/map-L1-H2-overview.png")));
    QVERIFY(!QFile::exists(out + QStringLiteral("/report.html")));
    QVERIFY(readAll(out + QStringLiteral("/report.json")).contains("\"attnscope.report\""));
}

void TestFigureVerbs::reportRefusesBadInput() {
    const QString out = m_dir.filePath(QStringLiteral("bad"));
    for (const QStringList& extra : {QStringList{"--format", "docx"}, QStringList{"--heads", "1"},
                                     QStringList{"--heads", "7:0"}, QStringList{"--profile", "nosuchvariant"}}) {
        const Run r = cli(
            QStringList{QStringLiteral("report"), m_trace, QStringLiteral("-o"), out, QStringLiteral("--no-progress")} +
            extra);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.startsWith(QLatin1String("attnscope-cli report: ")), qPrintable(r.err));
    }
    const Run missing = cli(
        {QStringLiteral("report"), m_dir.filePath(QStringLiteral("none.attn.safetensors")), QStringLiteral("-o"), out});
    QCOMPARE(missing.code, 1);
    QVERIFY(missing.err.contains(QLatin1String("none.attn.safetensors")));
}

void TestFigureVerbs::reportDefaultsToTheDemoTrace() {
    // The headless "run" job: `attnscope-cli report -o DIR` reports on the bundled demo trace,
    // found through $ATTNSCOPE_DEMO first (here the synthetic trace).
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("ATTNSCOPE_DEMO"), m_trace);
    const QString out = m_dir.filePath(QStringLiteral("demo"));
    const Run r = cli({QStringLiteral("report"), QStringLiteral("-o"), out, QStringLiteral("--format"),
                       QStringLiteral("json"), QStringLiteral("--no-progress")},
                      env);
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(r.out.contains(m_trace));
    QVERIFY(readAll(out + QStringLiteral("/report.json")).contains(QFileInfo(m_trace).fileName().toUtf8()));
}

QTEST_GUILESS_MAIN(TestFigureVerbs)
#include "tst_figureverbs.moc"
