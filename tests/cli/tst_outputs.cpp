// Outputs that cannot be written, end to end (issue 16 item 5): every writer of attnscope-cli (map
// PNG/CSV, export PNG/SVG/PDF, report HTML/MD/JSON/CSV, analyze --json FILE, profile --json/--csv/
// --perfetto, synth -o) into a missing folder, onto a path that is a directory, into a read-only
// folder and on a full disk (the ATTNSCOPE_TEST_DISK_FULL hook, core/include/attnscope/trace.h).
// Each exits 1 with one line naming the file and the reason, leaves no temporary file behind and
// leaves an existing file exactly as it was.
#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>

#include <sys/stat.h>
#include <unistd.h>

#include "attnscope/synth.h"

#include "cli_run.h"

using namespace attnscope;

namespace {

constexpr uid_t kNobody = 65534;

struct Run {
    int code = -1;
    QString out, err;
};

/// Runs the CLI; `unprivileged`: as user nobody when the test runs as root (root writes anywhere).
Run runCli(const QStringList& args, bool unprivileged = false, const QByteArray& diskFull = {}) {
    QProcess p;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    if (!diskFull.isEmpty()) env.insert(QStringLiteral("ATTNSCOPE_TEST_DISK_FULL"), QString::fromLatin1(diskFull));
    p.setProcessEnvironment(env);
    if (unprivileged && ::geteuid() == 0)
        p.setChildProcessModifier([] {
            if (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(99);
        });
    p.start(QStringLiteral(ATTNSCOPE_CLI), args);
    Run r;
    if (!p.waitForFinished(300000)) return r;
    r.code = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -2;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

QByteArray readAll(const QString& path) {
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

void writeFile(const QString& path, const QByteArray& bytes) {
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly) || f.write(bytes) != bytes.size()) qFatal("cannot write %s", qPrintable(path));
}

/// Files under `dir` whose names carry our temporary suffix (PATH.tmp-XXXXXXXX).
QStringList temporaries(const QString& dir) {
    QStringList out;
    QDirIterator it(dir, QDir::Files | QDir::Hidden, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QString f = it.next();
        if (f.contains(QLatin1String(".tmp-"))) out << f;
    }
    return out;
}

}  // namespace

class TestOutputs : public QObject {
    Q_OBJECT

private slots:
    void initTestCase();
    void writersWork_data();
    void writersWork();
    void missingFolder_data();
    void missingFolder();
    void pathIsADirectory_data();
    void pathIsADirectory();
    void readOnlyFolder_data();
    void readOnlyFolder();
    void fullDisk_data();
    void fullDisk();
    void reportOutputs();

private:
    void writerRows();
    /// The arguments of the writer in the current data row, writing to `out`.
    QStringList argsFor(const QString& writer, const QString& out) const;
    QTemporaryDir m_dir;
    QString m_trace;
    bool m_views = false;
    int m_case = 0;
};

void TestOutputs::initTestCase() {
    QVERIFY(m_dir.isValid());
    QCOMPARE(::chmod(m_dir.path().toUtf8().constData(), 0755), 0);  // nobody reads the trace (readOnlyFolder)
    m_views = runCli({QStringLiteral("--help")}).out.contains(QLatin1String("export"));
    m_trace = m_dir.filePath(QStringLiteral("in.attn.safetensors"));
    SynthOptions o;
    o.tokens = 96;
    o.layers = 1;
    o.headDim = 16;
    o.heads = {SynthHead::FirstTokenSink, SynthHead::LocalBand};
    auto t = writeSyntheticTrace(m_trace.toStdString(), o);
    QVERIFY2(t.ok(), t.message().c_str());
    QCOMPARE(::chmod(m_trace.toUtf8().constData(), 0644), 0);
}

void TestOutputs::writerRows() {
    QTest::addColumn<QString>("writer");
    QTest::addColumn<QString>("ext");
    const std::vector<std::pair<const char*, const char*>> rows = {{"map", "png"},
                                                                   {"map", "csv"},
                                                                   {"export", "png"},
                                                                   {"export", "svg"},
                                                                   {"export", "pdf"},
                                                                   {"analyze", "json"},
                                                                   {"profile-json", "json"},
                                                                   {"profile-csv", "csv"},
                                                                   {"profile-perfetto", "json"},
                                                                   {"synth", "attn.safetensors"}};
    for (const auto& [w, e] : rows) QTest::newRow(qPrintable(QStringLiteral("%1 .%2").arg(w, e))) << w << e;
}

QStringList TestOutputs::argsFor(const QString& writer, const QString& out) const {
    const QStringList quick = {"--cpu", "--warmup", "0", "--min-samples", "2", "--max-samples", "2", "--no-progress"};
    const QStringList shape = {"profile", "--shape", "1,2,64,16", "--variants", "causal"};
    if (writer == "map")
        return {"map", m_trace, "--layer", "0", "--head", "1", "--cpu", "--size", "32", "--no-progress", "-o", out};
    if (writer == "export")
        return {"export", m_trace, "--layer",       "0",  "--head", "1", "--view", "map",
                "--dpi",  "72",    "--no-progress", "-o", out};
    if (writer == "analyze") return {"analyze", m_trace, "--cpu", "--no-progress", "--json", out};
    if (writer == "profile-json") return shape + quick + QStringList{"--json", out};
    if (writer == "profile-csv") return shape + quick + QStringList{"--csv", out};
    if (writer == "profile-perfetto") return shape + quick + QStringList{"--perfetto", out};
    if (writer == "synth")
        return {"synth", "-o",      out, "--tokens",   "64", "--layers",
                "1",     "--heads", "2", "--head-dim", "16", "--no-progress"};
    qFatal("unknown writer %s", qPrintable(writer));
    return {};
}

void TestOutputs::writersWork_data() { writerRows(); }
void TestOutputs::writersWork() {
    // Each writer succeeds into a plain folder: the refusals below are about the destination alone.
    QFETCH(QString, writer);
    QFETCH(QString, ext);
    if (writer == "export" && !m_views) QSKIP("attnscope-cli was built without the views: no export verb");
    const QString out = m_dir.filePath(QStringLiteral("ok-%1.%2").arg(writer, ext));
    const Run r = runCli(argsFor(writer, out));
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY2(QFileInfo(out).size() > 16, qPrintable(out));  // more than the full-disk test's limit
}

void TestOutputs::missingFolder_data() { writerRows(); }
void TestOutputs::missingFolder() {
    QFETCH(QString, writer);
    QFETCH(QString, ext);
    if (writer == "export" && !m_views) QSKIP("no export verb");
    const QString missing = m_dir.filePath(QStringLiteral("missing-%1").arg(++m_case));
    const QString out = missing + QStringLiteral("/sub/out.") + ext;
    const Run r = runCli(argsFor(writer, out));
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains(out + QStringLiteral(": cannot write: the folder ") + missing +
                            QStringLiteral("/sub does not exist")),
             qPrintable(r.err));
    QCOMPARE(r.err.count(QLatin1Char('\n')), 1);  // one line
    QVERIFY(!QFileInfo::exists(missing));
}

void TestOutputs::pathIsADirectory_data() { writerRows(); }
void TestOutputs::pathIsADirectory() {
    QFETCH(QString, writer);
    QFETCH(QString, ext);
    if (writer == "export" && !m_views) QSKIP("no export verb");
    const QString out = m_dir.filePath(QStringLiteral("adir-%1.%2").arg(++m_case).arg(ext));
    QVERIFY(QDir().mkpath(out + QStringLiteral("/kept")));
    const Run r = runCli(argsFor(writer, out));
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains(out + QStringLiteral(": cannot write: it is a directory")), qPrintable(r.err));
    QVERIFY(QFileInfo(out + QStringLiteral("/kept")).isDir());
    QVERIFY(temporaries(m_dir.path()).isEmpty());
}

void TestOutputs::readOnlyFolder_data() { writerRows(); }
void TestOutputs::readOnlyFolder() {
    QFETCH(QString, writer);
    QFETCH(QString, ext);
    if (writer == "export" && !m_views) QSKIP("no export verb");
    const QString ro = m_dir.filePath(QStringLiteral("ro-%1").arg(++m_case));
    QVERIFY(QDir().mkpath(ro));
    const QString good = ro + QStringLiteral("/good.") + ext;
    writeFile(good, "an earlier good file");
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0555), 0);
    for (const QString& out : {ro + QStringLiteral("/new.") + ext, good}) {
        const Run r = runCli(argsFor(writer, out), true);
        QCOMPARE(r.code, 1);
        QVERIFY2(r.err.contains(out + QStringLiteral(": cannot write in the folder ") + ro +
                                QStringLiteral(": Permission denied")),
                 qPrintable(r.err));
    }
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0755), 0);
    QCOMPARE(QDir(ro).entryList(QDir::Files | QDir::Hidden), QStringList{QStringLiteral("good.") + ext});
    QCOMPARE(readAll(good), QByteArray("an earlier good file"));
}

void TestOutputs::fullDisk_data() { writerRows(); }
void TestOutputs::fullDisk() {
    QFETCH(QString, writer);
    QFETCH(QString, ext);
    if (writer == "export" && !m_views) QSKIP("no export verb");
    const QString dir = m_dir.filePath(QStringLiteral("full-%1").arg(++m_case));
    QVERIFY(QDir().mkpath(dir));
    const QString out = dir + QStringLiteral("/out.") + ext;
    writeFile(out, "an earlier good file");
    const Run r = runCli(argsFor(writer, out), false, "16");  // 16 bytes fit; every output is longer
    QCOMPARE(r.code, 1);
    QVERIFY2(r.err.contains(out + QStringLiteral(": ")) && r.err.contains(QLatin1String("No space left on device")),
             qPrintable(r.err));
    QCOMPARE(readAll(out), QByteArray("an earlier good file"));  // not replaced by a partial file
    QVERIFY2(temporaries(dir).isEmpty(), qPrintable(temporaries(dir).join(' ')));
    // Without an earlier file: nothing at all is left.
    QVERIFY(QFile::remove(out));
    const Run again = runCli(argsFor(writer, out), false, "0");
    QCOMPARE(again.code, 1);
    QVERIFY(QDir(dir).entryList(QDir::Files | QDir::Hidden).isEmpty());
}

void TestOutputs::reportOutputs() {
    if (!m_views) QSKIP("attnscope-cli was built without the views: no report verb");
    auto report = [&](const QString& out, bool unprivileged = false, const QByteArray& diskFull = {}) {
        return runCli({"report", m_trace, "-o", out, "--format", "html,md,json,csv", "--dpi", "72", "--no-progress"},
                      unprivileged, diskFull);
    };
    // Works, and a missing folder is created (report's -o is a folder, documented so).
    const QString ok = m_dir.filePath(QStringLiteral("report-ok/nested"));
    const Run good = report(ok);
    QVERIFY2(good.code == 0, qPrintable(good.err));
    QVERIFY(QFileInfo(ok + "/report.json").size() > 16);
    // A file where the folder should be.
    const QString file = m_dir.filePath(QStringLiteral("report-file"));
    writeFile(file, "not a folder");
    const Run onFile = report(file);
    QCOMPARE(onFile.code, 1);
    QVERIFY2(onFile.err.contains(file + QStringLiteral(": cannot create the report directory")),
             qPrintable(onFile.err));
    QCOMPARE(readAll(file), QByteArray("not a folder"));
    // A read-only folder, and a new folder inside one.
    const QString ro = m_dir.filePath(QStringLiteral("report-ro"));
    QVERIFY(QDir().mkpath(ro));
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0555), 0);
    const Run inRo = report(ro, true);
    QCOMPARE(inRo.code, 1);
    QVERIFY2(inRo.err.contains(ro + QStringLiteral(": cannot write in the folder: Permission denied")),
             qPrintable(inRo.err));
    const Run belowRo = report(ro + QStringLiteral("/new"), true);
    QCOMPARE(belowRo.code, 1);
    QVERIFY2(belowRo.err.contains(ro + QStringLiteral("/new: cannot create the report directory: Permission denied")),
             qPrintable(belowRo.err));
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0755), 0);
    QVERIFY(QDir(ro).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden).isEmpty());
    // A full disk over an earlier report: the first file that does not fit fails; every file keeps
    // its earlier complete contents (none is replaced by a partial one) and no temporary is left.
    const QByteArray before = readAll(ok + "/report.html");
    QVERIFY(before.size() > 16);
    const Run full = report(ok, false, "16");
    QCOMPARE(full.code, 1);
    QVERIFY2(full.err.contains(ok + QStringLiteral("/report.html: ")) &&
                 full.err.contains(QLatin1String("No space left on device")),
             qPrintable(full.err));
    QCOMPARE(readAll(ok + "/report.html"), before);
    QVERIFY(temporaries(ok).isEmpty());
}

QTEST_GUILESS_MAIN(TestOutputs)
#include "tst_outputs.moc"
