// End-to-end checks of `attnscope-cli analyze` on a synthetic trace: the summary and per-head
// tables, --layers, --json (valid, atomically written), --exclude-sinks, and one-line errors.
#include <QDir>
#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include <filesystem>

#include "attnscope/json.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"

#include "brute_attention.h"
#include "cli_run.h"
#include "synth_fixture.h"
#include "trace_fixture.h"

using namespace attnscope;

namespace {
using cliTest::cli;
using cliTest::Run;
}  // namespace

class TestAnalyze : public QObject {
    Q_OBJECT
private slots:
    void initTestCase();
    void summaryAndJson();
    void excludeSinks();
    void backendAndTiming();
    void blockSizes();
    void learnedSinkShare();
    void refusesBadInput_data();
    void refusesBadInput();
    void traceTruncatedWhileAnalysing();

private:
    QTemporaryDir m_dir;
    QString m_trace;
};

void TestAnalyze::initTestCase() {
    QVERIFY(m_dir.isValid());
    m_trace = m_dir.filePath(QStringLiteral("s.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(m_trace, 512, 3).ok());
}

void TestAnalyze::summaryAndJson() {
    const QString json = m_dir.filePath(QStringLiteral("a.json"));
    const Run r = cli({"analyze", m_trace, "--layers", "0,2", "--json", json, "--no-progress"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(r.out.contains(QLatin1String("sink%")));
    QVERIFY(r.out.contains(QLatin1String("heads by role")));
    QVERIFY(r.out.contains(QLatin1String("previous-token")));
    QVERIFY(r.out.contains(QLatin1String("induction")));
    QVERIFY(r.out.contains(QLatin1String("evidence")));
    QFile f(json);
    QVERIFY(f.open(QIODevice::ReadOnly));
    auto parsed = Json::parse(f.readAll().toStdString());
    QVERIFY2(parsed.ok(), parsed.message().c_str());
    QCOMPARE(parsed->find("layers")->size(), size_t(2));
    QCOMPARE(parsed->find("heads")->size(), size_t(16));
    QCOMPARE(parsed->find("similarity")->size(), size_t(2));
    QCOMPARE(parsed->find("layers")->asArray()[1].find("layer")->asNumber(), 2.0);
    // Nothing left behind by the atomic write.
    QCOMPARE(QDir(m_dir.path()).entryList({"a.json*"}, QDir::Files).size(), 1);
}

void TestAnalyze::excludeSinks() {
    const Run r = cli({"analyze", m_trace, "--layers", "1", "--exclude-sinks", "--no-similarity", "--no-heads"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(r.out.contains(QLatin1String("sinks excluded")));
    QVERIFY(!r.out.contains(QLatin1String("evidence")));
}

void TestAnalyze::backendAndTiming() {
    // Which backend ran is always printed; --cpu forces the CPU; --timing prints one row per layer.
    const Run r = cli({"analyze", m_trace, "--layers", "0,2", "--cpu", "--timing", "--no-heads", "--no-progress"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains(QLatin1String("backend: CPU (--cpu)")), qPrintable(r.out));
    QVERIFY(r.out.contains(QLatin1String("compute ms")));
    QVERIFY(QRegularExpression(QStringLiteral("\\n\\s+0\\s+CPU\\s")).match(r.out).hasMatch());
    QVERIFY(QRegularExpression(QStringLiteral("\\n\\s+2\\s+CPU\\s")).match(r.out).hasMatch());
    const Run d = cli({"analyze", m_trace, "--layers", "0", "--no-heads", "--no-progress"});
    QVERIFY2(d.code == 0, qPrintable(d.err));
    QVERIFY(d.out.contains(QLatin1String("backend: ")));
}

void TestAnalyze::blockSizes() {
    // --block-sizes sets the block mass matrices (and the top-k mask's block size).
    const QString json = m_dir.filePath(QStringLiteral("b.json"));
    const Run r = cli({"analyze", m_trace, "--layers", "1", "--block-sizes", "32,256", "--block", "256", "--json", json,
                       "--no-similarity", "--no-progress", "--cpu"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QFile f(json);
    QVERIFY(f.open(QIODevice::ReadOnly));
    auto parsed = Json::parse(f.readAll().toStdString());
    QVERIFY2(parsed.ok(), parsed.message().c_str());
    const Json* sizes = parsed->find("options")->find("blockSizes");
    QVERIFY(sizes);
    QCOMPARE(sizes->size(), size_t(2));
    QCOMPARE(sizes->asArray()[0].asNumber(), 32.0);
    QCOMPARE(sizes->asArray()[1].asNumber(), 256.0);
    QCOMPARE(parsed->find("backend")->asString(), std::string("CPU"));
}

void TestAnalyze::learnedSinkShare() {
    // A v2 trace with learned sinks in layer 1: analyze prints each head's sink share and the JSON
    // holds it, equal to the float64 brute force's mean over rows of exp(sink − L') (--cpu: the
    // GPU's is checked by selftest --gpu).
    const uint64_t seed = testing::freshSeed();
    constexpr int kHeads = 4, kKv = 2, kDim = 16;
    constexpr int64_t kT = 150;
    TraceMetadata m = testfixture::smallMetadata(2, kHeads, kKv, kDim, kT);
    std::mt19937_64 rng(seed);
    for (int h = 0; h < kHeads; ++h)
        m.layers[1].sinks.push_back(std::uniform_real_distribution<float>(-1.0f, 3.0f)(rng));
    const QString path = m_dir.filePath(QStringLiteral("sinks.attn.safetensors"));
    QVERIFY(testfixture::randomTrace(m, DType::F32, uint32_t(seed)).write(path.toStdString()).ok());
    const QString json = m_dir.filePath(QStringLiteral("sinks.json"));
    const Run r = cli({"analyze", path, "--cpu", "--json", json, "--no-progress", "--no-similarity"});
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(r.out.contains(QLatin1String("learned sinks: share of each head's attention mass")), qPrintable(r.out));
    auto trace = Trace::open(path.toStdString());
    QVERIFY2(trace.ok(), trace.message().c_str());
    QFile f(json);
    QVERIFY(f.open(QIODevice::ReadOnly));
    auto doc = Json::parse(f.readAll().toStdString());
    QVERIFY2(doc.ok(), doc.message().c_str());
    int checked = 0;
    for (const Json& h : doc->find("heads")->asArray()) {
        const int layer = int(h.find("layer")->asNumber()), head = int(h.find("head")->asNumber());
        const Json* learned = h.find("sinks")->find("learnedSink");
        QCOMPARE(learned->isNull(), layer == 0);
        if (layer == 0) continue;
        const AttentionSpec spec = specForLayer((*trace)->config(layer), head);
        auto q = (*trace)->head(layer, head, Which::Q), k = (*trace)->head(layer, head, Which::K);
        QVERIFY(q.ok() && k.ok());
        const testing::BruteAttention b = testing::bruteAttention(q->m, k->m, spec);
        double share = 0;
        for (double l : b.lse) share += std::exp(double(spec.sinkLogit) - l) / double(kT);
        QVERIFY(std::abs(learned->find("logit")->asNumber() - double(m.layers[1].sinks[size_t(head)])) <= 1e-5);
        QVERIFY2(std::abs(learned->find("share")->asNumber() - share) <= 1e-5,
                 qPrintable(QString("seed %1 head %2: share %3 vs %4")
                                .arg(seed)
                                .arg(head)
                                .arg(learned->find("share")->asNumber())
                                .arg(share)));
        ++checked;
    }
    QCOMPARE(checked, kHeads);
}

void TestAnalyze::refusesBadInput_data() {
    QTest::addColumn<QStringList>("args");
    QTest::addColumn<QString>("message");
    QTest::newRow("no trace") << QStringList{"analyze"} << "missing TRACE";
    QTest::newRow("missing file") << QStringList{"analyze", "/nonexistent/x.attn.safetensors"} << "x.attn.safetensors";
    QTest::newRow("layer out of range") << QStringList{"analyze", "TRACE", "--layers", "7"} << "--layers";
    QTest::newRow("bad gamma") << QStringList{"analyze", "TRACE", "--gamma", "1.5"} << "--gamma";
    QTest::newRow("bad block") << QStringList{"analyze", "TRACE", "--block", "0"} << "--block";
    QTest::newRow("bad block sizes") << QStringList{"analyze", "TRACE", "--block-sizes", "64,x"} << "--block-sizes";
    QTest::newRow("zero block size") << QStringList{"analyze", "TRACE", "--block-sizes", "0"} << "--block-sizes";
}

void TestAnalyze::refusesBadInput() {
    QFETCH(QStringList, args);
    QFETCH(QString, message);
    args.replaceInStrings(QStringLiteral("TRACE"), m_trace);
    const Run r = cli(args);
    QVERIFY(r.code != 0);
    QVERIFY2(r.err.contains(message), qPrintable(r.err));
    QCOMPARE(r.err.trimmed().count(QLatin1Char('\n')), 0);  // one line
}

void TestAnalyze::traceTruncatedWhileAnalysing() {
    // A trace truncated by another program mid-run (a re-capture written over it): once a bus
    // error (exit 135), now a one-line error naming the file.
    const QString trace = m_dir.filePath(QStringLiteral("truncate.attn.safetensors"));
    QVERIFY(testing::writeSynthTrace(trace, 4096, 8).ok());
    const auto size = std::filesystem::file_size(trace.toStdString());
    QProcess p;
    p.start(QStringLiteral(ATTNSCOPE_CLI), {"analyze", trace, "--cpu", "--no-progress"});
    QVERIFY(p.waitForStarted());
    if (p.waitForFinished(700)) QSKIP("the analysis finished before the trace could be truncated (a fast machine)");
    std::filesystem::resize_file(trace.toStdString(), size / 3);
    QVERIFY(p.waitForFinished(300000));
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);  // not killed by SIGBUS
    const QString err = QString::fromUtf8(p.readAllStandardError());
    QVERIFY2(p.exitCode() != 0, "the run went on after its trace was truncated");
    QVERIFY2(err.contains(trace) && err.contains(QLatin1String("changed on disk")), qPrintable(err));
}

QTEST_GUILESS_MAIN(TestAnalyze)
#include "tst_analyze.moc"
