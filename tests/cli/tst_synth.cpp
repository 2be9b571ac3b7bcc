// attnscope-cli synth end to end: a GQA trace from --heads/--kv-heads read back with the shape asked
// for, the size line, the one-line usage errors for bad head counts and --heads with --kv-groups,
// absurd sizes refused before any file appears, and --help documenting the options.
#include <QtTest>

#include <QDir>

#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "cli_run.h"

using namespace attnscope;
using cliTest::cli;

class TestSynthVerb : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

    static bool oneLine(const QString& err) { return err.count('\n') == 1; }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void headsAndKvHeads() {
        const QString path = m_dir.filePath("gqa.attn.safetensors");
        const auto r = cli({"synth", "-o", path, "--heads", "8", "--kv-heads", "2", "--head-dim", "128", "--tokens",
                            "300", "--layers", "2", "--dtype", "bf16", "--no-progress"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("8 heads (2 kv heads)") && r.out.contains("size: "), qPrintable(r.out));
        auto trace = Trace::open(path.toStdString());
        QVERIFY2(trace.ok(), trace.message().c_str());
        QCOMPARE((*trace)->numLayers(), 2);
        QCOMPARE((*trace)->config(1).heads, 8);
        QCOMPARE((*trace)->config(1).kvHeads, 2);
        QCOMPARE((*trace)->config(1).headDim, 128);
        QCOMPARE((*trace)->dtype(), DType::BF16);
        QVERIFY(r.out.contains(QString("(%1 bytes)").arg((*trace)->fileSize())));
        // The kv heads take the patterns in turn: heads 0-3 share kv head 0 (first-token sink).
        QVERIFY2(r.out.contains("head  3  first-token-sink") && r.out.contains("head  4  hidden-sink"),
                 qPrintable(r.out));
        // The same file as the in-memory generator's.
        SynthOptions o;
        o.tokens = 300;
        o.layers = 2;
        o.headDim = 128;
        o.queryHeads = 8;
        o.kvHeads = 2;
        o.dtype = DType::BF16;
        auto made = makeSyntheticTrace(o);
        QVERIFY2(made.ok(), made.message().c_str());
        const std::vector<std::byte> expected = made->first.serialize();
        QFile f(path);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.readAll();
        QVERIFY(size_t(bytes.size()) == expected.size() &&
                std::memcmp(bytes.constData(), expected.data(), expected.size()) == 0);
    }

    void headsAloneIsOneKvHeadPerHead() {
        const QString path = m_dir.filePath("mha.attn.safetensors");
        const auto r = cli({"synth", "-o", path, "--heads", "10", "--tokens", "200", "--layers", "1"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("10 heads (10 kv heads)"), qPrintable(r.out));
    }

    void kvHeadsWithKvGroups() {
        const QString path = m_dir.filePath("groups.attn.safetensors");
        const auto r =
            cli({"synth", "-o", path, "--kv-heads", "3", "--kv-groups", "2", "--tokens", "200", "--layers", "1"});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("6 heads (3 kv heads)"), qPrintable(r.out));
    }

    void usageErrors() {
        const QString path = m_dir.filePath("bad.attn.safetensors");
        struct Case {
            QStringList args;
            const char* expected;
        };
        const Case cases[] = {
            {{"--heads", "30", "--kv-heads", "8"}, "--heads 30 must be a multiple of --kv-heads 8"},
            {{"--heads", "8", "--kv-groups", "2"}, "--heads and --kv-groups"},
            {{"--heads", "0"}, "--heads 0 out of range"},
            {{"--kv-heads", "x"}, "--kv-heads expects an integer"},
            {{"--heads", "65537"}, "--heads 65537 out of range"},
        };
        for (const Case& c : cases) {
            const auto r = cli(QStringList{"synth", "-o", path} + c.args);
            QCOMPARE(r.code, 1);
            QVERIFY2(r.err.contains(c.expected) && oneLine(r.err), qPrintable(r.err));
        }
        QVERIFY(!QFile::exists(path));
    }

    void absurdSizesRefusedBeforeWriting() {
        QTemporaryDir dir;
        const QString path = dir.filePath("huge.attn.safetensors");
        auto r = cli({"synth", "-o", path, "--tokens", "100000", "--heads", "65536", "--kv-heads", "8", "--head-dim",
                      "4096", "--layers", "1"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("layers.0.q") && r.err.contains("limit") && oneLine(r.err), qPrintable(r.err));
        r = cli({"synth", "-o", path, "--tokens", "100000", "--heads", "64", "--kv-heads", "8", "--head-dim", "4096",
                 "--layers", "1000"});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("free") && oneLine(r.err), qPrintable(r.err));
        QVERIFY(QDir(dir.path()).isEmpty());
    }

    void helpDocumentsTheOptions() {
        const auto r = cli({"synth", "--help"});
        QCOMPARE(r.code, 0);
        for (const char* s : {"--heads", "--kv-heads", "--kv-groups", "--no-progress", "Llama-3-8B"})
            QVERIFY2(r.out.contains(s), qPrintable(QString("'%1' not in:\n%2").arg(s, r.out)));
    }
};

QTEST_GUILESS_MAIN(TestSynthVerb)
#include "tst_synth.moc"
