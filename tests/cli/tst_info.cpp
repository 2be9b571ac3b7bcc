// attnscope-cli info end to end: text and JSON output, NaN/Inf counts, exit codes and the
// one-line error naming the file.
#include <QtTest>

#include "attnscope/json.h"
#include "attnscope/trace.h"
#include "../common/trace_fixture.h"

using namespace attnscope;

class TestInfo : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

    struct Run {
        int exitCode = -1;
        QString out, err;
    };

    static Run cli(const QStringList& args) {
        QProcess p;
        p.start(ATTNSCOPE_CLI, QStringList{"info"} + args);
        Run r;
        if (!p.waitForFinished(60000)) return r;
        r.exitCode = p.exitCode();
        r.out = QString::fromUtf8(p.readAllStandardOutput());
        r.err = QString::fromUtf8(p.readAllStandardError());
        return r;
    }

    QString writeTrace() {
        TraceMetadata m = testfixture::smallMetadata(2, 4, 2, 8, 5);
        m.model = "tiny-model";
        m.layers[1].slidingWindow = 3;
        TraceWriter w = testfixture::randomTrace(m, DType::BF16);
        std::vector<float> attn(4 * 5 * 5, 0.2f);
        attn[3] = std::numeric_limits<float>::quiet_NaN();
        attn[4] = std::numeric_limits<float>::infinity();
        attn[5] = std::numeric_limits<float>::infinity();
        w.addTensor("layers.0.attn", DType::F32, {4, 5, 5}, attn);
        const QString path = m_dir.filePath("tiny.attn.safetensors");
        return w.write(path.toStdString()).ok() ? path : QString();
    }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void text() {
        const QString path = writeTrace();
        QVERIFY(!path.isEmpty());
        const Run r = cli({path});
        QCOMPARE(r.exitCode, 0);
        for (const char* s : {"tiny-model", "causal-lm", "T = 5", "2 (q/k/v)", "q BF16, k BF16, v BF16, attn F32",
                              "layers.0.attn", "1 NaN, 2 Inf", "validation  OK"})
            QVERIFY2(r.out.contains(s), qPrintable(QString("'%1' not in:\n%2").arg(s, r.out)));
    }

    void json() {
        const QString path = writeTrace();
        const Run r = cli({path, "--json"});
        QCOMPARE(r.exitCode, 0);
        auto j = Json::parse(r.out.toStdString());
        QVERIFY2(j.ok(), j.message().c_str());
        QCOMPARE(j->find("valid")->asBool(), true);
        QCOMPARE(j->find("tokens")->asNumber(), 5.0);
        QCOMPARE(j->find("layers")->asNumber(), 2.0);
        QCOMPARE(j->find("model")->asString(), std::string("tiny-model"));
        const Json& layers = *j->find("layerConfigs");
        QCOMPARE(layers.size(), size_t(2));
        QCOMPARE(layers.asArray()[0].find("kvHeads")->asNumber(), 2.0);
        QCOMPARE(layers.asArray()[0].find("slidingWindow")->asNumber(), 0.0);
        QCOMPARE(layers.asArray()[1].find("slidingWindow")->asNumber(), 3.0);
        const Json& nf = *j->find("nonFinite");
        QCOMPARE(nf.size(), size_t(1));
        QCOMPARE(nf.asArray()[0].find("tensor")->asString(), std::string("layers.0.attn"));
        QCOMPARE(nf.asArray()[0].find("nan")->asNumber(), 1.0);
        QCOMPARE(nf.asArray()[0].find("inf")->asNumber(), 2.0);
        QCOMPARE(j->find("fileBytes")->asNumber(), double(QFileInfo(path).size()));
    }

    void learnedSinksAndCaptureCheck() {
        // A v2 trace: learned sinks in layer 1 and a capture check written with --allow-mismatch.
        TraceMetadata m = testfixture::smallMetadata(2, 4, 2, 8, 5);
        m.model = "tiny-gpt-oss";
        m.layers[1].sinks = {0.5f, -1.25f, 2.0f, 0.0f};
        m.captureCheck = {true, "mismatch", 0.61, "probabilities", 1e-4, 1, 5};
        const QString path = m_dir.filePath("sinks.attn.safetensors");
        QVERIFY(testfixture::randomTrace(m, DType::F16).write(path.toStdString()).ok());
        const Run r = cli({path});
        QCOMPARE(r.exitCode, 0);
        for (const char* s : {"attnscope.trace v2", "sinks F32", "layer 1 learned sink logits per head: 0.5 -1.25 2 0",
                              "check       MISMATCH: max |Δp| 0.61 in layer 1 > 1e-04", "--allow-mismatch"})
            QVERIFY2(r.out.contains(QString::fromUtf8(s)), qPrintable(QString("'%1' not in:\n%2").arg(s, r.out)));
        const Run rj = cli({path, "--json"});
        QCOMPARE(rj.exitCode, 0);
        auto j = Json::parse(rj.out.toStdString());
        QVERIFY2(j.ok(), j.message().c_str());
        QCOMPARE(j->find("version")->asNumber(), 2.0);
        const Json& layers = *j->find("layerConfigs");
        QVERIFY(layers.asArray()[0].find("sinks")->isNull());
        QCOMPARE(layers.asArray()[1].find("sinks")->size(), size_t(4));
        QCOMPARE(layers.asArray()[1].find("sinks")->asArray()[1].asNumber(), -1.25);
        QCOMPARE(j->find("captureCheck")->find("status")->asString(), std::string("mismatch"));
        QCOMPARE(j->find("captureCheck")->find("worstLayer")->asNumber(), 1.0);
        // A trace from a tool without the check says so.
        const Run plain = cli({writeTrace()});
        QVERIFY2(plain.out.contains("check       not recorded"), qPrintable(plain.out));
    }

    void noScan() {
        const Run r = cli({writeTrace(), "--json", "--no-scan"});
        QCOMPARE(r.exitCode, 0);
        auto j = Json::parse(r.out.toStdString());
        QVERIFY(j.ok());
        QCOMPARE(j->find("scanned")->asBool(), false);
        QCOMPARE(j->find("nonFinite")->size(), size_t(0));
    }

    void errors_data() {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("truncated") << QByteArray("\x05\x00\x00", 3) << "truncated";
        QTest::newRow("not json") << QByteArray("\x04\x00\x00\x00\x00\x00\x00\x00{{{{", 12) << "invalid JSON";
    }
    void errors() {
        QFETCH(QByteArray, bytes);
        QFETCH(QString, fragment);
        const QString path = m_dir.filePath("bad.attn.safetensors");
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
        f.write(bytes);
        f.close();
        for (bool json : {false, true}) {
            const Run r = cli(json ? QStringList{path, "--json"} : QStringList{path});
            QCOMPARE(r.exitCode, 1);
            QCOMPARE(r.err.count('\n'), 1);  // one line
            QVERIFY2(r.err.startsWith("attnscope-cli info: " + path + ": "), qPrintable(r.err));
            QVERIFY2(r.err.contains(fragment), qPrintable(r.err));
            if (json) {
                auto j = Json::parse(r.out.toStdString());
                QVERIFY(j.ok());
                QCOMPARE(j->find("valid")->asBool(), false);
            }
        }
        QCOMPARE(cli({m_dir.filePath("missing.attn.safetensors")}).exitCode, 1);
    }

    void help() {
        const Run r = cli({"--help"});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains("--no-scan"));
        QCOMPARE(cli({}).exitCode, 2);  // a missing TRACE is a wrong command line
    }
};

QTEST_GUILESS_MAIN(TestInfo)
#include "tst_info.moc"
