// A trace file that changes while it is open (issue: SIGBUS on truncation): truncated, rewritten
// in place, deleted. Reads refuse with an IoError naming the file and what changed, or keep
// working when the data as opened is still there; nothing crashes. The SIGBUS guard itself is
// checked on a mapping whose pages are gone.
#include <QtTest>

#include <QTemporaryDir>

#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapped_guard.h"
#include "attnscope/trace.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace testfixture;

class TestTraceChanges : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    std::string writeTrace(const std::string& name, int64_t T = 512) {
        const std::string path = m_dir.filePath(QString::fromStdString(name)).toStdString();
        TraceMetadata m = smallMetadata(2, 2, 1, 32, T);
        if (Status s = randomTrace(m, DType::F16, 3).write(path); !s) qFatal("%s", s.message().c_str());
        return path;
    }

private slots:
    void guardReturnsInsteadOfCrashing();
    void truncatedWhileOpen();
    void rewrittenInPlace();
    void deletedWhileOpenKeepsWorking();
    void readChecksItsArguments();
};

void TestTraceChanges::guardReturnsInsteadOfCrashing() {
    const long page = sysconf(_SC_PAGESIZE);
    const std::string path = m_dir.filePath("pages.bin").toStdString();
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    QVERIFY(fd >= 0);
    QCOMPARE(ftruncate(fd, 4 * page), 0);
    auto* p = static_cast<const volatile char*>(mmap(nullptr, size_t(4 * page), PROT_READ, MAP_SHARED, fd, 0));
    QVERIFY(p != MAP_FAILED);
    char seen = 1;
    QVERIFY(detail::guarded([&] { seen = p[3 * page]; }));  // present: the read happens
    QCOMPARE(seen, char(0));
    QCOMPARE(ftruncate(fd, page), 0);  // pages 1..3 are gone: touching them raises SIGBUS
    QVERIFY(!detail::guarded([&] { seen = p[3 * page]; }));
    QVERIFY(!detail::guarded([&] { seen = p[2 * page + 5]; }));  // again: the handler stays installed
    QVERIFY(detail::guarded([&] { seen = p[10]; }));             // page 0 is still there
    // Nested guards: the inner fault returns to the inner guard only.
    bool innerOk = true;
    QVERIFY(detail::guarded([&] { innerOk = detail::guarded([&] { seen = p[3 * page]; }); }));
    QVERIFY(!innerOk);
    munmap(const_cast<char*>(p), size_t(4 * page));
    ::close(fd);
}

void TestTraceChanges::truncatedWhileOpen() {
    const std::string path = writeTrace("truncated.attn.safetensors");
    auto t = Trace::open(path);
    QVERIFY2(t.ok(), t.message().c_str());
    QVERIFY((*t)->head(1, 1, Which::K).ok());
    std::filesystem::resize_file(path, (*t)->fileSize() / 2);
    for (Which w : {Which::Q, Which::K, Which::V}) {
        auto h = (*t)->head(1, 1, w);  // layer 1 lies past the new end of the file
        QVERIFY(!h.ok());
        QCOMPARE(h.status().code(), ErrorCode::IoError);
        QVERIFY2(h.message().find(path) != std::string::npos, h.message().c_str());
        QVERIFY2(h.message().find("changed on disk") != std::string::npos, h.message().c_str());
        QVERIFY2(h.message().find("reopen") != std::string::npos, h.message().c_str());
    }
    QCOMPARE((*t)->checkUnchanged().code(), ErrorCode::IoError);
    std::vector<std::byte> buf(16);
    QCOMPARE((*t)->read((*t)->layer(1).v, 0, 16, buf.data()).code(), ErrorCode::IoError);
    // Reopening the truncated file is refused with the tensor that no longer fits.
    auto again = Trace::open(path);
    QVERIFY(!again.ok());
    QVERIFY2(again.message().find(path) != std::string::npos, again.message().c_str());
}

void TestTraceChanges::rewrittenInPlace() {
    const std::string path = writeTrace("rewritten.attn.safetensors");
    auto t = Trace::open(path);
    QVERIFY2(t.ok(), t.message().c_str());
    auto before = (*t)->head(0, 0, Which::Q);
    QVERIFY(before.ok());
    // Same size, other bytes, a later modification time (as `cp other.attn.safetensors` over it).
    const int fd = ::open(path.c_str(), O_WRONLY);
    QVERIFY(fd >= 0);
    const std::vector<char> junk(4096, 0x55);
    QCOMPARE(pwrite(fd, junk.data(), junk.size(), off_t((*t)->fileSize() - junk.size())), ssize_t(junk.size()));
    const struct timespec later[2] = {{0, UTIME_OMIT}, {time(nullptr) + 5, 0}};
    QCOMPARE(futimens(fd, later), 0);
    ::close(fd);
    auto after = (*t)->head(0, 0, Which::Q);
    QVERIFY(!after.ok());
    QCOMPARE(after.status().code(), ErrorCode::IoError);
    QVERIFY2(after.message().find("modified on disk") != std::string::npos, after.message().c_str());
}

void TestTraceChanges::deletedWhileOpenKeepsWorking() {
    const std::string path = writeTrace("deleted.attn.safetensors");
    auto t = Trace::open(path);
    QVERIFY2(t.ok(), t.message().c_str());
    auto before = (*t)->head(1, 0, Which::V);
    QVERIFY(before.ok());
    QVERIFY(std::filesystem::remove(path));  // the mapping keeps the data as opened
    auto after = (*t)->head(1, 0, Which::V);
    QVERIFY2(after.ok(), after.message().c_str());
    QVERIFY(after->m == before->m);
    QVERIFY((*t)->checkUnchanged().ok());
}

void TestTraceChanges::readChecksItsArguments() {
    const std::string path = writeTrace("read.attn.safetensors", 64);
    auto t = Trace::open(path);
    QVERIFY2(t.ok(), t.message().c_str());
    const TensorView& k = (*t)->layer(0).k;
    std::vector<std::byte> all(k.bytes);
    QVERIFY((*t)->read(k, 0, k.bytes, all.data()).ok());
    QVERIFY(std::memcmp(all.data(), k.data, k.bytes) == 0);
    QCOMPARE((*t)->read(k, k.bytes - 4, 8, all.data()).code(), ErrorCode::InvalidArgument);
    TensorView foreign = k;
    foreign.data = all.data();  // not inside this trace's mapping
    QCOMPARE((*t)->read(foreign, 0, 4, all.data()).code(), ErrorCode::InvalidArgument);
}

QTEST_GUILESS_MAIN(TestTraceChanges)
#include "tst_trace_changes.moc"
