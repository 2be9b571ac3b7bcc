// The CLI's conventions, checked on every verb it lists: `VERB --help` prints the usage and exits
// 0, and its usage line names every option its table lists; one spelling per idea (--pool and
// --size N|WxH in both map verbs, --no-progress wherever a progress line can show, --json without
// a file writes JSON to stdout); a wrong command line (an unknown option, a missing value, an
// unknown verb) exits 2 with one line naming the problem; a run that fails on its input exits 1;
// every verb that takes a trace accepts `demo`.
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QTemporaryDir>
#include <QtTest>

#include "cli_run.h"

using cliTest::cli;
using cliTest::Run;

namespace {
/// The options a verb's --help table lists ("  --name VALUE  help", "  -o VALUE  help").
QStringList listedOptions(const QString& help) {
    QStringList out;
    const QRegularExpression row(QStringLiteral("^  (--?[a-z][a-z0-9-]*)"));
    for (const QString& line : help.split('\n'))
        if (auto m = row.match(line); m.hasMatch() && m.captured(1) != QLatin1String("--help")) out << m.captured(1);
    return out;
}
bool mentions(const QString& text, const QString& option) {
    return text.contains(QRegularExpression(QStringLiteral("(^|[\\s\\[|])") + QRegularExpression::escape(option) +
                                            QStringLiteral("([\\s\\]|=[]|$)")));
}
}  // namespace

class TestConventions : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    QStringList m_verbs;

private slots:
    void initTestCase() {
        QVERIFY(m_dir.isValid());
        const Run r = cli({"--help"});
        QCOMPARE(r.code, 0);
        QVERIFY2(r.out.contains(
                     "exit status: 0 done, 1 the input or the run failed, 2 the command line is wrong, 3 done in part"),
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

    void usageLineListsEveryOption() {
        for (const QString& verb : m_verbs) {
            const QString help = cli({verb, "--help"}).out;
            const QString usage = help.section('\n', 0, 0);
            const QStringList options = listedOptions(help);
            QVERIFY2(!options.isEmpty(), qPrintable(verb));
            for (const QString& o : options)
                QVERIFY2(mentions(usage, o), qPrintable(verb + ": " + o + " is not in the usage line: " + usage));
        }
    }

    void oneSpellingPerIdea() {
        QMap<QString, QString> help;
        for (const QString& verb : m_verbs) help[verb] = cli({verb, "--help"}).out;
        for (const QString& verb : m_verbs) {
            const QStringList options = listedOptions(help[verb]);
            for (const char* retired : {"--pooling", "--quiet"})  // hidden aliases, never listed
                QVERIFY2(!options.contains(retired), qPrintable(verb + " lists " + retired));
            if (verb != QLatin1String("selftest"))  // every other verb can show a progress line
                QVERIFY2(options.contains("--no-progress"), qPrintable(verb + " has no --no-progress"));
        }
        for (const char* verb : {"map", "export"}) {
            const QStringList options = listedOptions(help[verb]);
            QVERIFY2(options.contains("--pool") && options.contains("--size"), verb);
            QVERIFY2(help[verb].contains("N (N x N) or WxH"), verb);
        }
        for (const char* verb : {"info", "analyze", "profile"})
            QVERIFY2(listedOptions(help[verb]).contains("--json"), verb);
    }

    void sizeAndPoolMeanTheSameInMapAndExport() {
        // map: N is N x N, WxH as before.
        const QString csv = m_dir.filePath("s.csv");
        Run r = cli({"map", "demo", "--layer", "0", "--head", "0", "--size", "12", "--pool", "max", "--cpu",
                     "--no-progress", "-o", csv});
        QVERIFY2(r.code == 0, qPrintable(r.err));
        QVERIFY2(r.out.contains("12x12 cells") && r.out.contains("max pooling"), qPrintable(r.out));
        r = cli({"map", "demo", "--layer", "0", "--head", "0", "--size", "12x0", "-o", csv});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("--size 12x0: expected N or WxH"), qPrintable(r.err));
        // export: the same spellings, and the earlier ones as hidden aliases.
        for (const QStringList& extra : {QStringList{"--size", "24x12", "--pool", "max", "--no-progress"},
                                         QStringList{"--size", "24", "--pooling", "max", "--quiet"}}) {
            r = cli(QStringList{"export", "demo", "--view", "map", "--dpi", "72", "-o", m_dir.filePath("s.png")} +
                    extra);
            QVERIFY2(r.code == 0, qPrintable(extra.join(' ') + ": " + r.err));
        }
        r = cli({"export", "demo", "--view", "map", "--size", "12x0", "-o", m_dir.filePath("s.png")});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("--size 12x0: expected N or WxH"), qPrintable(r.err));
        r = cli({"export", "demo", "--view", "map", "--pool", "sum", "-o", m_dir.filePath("s.png")});
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains("--pool sum: expected mean or max"), qPrintable(r.err));
    }

    void jsonWithoutAFileGoesToStdout() {
        const QStringList common{"--layers", "0", "--no-similarity", "--cpu", "--no-progress"};
        // --json before or after the trace, bare or '-': one JSON document on stdout, nothing else.
        for (const QStringList& args :
             {QStringList{"analyze", "demo", "--json"} + common, QStringList{"analyze", "--json", "demo"} + common,
              QStringList{"analyze", "demo", "--json", "-"} + common}) {
            const Run r = cli(args);
            QVERIFY2(r.code == 0, qPrintable(args.join(' ') + ": " + r.err));
            QJsonParseError e;
            const QJsonDocument doc = QJsonDocument::fromJson(r.out.toUtf8(), &e);
            QVERIFY2(e.error == QJsonParseError::NoError && doc.isObject(),
                     qPrintable(args.join(' ') + ": " + r.out.left(200)));
            QVERIFY2(doc.object().contains("heads"), qPrintable(args.join(' ')));
        }
        // With a file, as before (either spelling), and the tables on stdout.
        for (const QString& form : {QStringLiteral("--json"), QStringLiteral("--json=")}) {
            const QString file = m_dir.filePath("a.json");
            QFile::remove(file);
            const QStringList args = form.endsWith('=') ? QStringList{"analyze", "demo", form + file}
                                                        : QStringList{"analyze", "demo", form, file};
            const Run r = cli(args + common);
            QVERIFY2(r.code == 0, qPrintable(r.err));
            QVERIFY2(r.out.contains("wrote " + file), qPrintable(r.out));
            QFile f(file);
            QVERIFY(f.open(QIODevice::ReadOnly));
            QVERIFY(QJsonDocument::fromJson(f.readAll()).isObject());
        }
        const Run info = cli({"info", "demo", "--json", "--no-scan"});
        QCOMPARE(info.code, 0);
        QVERIFY(QJsonDocument::fromJson(info.out.toUtf8()).isObject());
        const Run profile = cli({"profile", "demo", "--json", "--variants", "causal", "--cpu", "--no-accuracy",
                                 "--warmup", "0", "--min-samples", "1", "--max-samples", "1", "--no-progress"});
        QVERIFY2(profile.code == 0, qPrintable(profile.err));
        QVERIFY2(QJsonDocument::fromJson(profile.out.toUtf8()).isObject(), qPrintable(profile.out.left(200)));
    }

    void wrongCommandLinesExit2() {
        for (const QString& verb : m_verbs) {
            const Run r = cli({verb, "--no-such-option"});
            QVERIFY2(r.code == 2, qPrintable(verb + ": exit " + QString::number(r.code) + " " + r.err));
            QVERIFY2(r.err.startsWith("attnscope-cli " + verb + ": unknown option --no-such-option"),
                     qPrintable(r.err));
            QCOMPARE(r.err.count('\n'), 1);
        }
        const Run missingValue = cli({"map", "demo", "--layer"});
        QCOMPARE(missingValue.code, 2);
        QVERIFY2(missingValue.err.contains("option --layer needs a value"), qPrintable(missingValue.err));
        const Run twoTraces = cli({"analyze", "demo", "demo"});  // an optional --json value is never guessed
        QCOMPARE(twoTraces.code, 2);
        QVERIFY2(twoTraces.err.contains("unexpected argument 'demo'"), qPrintable(twoTraces.err));
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
        for (const QStringList& args :
             {QStringList{"info", bogus}, QStringList{"analyze", bogus},
              QStringList{"map", bogus, "--layer", "0", "--head", "0", "-o", m_dir.filePath("m.png")}}) {
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
