// The GPU engine: without a device it must say why and refuse work with Unsupported; with one,
// the full self-test (every variant × dtype × head dim vs float64) must pass.
#include <QtTest>

#include "attnscope/gpu.h"

using namespace attnscope;

class TestGpuEngine : public QObject {
    Q_OBJECT
private slots:
    void unavailableSaysWhy();
    void rejectsBadProblems();
    void selfTest_data();
    void selfTest();
};

void TestGpuEngine::unavailableSaysWhy() {
    auto engine = createGpuEngine();
    QVERIFY(engine != nullptr);
    const GpuInfo info = engine->info();
    if (info.available) QSKIP("a GPU is present (the no-GPU path is not reachable here)");
    QVERIFY(!info.reason.empty());
    AttentionProblem p;
    p.tokens = 4;
    auto r = engine->upload(p, std::vector<float>(4 * 128), std::vector<float>(4 * 128), std::vector<float>(4 * 128));
    QVERIFY(!r.ok());
    QCOMPARE(r.status().code(), ErrorCode::Unsupported);
    QCOMPARE(r.message(), info.reason);
}

void TestGpuEngine::rejectsBadProblems() {
    auto engine = createGpuEngine();
    if (!engine->info().available) QSKIP(("no GPU: " + engine->info().reason).c_str());
    AttentionProblem p;
    p.heads = 4, p.kvHeads = 3, p.tokens = 8, p.headDim = 64;
    std::vector<float> x(4 * 8 * 64);
    auto r = engine->upload(p, x, x, x);
    QVERIFY(!r.ok());
    QCOMPARE(r.status().code(), ErrorCode::InvalidArgument);
    p.kvHeads = 4, p.headDim = 96;
    r = engine->upload(p, x, x, x);
    QCOMPARE(r.status().code(), ErrorCode::Unsupported);
    p.headDim = 64;
    r = engine->upload(p, std::vector<float>(10), x, x);
    QCOMPARE(r.status().code(), ErrorCode::Shape);
    QVERIFY(r.message().find("q holds 10") != std::string::npos);
}

void TestGpuEngine::selfTest_data() {
    QTest::addColumn<QByteArray>("path");
    QTest::newRow("default kernels (wgmma on sm_90)") << QByteArray();
    QTest::newRow("mma.sync kernels") << QByteArray("mma");
}

void TestGpuEngine::selfTest() {
    QFETCH(QByteArray, path);
    // The engine reads ATTNSCOPE_FLEX_PATH when it is created (runGpuSelfTest creates its own).
    if (path.isEmpty())
        qunsetenv("ATTNSCOPE_FLEX_PATH");
    else
        qputenv("ATTNSCOPE_FLEX_PATH", path);
    auto engine = createGpuEngine();
    if (!engine->info().available) QSKIP(("no GPU: " + engine->info().reason).c_str());
    qInfo("forward kernel: %s", engine->info().forwardKernel.c_str());
    auto report = runGpuSelfTest(true);
    QVERIFY2(report.ok(), report.message().c_str());
    for (const auto& line : report->lines)
        if (line.rfind("FAIL", 0) == 0) qWarning("%s", line.c_str());
    QVERIFY(report->cases > 0);
    QCOMPARE(report->failures, 0);
}

QTEST_GUILESS_MAIN(TestGpuEngine)
#include "tst_gpu_engine.moc"
