// The CLI's conventions, checked on every verb it lists: `VERB --help` prints the usage and exits
// 0; a wrong command line (an unknown option, a missing value, an unknown verb) exits 2 with one
// line naming the problem; a run that fails on its input exits 1; every verb that takes a trace
// accepts `demo`.
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include "cli_run.h"

using cliTest::cli;
using cliTest::Run;

class TestConventions : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QStringList m_verbs;

private slots:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        const Run r = cli({"--help"});
        QCOMPARE(r.code, 0);
        QVERIFY2(r.out.contains("exit status: 0 done, 1 the input or the run failed, 2 the command line is wrong"),
                 qPrintable(r.out));
        const QRegularExpression verbLine(QStringLiteral("^  ([a-z]+) "));
        for (const QString& line : r.out.split('\n'))
            if (auto m = verbLine.match(line); m.hasMatch()) m_verbs << m.captured(1);
        for (const char* v : {"info", "analyze", "map", "profile", "synth", "selftest"})
            QVERIFY2(m_verbs.contains(v), v);
        QCOMPARE(cli({}).code, 2);  // no verb at all
    }

    void everyVerbHasHelp() {
        for (const QString& verb : m_verbs) {
            const Run r = cli({verb, "--help"});
            QVERIFY2(r.code == 0, qPrintable(verb + ": " + r.err));
            QVERIFY2(r.out.startsWith("usage: attnscope-cli " + verb), qPrintable(verb + ": " + r.out.left(200)));
            QVERIFY2(r.out.contains("--help"), qPrintable(verb));
        }
    }

    void wrongCommandLinesExit2() {
        for (const QString& verb : m_verbs) {
            const Run r = cli({verb, "--no-such-option"});
            QVERIFY2(r.code == 2, qPrintable(verb + ": exit " + QString::number(r.code) + " " + r.err));
            QVERIFY2(r.err.startsWith("attnscope-cli " + verb + ": unknown option --no-such-option"), qPrintable(r.err));
            QCOMPARE(r.err.count('\n'), 1);
        }
        const Run missingValue = cli({"map", "demo", "--layer"});
        QCOMPARE(missingValue.code, 2);
        QVERIFY2(missingValue.err.contains("option --layer needs a value"), qPrintable(missingValue.err));
        const Run unknownVerb = cli({"anallyze"});
        QCOMPARE(unknownVerb.code, 2);
        QVERIFY2(unknownVerb.err.contains("unknown verb"), qPrintable(unknownVerb.err));
    }

    void badInputExits1() {
        const QString bogus = m_dir.filePath("not-a-trace.attn.safetensors");
        QFile f(bogus);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("plain text, not a trace");
        f.close();
        for (const QStringList& args : {QStringList{"info", bogus}, QStringList{"analyze", bogus},
                                        QStringList{"map", bogus, "--layer", "0", "--head", "0", "-o",
                                                    m_dir.filePath("m.png")}}) {
            const Run r = cli(args);
            QVERIFY2(r.code == 1, qPrintable(args.join(' ') + ": exit " + QString::number(r.code)));
            QVERIFY2(r.err.contains(bogus), qPrintable(r.err));
        }
    }

    void everyTraceVerbAcceptsDemo() {
        const QList<QStringList> runs = {
            {"info", "demo", "--no-scan"},
            {"analyze", "demo", "--layers", "0", "--no-heads", "--no-similarity", "--cpu", "--no-progress"},
            {"map", "demo", "--layer", "0", "--head", "1", "--size", "32x32", "--cpu", "-o", m_dir.filePath("d.png")},
            {"profile", "demo", "--variants", "causal", "--cpu", "--no-accuracy", "--warmup", "0", "--min-samples", "1",
             "--max-samples", "1"},
            {"export", "demo", "--view", "map", "--size", "32", "-o", m_dir.filePath("d.svg")},
        };
        for (const QStringList& args : runs) {
            const Run r = cli(args);
            QVERIFY2(r.code == 0, qPrintable(args.join(' ') + ": exit " + QString::number(r.code) + " " + r.err));
        }
    }
};

QTEST_GUILESS_MAIN(TestConventions)
#include "tst_conventions.moc"
