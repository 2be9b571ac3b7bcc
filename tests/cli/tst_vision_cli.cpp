// End to end: `synth --vision` writes a vision trace whose planted heads `analyze` finds (local
// head: short patch distance; register-sink head: the last register takes the patch queries'
// mass), `info` prints the layout and image, `demo:vision` resolves through ATTNSCOPE_DEMO, and
// bad --vision specs are refused with the reason.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>

#include "cli_run.h"

using cliTest::cli;

class TestVisionCli : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private slots:
    void synthAnalyzeInfo() {
        QVERIFY(m_dir.isValid());
        const QString trace = m_dir.filePath("shapes-vit.attn.safetensors");
        auto w = cli({"synth", "--vision", "9x12,prefix=4,patch=8", "--layers", "2", "--heads", "8", "--kv-heads", "4",
                      "--head-dim", "32", "--dtype", "f32", "-o", trace});
        QVERIFY2(w.code == 0, qPrintable(w.err));
        QVERIFY2(w.out.contains("local-2d") && w.out.contains("register-sink"), qPrintable(w.out));

        auto info = cli({"info", trace});
        QVERIFY2(info.code == 0, qPrintable(info.err));
        QVERIFY2(info.out.contains("4 prefix tokens ([CLS] [REG0] [REG1] [REG2]), then patches p0,0 … p8,11 at "
                                   "positions 4..111"),
                 qPrintable(info.out));
        QVERIFY2(info.out.contains("image       96×72 RGB"), qPrintable(info.out));

        auto a = cli({"analyze", trace, "--cpu", "--json", "-", "--no-progress"});
        QVERIFY2(a.code == 0, qPrintable(a.err));
        const QJsonObject vision = QJsonDocument::fromJson(a.out.toUtf8()).object()["vision"].toObject();
        QCOMPARE(vision["layout"].toObject()["prefixTokens"].toInt(), 4);
        QCOMPARE(vision["prefixNames"].toArray().at(3).toString(), QString("[REG2]"));
        const QJsonArray heads = vision["heads"].toArray();
        QCOMPARE(heads.size(), 16);
        // kv heads take local-2d, register-sink, object, noise; two query heads per kv head.
        for (int layer = 0; layer < 2; ++layer) {
            const QJsonObject local = heads.at(layer * 8 + 0).toObject();
            const QJsonObject sink = heads.at(layer * 8 + 2).toObject();
            QVERIFY2(local["patchDistance"].toDouble() < 1.2, qPrintable(QJsonDocument(local).toJson()));
            QVERIFY2(local["prefixShare"].toDouble() < 1e-3, qPrintable(QJsonDocument(local).toJson()));
            QVERIFY2(sink["prefixTokenShare"].toArray().at(3).toDouble() > 0.9,
                     qPrintable(QJsonDocument(sink).toJson()));
        }
        auto text = cli({"analyze", trace, "--cpu", "--no-heads", "--no-progress"});
        QVERIFY2(text.code == 0 && text.out.contains("vision: patch grid 9×12, 4 prefix tokens"), qPrintable(text.out));

        // demo:vision: the vision demo's file in the ATTNSCOPE_DEMO folder.
        QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
        env.insert("ATTNSCOPE_DEMO", m_dir.path());
        auto demo = cli({"info", "demo:vision", "--no-scan"}, env);
        QVERIFY2(demo.code == 0 && demo.out.contains("shapes-vit.attn.safetensors"), qPrintable(demo.out + demo.err));
    }

    void badVisionSpecs_data() {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("expected");
        QTest::newRow("no x") << QStringList{"--vision", "37"} << "the grid must be ROWSxCOLS";
        QTest::newRow("prefix range") << QStringList{"--vision", "4x4,prefix=99"} << "prefix must be in [0, 64]";
        QTest::newRow("unknown part") << QStringList{"--vision", "4x4,regs=2"} << "unknown part 'regs=2'";
        QTest::newRow("with tokens") << QStringList{"--vision", "4x4", "--tokens", "20"}
                                     << "--tokens does not apply to --vision";
    }

    void badVisionSpecs() {
        QFETCH(QStringList, args);
        QFETCH(QString, expected);
        auto r = cli(QStringList{"synth", "-o", m_dir.filePath("bad.attn.safetensors")} + args);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains(expected), qPrintable(r.err));
        QVERIFY(!QFile::exists(m_dir.filePath("bad.attn.safetensors")));
    }
};

QTEST_GUILESS_MAIN(TestVisionCli)
#include "tst_vision_cli.moc"
