// Outputs that cannot be written (issue 16 item 5): every core writer (writeFileAtomic, the
// in-memory TraceWriter, the streaming TraceStreamWriter behind synth, PNG, profile exports) into
// a missing folder, into a folder that cannot be written, onto a path that is a directory, and on a
// full disk (the ATTNSCOPE_TEST_DISK_FULL hook, trace.h). Each fails with an error naming the file
// and the reason, leaves no temporary behind and leaves an existing file exactly as it was.
#include <QtTest>

#include <QTemporaryDir>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sys/stat.h>
#include <unistd.h>

#include "attnscope/image.h"
#include "attnscope/profiler.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "trace_fixture.h"

using namespace attnscope;
namespace fs = std::filesystem;

namespace {

using Writer = std::function<Status(const std::string& path)>;

struct NamedWriter {
    const char* name;
    Writer write;
    size_t minBytes;  ///< a successful output is at least this long (for the disk-full limit)
};

std::vector<NamedWriter> writers() {
    std::vector<NamedWriter> w;
    w.push_back(
        {"writeFileAtomic", [](const std::string& p) { return writeFileAtomic(p, std::string(5000, 'x')); }, 5000});
    w.push_back(
        {"TraceWriter",
         [](const std::string& p) {
             return testfixture::randomTrace(testfixture::smallMetadata(1, 2, 1, 16, 64), DType::F32, 5).write(p);
         },
         4096});
    w.push_back({"writeSyntheticTrace",
                 [](const std::string& p) {
                     SynthOptions o;
                     o.tokens = 128;
                     o.layers = 1;
                     o.headDim = 16;
                     o.heads = {SynthHead::LocalBand, SynthHead::Noise};
                     auto r = writeSyntheticTrace(p, o);
                     return r ? Status::success() : r.status();
                 },
                 8192});
    w.push_back({"writePng",
                 [](const std::string& p) {
                     std::vector<float> values(64 * 64);
                     for (size_t i = 0; i < values.size(); ++i) values[i] = float((i * 2654435761u) % 1000);
                     return writePng(p, colorize(values, 64, 64));
                 },
                 200});
    for (const char* format : {"json", "csv", "perfetto"})
        w.push_back({format, [format](const std::string& p) { return writeProfile(ProfileReport{}, p, format); }, 2});
    return w;
}

/// Names in `dir` that look like our temporaries (PATH.tmp-XXXXXXXX).
QStringList temporaries(const QString& dir) {
    QStringList out;
    for (const auto& e : fs::directory_iterator(dir.toStdString()))
        if (e.path().filename().string().find(".tmp-") != std::string::npos)
            out << QString::fromStdString(e.path().string());
    return out;
}

std::string readAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

/// Runs `f` as an unprivileged user when the test runs as root (root writes into any folder).
template <typename F>
auto asUnprivileged(F f) {
    const bool root = ::geteuid() == 0;
    if (root && ::seteuid(65534) != 0) qFatal("seteuid(nobody) failed");
    auto r = f();
    if (root && ::seteuid(0) != 0) qFatal("seteuid(0) failed");
    return r;
}

}  // namespace

class TestOutputErrors : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private slots:
    void initTestCase();
    void writersSucceed();
    void missingFolder();
    void pathIsADirectory();
    void readOnlyFolder();
    void fullDiskKeepsTheOldFile();
    void fullDiskWithoutOldFile();
    void preflightChecks();
};

void TestOutputErrors::initTestCase() {
    QVERIFY(m_dir.isValid());
    // Readable by the unprivileged user readOnlyFolder switches to.
    QCOMPARE(::chmod(m_dir.path().toUtf8().constData(), 0755), 0);
}

void TestOutputErrors::writersSucceed() {
    // The writers themselves work (otherwise the failures below would prove nothing).
    for (const auto& w : writers()) {
        const std::string path = m_dir.filePath(QStringLiteral("ok-%1.out").arg(w.name)).toStdString();
        const Status s = w.write(path);
        QVERIFY2(s.ok(), (std::string(w.name) + ": " + s.message()).c_str());
        QVERIFY2(fs::file_size(path) >= w.minBytes, w.name);
    }
    QVERIFY(temporaries(m_dir.path()).isEmpty());
}

void TestOutputErrors::missingFolder() {
    for (const auto& w : writers()) {
        const std::string path = m_dir.filePath(QStringLiteral("missing/sub/%1.out").arg(w.name)).toStdString();
        const Status s = w.write(path);
        QVERIFY2(!s.ok(), w.name);
        QVERIFY2(s.message().rfind(path, 0) == 0, s.message().c_str());  // names the file first
        QVERIFY2(s.message().find("does not exist") != std::string::npos, s.message().c_str());
        QVERIFY(!fs::exists(m_dir.filePath("missing").toStdString()));
    }
}

void TestOutputErrors::pathIsADirectory() {
    for (const auto& w : writers()) {
        const QString dir = m_dir.filePath(QStringLiteral("adir-%1").arg(w.name));
        QVERIFY(QDir().mkpath(dir + "/inside"));
        const Status s = w.write(dir.toStdString());
        QVERIFY2(!s.ok(), w.name);
        QVERIFY2(s.message().rfind(dir.toStdString(), 0) == 0, s.message().c_str());
        QVERIFY2(s.message().find("is a directory") != std::string::npos, s.message().c_str());
        QVERIFY(fs::is_directory((dir + "/inside").toStdString()));  // untouched
        QVERIFY(temporaries(m_dir.path()).isEmpty());
        // An empty directory too (rename() would replace nothing, but it must not be taken for a file).
        const QString empty = m_dir.filePath(QStringLiteral("empty-%1").arg(w.name));
        QVERIFY(QDir().mkpath(empty));
        const Status e = w.write(empty.toStdString());
        QVERIFY2(!e.ok() && e.message().find("is a directory") != std::string::npos, e.message().c_str());
        QVERIFY(fs::is_directory(empty.toStdString()));
    }
}

void TestOutputErrors::readOnlyFolder() {
    const QString ro = m_dir.filePath(QStringLiteral("readonly"));
    QVERIFY(QDir().mkpath(ro));
    const std::string old = (ro + "/old.out").toStdString();
    QVERIFY(writeFileAtomic(old, std::string("the good file")).ok());
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0555), 0);
    for (const auto& w : writers()) {
        for (const std::string& path : {(ro + "/new.out").toStdString(), old}) {
            const Status s = asUnprivileged([&] { return w.write(path); });
            QVERIFY2(!s.ok(), w.name);
            QVERIFY2(s.message().rfind(path, 0) == 0, s.message().c_str());
            QVERIFY2(s.message().find("cannot write in the folder " + ro.toStdString()) != std::string::npos,
                     s.message().c_str());
            QVERIFY2(s.message().find("Permission denied") != std::string::npos, s.message().c_str());
        }
        QVERIFY(!fs::exists((ro + "/new.out").toStdString()));
        QCOMPARE(readAll(old), std::string("the good file"));
        QVERIFY(temporaries(ro).isEmpty());
    }
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0755), 0);
}

void TestOutputErrors::fullDiskKeepsTheOldFile() {
    for (const auto& w : writers()) {
        const std::string path = m_dir.filePath(QStringLiteral("full-%1.out").arg(w.name)).toStdString();
        const std::string good = "an earlier good output of " + std::string(w.name);
        QVERIFY(writeFileAtomic(path, good).ok());
        // Room for half of the output (at least one byte short of the whole).
        const size_t limit = w.minBytes / 2;
        qputenv("ATTNSCOPE_TEST_DISK_FULL", QByteArray::number(qulonglong(limit)));
        const Status s = w.write(path);
        qunsetenv("ATTNSCOPE_TEST_DISK_FULL");
        QVERIFY2(!s.ok(), w.name);
        QVERIFY2(s.message().rfind(path, 0) == 0, s.message().c_str());
        QVERIFY2(s.message().find("No space left on device") != std::string::npos, s.message().c_str());
        QCOMPARE(readAll(path), good);  // the old file, not a partial new one
        QVERIFY2(temporaries(m_dir.path()).isEmpty(), qPrintable(temporaries(m_dir.path()).join(' ')));
    }
}

void TestOutputErrors::fullDiskWithoutOldFile() {
    for (const auto& w : writers()) {
        const std::string path = m_dir.filePath(QStringLiteral("fullnew-%1.out").arg(w.name)).toStdString();
        qputenv("ATTNSCOPE_TEST_DISK_FULL", "0");
        const Status s = w.write(path);
        qunsetenv("ATTNSCOPE_TEST_DISK_FULL");
        QVERIFY2(!s.ok() && s.message().find("No space left on device") != std::string::npos, s.message().c_str());
        QVERIFY(!fs::exists(path));
        QVERIFY(temporaries(m_dir.path()).isEmpty());
    }
}

void TestOutputErrors::preflightChecks() {
    const std::string ok = m_dir.filePath("preflight.out").toStdString();
    QVERIFY(checkOutputFile(ok).ok());
    QVERIFY(!fs::exists(ok));  // a check writes nothing
    const Status missing = checkOutputFile(m_dir.filePath("nope/x.png").toStdString());
    QVERIFY2(!missing.ok() && missing.message().find("does not exist") != std::string::npos, missing.message().c_str());
    const Status dir = checkOutputFile(m_dir.path().toStdString());
    QVERIFY2(!dir.ok() && dir.message().find("is a directory") != std::string::npos, dir.message().c_str());
    QVERIFY(checkOutputFile("relative-name.json").ok() == (::access(".", W_OK) == 0));
    QVERIFY(checkOutputDirectory(m_dir.path().toStdString()).ok());
    const Status notFolder = checkOutputDirectory(m_dir.filePath("ok-writeFileAtomic.out").toStdString());
    QVERIFY2(!notFolder.ok() && notFolder.message().find("not a folder") != std::string::npos,
             notFolder.message().c_str());
    const QString ro = m_dir.filePath(QStringLiteral("ro2"));
    QVERIFY(QDir().mkpath(ro));
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0555), 0);
    const Status roFile = asUnprivileged([&] { return checkOutputFile((ro + "/a.csv").toStdString()); });
    QVERIFY2(!roFile.ok() && roFile.message().find("Permission denied") != std::string::npos, roFile.message().c_str());
    const Status roDir = asUnprivileged([&] { return checkOutputDirectory(ro.toStdString()); });
    QVERIFY2(!roDir.ok() && roDir.message().find("Permission denied") != std::string::npos, roDir.message().c_str());
    QCOMPARE(::chmod(ro.toUtf8().constData(), 0755), 0);
}

QTEST_GUILESS_MAIN(TestOutputErrors)
#include "tst_output_errors.moc"
