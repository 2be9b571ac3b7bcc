// End-to-end checks of `attnscope-cli profile` with the CPU backend: the table, the three exports
// (JSON parses, CSV rows, Perfetto events), a synthetic trace's own Q/K/V, and one-line errors.
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include "attnscope/json.h"
#include "attnscope/synth.h"

#include "cli_run.h"
#include "synth_fixture.h"

using namespace attnscope;

namespace {
using cliTest::cli;
using cliTest::Run;

const QStringList kQuick = {"--cpu", "--warmup", "0", "--min-samples", "2", "--max-samples", "3"};
}  // namespace

class TestProfile : public QObject {
    Q_OBJECT
private slots:
    void syntheticWithExports() {
        QTemporaryDir dir;
        const QString json = dir.filePath("p.json"), csv = dir.filePath("p.csv"),
                      perfetto = dir.filePath("p.trace.json");
        const Run r = cli(QStringList{"profile", "--shape", "1,2,256,32", "--variants", "causal,sliding:64,linear",
                                      "--json", json, "--csv", csv, "--perfetto", perfetto} +
                          kQuick);
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(r.out.contains("backend: CPU"));
        for (const char* v : {"causal", "sliding:64", "linear"}) QVERIFY(r.out.contains(QString(v) + " "));
        // Linear attention is another function: its rel error is explained, not given as a number.
        QVERIFY2(r.out.contains("linear: rel err not compared: linear attention is a different function"),
                 qPrintable(r.out));
        QVERIFY2(!r.out.contains("regs") && !r.out.contains("smem"), qPrintable(r.out));  // GPU-only fields
        QFile j(json), c(csv), p(perfetto);
        QVERIFY(j.open(QIODevice::ReadOnly) && c.open(QIODevice::ReadOnly) && p.open(QIODevice::ReadOnly));
        auto report = Json::parse(j.readAll().toStdString());
        QVERIFY2(report.ok(), report.message().c_str());
        const Json& variants = *report->find("shapes")->asArray()[0].find("variants");
        QCOMPARE(variants.size(), size_t(3));
        QVERIFY(variants.asArray()[2].find("relError")->isNull());
        QVERIFY(variants.asArray()[2].find("accuracyNote")->asString().find("different function") != std::string::npos);
        QCOMPARE(QString(c.readAll()).split('\n', Qt::SkipEmptyParts).size(), 4);  // header + 3 variants
        auto trace = Json::parse(p.readAll().toStdString());
        QVERIFY(trace.ok());
        int slices = 0;
        for (const Json& e : trace->find("traceEvents")->asArray()) slices += e.find("ph")->asString() == "X";
        QVERIFY(slices >= 3 * 2);  // at least minSamples records per variant
    }

    void traceHead() {
        QTemporaryDir dir;
        const QString path = dir.filePath("s.attn.safetensors");
        QVERIFY(testing::writeSynthTrace(path, 256, 1, 32).ok());
        const Run r =
            cli(QStringList{"profile", path, "--layer", "0", "--head", "2", "--variants", "causal,topk:1"} + kQuick);
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY(r.out.contains("layer 0 head 2"));
        QVERIFY(r.out.contains("topk:1"));
    }

    void refusesBadInput_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expect");
        QTest::newRow("no shape") << QStringList{"profile", "--variants", "causal"} << "either TRACE";
        QTest::newRow("bad shape") << QStringList{"profile", "--shape", "1,2,x,4"} << "shape";
        QTest::newRow("bad variant") << QStringList{"profile", "--shape", "1,1,64,16", "--variants", "zap"} << "zap";
        QTest::newRow("bad dtype") << QStringList{"profile", "--shape", "1,1,64,16", "--dtype", "f8"} << "--dtype";
        QTest::newRow("missing trace") << QStringList{"profile", "/nonexistent.attn.safetensors"} << "nonexistent";
        QTest::newRow("cold and hot") << QStringList{"profile", "--shape", "1,1,64,16", "--cold", "--hot"} << "exclude";
        // 768 GiB of float inputs: refused at once, naming the bytes (it used to generate until killed).
        QTest::newRow("absurd size") << QStringList{"profile",    "--shape", "64,64,131072,128",
                                                    "--variants", "full",    "--cpu"}
                                     << "T=131072 D=128 bf16: Q, K, V as float32 needs 768.0 GiB of host memory";
    }
    void refusesBadInput() {
        QFETCH(QStringList, args);
        QFETCH(QString, expect);
        const Run r = cli(args + kQuick);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains(expect), qPrintable(r.err));
        QCOMPARE(r.err.count('\n'), 1);  // the one-line error rule
    }
};

QTEST_GUILESS_MAIN(TestProfile)
#include "tst_profile.moc"
