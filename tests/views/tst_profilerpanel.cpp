// ProfilerPanel: a CPU run on a small synthetic shape fills the table, the chart and the
// timeline from a worker thread, and the panel labels the results CPU (no GPU-only fields, linear
// attention's rel error explained rather than given); a failed or cancelled run leaves no old
// results behind.
#include <QtTest>

#include <QLabel>
#include <QListWidget>
#include <QPushButton>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QThread>

#include <atomic>

#include "attnscope/synth.h"
#include "kerneltimelinecanvas.h"
#include "profilerpanel.h"

using namespace attnscope;

namespace {
int columnOf(const QTableWidget& table, const QString& header) {
    for (int c = 0; c < table.columnCount(); ++c)
        if (table.horizontalHeaderItem(c) && table.horizontalHeaderItem(c)->text() == header) return c;
    return -1;
}
}  // namespace

class TestProfilerPanel : public QObject {
    Q_OBJECT

private slots:
    void cpuRunFillsResults() {
        ProfilerPanel panel;
        panel.setSyntheticShape(1, 2, 256, 32);
        panel.setVariants({"causal", "sliding:64", "linear"});
        panel.setBackendChoice(BackendChoice::Cpu);
        panel.setMaxSamples(3);
        const ProfileRequest req = panel.request();
        QCOMPARE(req.variants.size(), size_t(3));
        QCOMPARE(req.shapes.front().tokens, int64_t(256));
        QSignalSpy finished(&panel, &ProfilerPanel::profileFinished);
        panel.run();
        QVERIFY(panel.isRunning() || finished.count() == 1);  // the GUI thread did not block
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
        QVERIFY(panel.report().has_value());
        QCOMPARE(panel.report()->backend, std::string("CPU"));
        auto* table = panel.findChild<QTableWidget*>();
        QVERIFY(table);
        QCOMPARE(table->rowCount(), 3);
        QCOMPARE(table->item(0, 1)->text(), QString("CPU"));
        QVERIFY(table->item(0, 0)->text().contains("dense"));
        const int relError = columnOf(*table, "rel error"), kernels = columnOf(*table, "kernels / error");
        QVERIFY(relError >= 0 && kernels >= 0);
        for (int row = 0; row < table->rowCount(); ++row) {
            QVERIFY2(!table->item(row, kernels)->text().contains("regs"),
                     qPrintable(table->item(row, kernels)->text()));
            if (table->item(row, 0)->text() == "linear") {
                QCOMPARE(table->item(row, relError)->text(), QString("n/a"));
                QVERIFY(table->item(row, relError)->toolTip().contains("different function"));
            }
        }
        auto* timeline = panel.findChild<KernelTimelineCanvas*>();
        QVERIFY(timeline);
        QCOMPARE(timeline->trackCount(), 3);
        // Hovering the first kernel of the first track shows its details.
        const auto& rec = panel.report()->shapes[0].records;
        QVERIFY(!rec.empty());
        const double x =
            KernelTimelineCanvas::kLabelWidth + timeline->viewport().timeToX(rec[0].startUs + rec[0].durationUs / 2);
        const QString details = timeline->detailsAt(QPointF(x, KernelTimelineCanvas::kAxisHeight + 5));
        QVERIFY2(details.contains("cpu::") || details.contains("folded"), qPrintable(details));
        QVERIFY2(!details.contains("registers") && !details.contains("grid"), qPrintable(details));  // GPU-only
    }

    void failedOrCancelledRunLeavesNoOldResults() {
        ProfilerPanel panel;
        panel.setSyntheticShape(1, 1, 128, 16);
        panel.setVariants({"causal"});
        panel.setBackendChoice(BackendChoice::Cpu);
        panel.setMaxSamples(2);
        QSignalSpy finished(&panel, &ProfilerPanel::profileFinished);
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
        auto* table = panel.findChild<QTableWidget*>();
        auto* timeline = panel.findChild<KernelTimelineCanvas*>();
        auto shown = [&] {
            bool exportable = false;
            for (auto* b : panel.findChildren<QPushButton*>())
                exportable |= b->text().startsWith("Export") && b->isEnabled();
            return panel.report().has_value() || table->rowCount() > 0 || timeline->trackCount() > 0 || exportable;
        };
        QVERIFY(shown());
        // A run that fails.
        QSignalSpy failed(&panel, &ProfilerPanel::profilingFailed);
        panel.setVariants({"causal", "nonsense"});
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
        QVERIFY(!shown());
        // A good run again, then one cancelled at once.
        panel.setVariants({"causal"});
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 60000);
        QVERIFY(shown());
        panel.run();
        panel.cancel();
        QTRY_VERIFY_WITH_TIMEOUT(!panel.isRunning(), 60000);
        QCOMPARE(finished.count(), 2);
        QVERIFY(!shown());
    }

    // With a runner set (the main window's: ComputeService's GPU worker), runs go through it
    // and come back through deliver(); here the runner is a thread of its own.
    void runnerCarriesTheRun() {
        ProfilerPanel panel;
        panel.setSyntheticShape(1, 2, 128, 32);
        panel.setVariants({"causal", "sliding:32"});
        panel.setBackendChoice(BackendChoice::Cpu);
        panel.setMaxSamples(2);
        std::atomic<int> calls{0};
        QThread* worker = nullptr;
        panel.setRunner([&](ProfilerPanel::Work work) {
            ++calls;
            worker = QThread::create([&panel, work] {
                Result<ProfileReport> r = work();
                QMetaObject::invokeMethod(
                    &panel, [&panel, r] { panel.deliver(r); }, Qt::QueuedConnection);
            });
            worker->start();
        });
        QSignalSpy finished(&panel, &ProfilerPanel::profileFinished);
        panel.run();
        QVERIFY(panel.isRunning());
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
        QVERIFY(!panel.isRunning());
        QCOMPARE(calls.load(), 1);
        QVERIFY(panel.report().has_value());
        QCOMPARE(panel.report()->backend, std::string("CPU"));
        worker->wait();
        delete worker;
        panel.deliver(Status{ErrorCode::Internal, "late"});  // a stray delivery is ignored
        QVERIFY(panel.report().has_value());
    }

    // Draws through ImGui when the platform has OpenGL (run under Xvfb with QT_QPA_PLATFORM=xcb):
    // kernel boxes in the track colours appear where the viewport puts them.
    void timelineDrawsKernels() {
        if (QGuiApplication::platformName() == "offscreen" || QGuiApplication::platformName() == "minimal")
            QSKIP("no OpenGL on this Qt platform (run under Xvfb with QT_QPA_PLATFORM=xcb)");
        KernelTimelineCanvas canvas;
        canvas.resize(600, 120);
        std::vector<KernelRecord> records(2);
        records[0].name = "flash_fwd";
        records[0].variantIndex = 0;
        records[0].startUs = 0;
        records[0].durationUs = 40;
        records[1] = records[0];
        records[1].variantIndex = 1;
        records[1].startUs = 60;
        canvas.setRecords(records, {"causal", "sliding:64"});
        canvas.show();
        QVERIFY(QTest::qWaitForWindowExposed(&canvas));
        const QImage img = canvas.grabFramebuffer();
        QVERIFY2(canvas.renderError().isEmpty(), qPrintable(canvas.renderError()));
        const double x = KernelTimelineCanvas::kLabelWidth + canvas.viewport().timeToX(20);
        const QColor inside = img.pixelColor(int(x), int(KernelTimelineCanvas::kAxisHeight + 11));
        QVERIFY2(inside.blue() > inside.red() + 40, qPrintable(inside.name()));  // the first track's blue
        const QColor gap = img.pixelColor(int(KernelTimelineCanvas::kLabelWidth + canvas.viewport().timeToX(50)),
                                          int(KernelTimelineCanvas::kAxisHeight + 11));
        QVERIFY2(gap.lightness() > 200, qPrintable(gap.name()));  // no kernel between the two
    }

    void cpuFallbackLabelWithoutGpu() {
        if (createGpuProfilerBackend()) QSKIP("a GPU is present: no fallback to show");
        ProfilerPanel panel;
        panel.setSyntheticShape(1, 1, 128, 16);
        panel.setVariants({"causal"});
        panel.setBackendChoice(BackendChoice::Auto);
        panel.setMaxSamples(2);
        QSignalSpy finished(&panel, &ProfilerPanel::profileFinished);
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
        bool labelled = false;
        for (auto* l : panel.findChildren<QLabel*>()) labelled |= l->text().contains("CPU fallback");
        QVERIFY(labelled);
    }

    void profilesTheGivenHead() {
        QTemporaryDir dir;
        const std::string path = dir.filePath("t.attn.safetensors").toStdString();
        SynthOptions o;
        o.tokens = 64;
        o.layers = 3;
        QVERIFY(writeSyntheticTrace(path, o).ok());
        auto trace = Trace::open(path);
        QVERIFY(trace.ok());
        ProfilerPanel panel(*trace);
        panel.setHead(2, 5);  // the main window passes its current head
        const ShapeSource s = panel.request().shapes.front();
        QVERIFY(s.trace);
        QCOMPARE(s.layer, 2);
        QCOMPARE(s.head, 5);
    }

    void badVariantReportsFailure() {
        ProfilerPanel panel;
        panel.setSyntheticShape(1, 1, 128, 16);
        panel.setVariants({"causal", "nonsense"});
        panel.setBackendChoice(BackendChoice::Cpu);
        QSignalSpy failed(&panel, &ProfilerPanel::profilingFailed);
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(failed.count(), 1, 60000);
        QVERIFY(failed.first().first().toString().contains("nonsense"));
    }

    // cuDNN's rows are offered in the list; without a GPU their rows say why (the table cell and
    // its tooltip) while the built-in rows still run.
    void vendorRowsListedAndExplained() {
        ProfilerPanel panel;
        auto* list = panel.findChild<QListWidget*>();
        QVERIFY(list);
        QStringList offered;
        for (int i = 0; i < list->count(); ++i) offered << list->item(i)->text();
        QVERIFY(offered.contains("cudnn:causal") && offered.contains("cudnn:full"));
        panel.setSyntheticShape(1, 2, 128, 32);
        panel.setVariants({"causal", "cudnn:causal"});
        panel.setBackendChoice(BackendChoice::Cpu);
        panel.setMaxSamples(2);
        QSignalSpy finished(&panel, &ProfilerPanel::profileFinished);
        panel.run();
        QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, 60000);
        auto* table = panel.findChild<QTableWidget*>();
        QCOMPARE(table->rowCount(), 2);
        const int kernels = columnOf(*table, "kernels / error");
        QCOMPARE(table->item(1, 0)->text(), QString("cudnn:causal"));
        QVERIFY2(table->item(1, kernels)->text().contains("GPU"), qPrintable(table->item(1, kernels)->text()));
        QCOMPARE(table->item(1, kernels)->toolTip(), table->item(1, kernels)->text());
        QVERIFY(table->item(0, kernels)->text().contains("cpu::"));
    }
};

QTEST_MAIN(TestProfilerPanel)
#include "tst_profilerpanel.moc"
