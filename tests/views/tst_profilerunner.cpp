// ProfileRunner: the profiler panel's runs go through the ComputeService's GPU lane and come back
// to the panel (a CPU profile here); a panel destroyed mid-run gets nothing and nothing crashes.
#include <QtTest>

#include "computeservice.h"
#include "profilerpanel.h"
#include "profilerunner.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 60000;

void smallCpuProfile(ProfilerPanel& panel) {
    panel.setSyntheticShape(1, 2, 128, 32);
    panel.setVariants({QStringLiteral("causal"), QStringLiteral("sliding:32")});
    panel.setBackendChoice(BackendChoice::Cpu);
    panel.setMaxSamples(2);
}
}  // namespace

class TestProfileRunner : public QObject {
    Q_OBJECT
private slots:
    void runsThroughTheService();
    void panelDestroyedMidRun();
};

void TestProfileRunner::runsThroughTheService() {
    ComputeService compute;
    ProfilerPanel panel;
    new ProfileRunner(&compute, &panel);
    smallCpuProfile(panel);
    QSignalSpy finished(&panel, &ProfilerPanel::profileFinished), failed(&panel, &ProfilerPanel::profilingFailed);
    panel.run();
    QVERIFY(panel.isRunning());
    QCOMPARE(compute.pendingJobs(), 1);  // on the service, not a thread of the panel's own
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QCOMPARE(failed.count(), 0);
    QVERIFY(!panel.isRunning());
    QVERIFY(panel.report().has_value());
    QCOMPARE(panel.report()->backend, std::string("CPU"));
    QCOMPARE(compute.pendingJobs(), 0);
}

void TestProfileRunner::panelDestroyedMidRun() {
    ComputeService compute;
    auto panel = std::make_unique<ProfilerPanel>();
    new ProfileRunner(&compute, panel.get());
    smallCpuProfile(*panel);
    panel->run();
    QCOMPARE(compute.pendingJobs(), 1);
    panel.reset();  // its cancel flag stops the work; the answer has nobody to go to
    QTRY_COMPARE_WITH_TIMEOUT(compute.pendingJobs(), 0, kTimeoutMs);
    QTest::qWait(100);
}

QTEST_MAIN(TestProfileRunner)
#include "tst_profilerunner.moc"
