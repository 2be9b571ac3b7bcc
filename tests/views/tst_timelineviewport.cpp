// TimelineViewport (time <-> pixel, zoom about a point, pan, clamping) and the timeline layout pass.
#include <QtTest>

#include "attnscope/profiler.h"
#include "kernel_record.h"
#include "timelineviewport.h"

using namespace attnscope;

class TestTimelineViewport : public QObject {
    Q_OBJECT

private slots:
    void operations_data() {
        QTest::addColumn<QString>("ops");  // space-separated: z<x>:<factor>, p<dx>, r<width>, f
        QTest::addColumn<double>("start");
        QTest::addColumn<double>("usPerPixel");
        // Domain [0, 1000] µs on 500 px: 2 µs per pixel.
        QTest::newRow("fit") << "" << 0.0 << 2.0;
        QTest::newRow("zoom in about centre") << "z250:2" << 250.0 << 1.0;
        QTest::newRow("zoom in about left edge") << "z0:4" << 0.0 << 0.5;
        QTest::newRow("zoom in about right edge") << "z500:2" << 500.0 << 1.0;
        QTest::newRow("zoom out clamps to fit") << "z250:0.25" << 0.0 << 2.0;
        QTest::newRow("pan after zoom") << "z250:2 p100" << 150.0 << 1.0;
        QTest::newRow("pan right shows later") << "z250:2 p-100" << 350.0 << 1.0;
        QTest::newRow("pan clamps left") << "z250:2 p1000" << 0.0 << 1.0;
        QTest::newRow("pan clamps right") << "z250:2 p-1000" << 500.0 << 1.0;
        QTest::newRow("pan at fit does nothing") << "p50" << 0.0 << 2.0;
        QTest::newRow("zoom limit") << "z0:1e9" << 0.0 << TimelineViewport::kMinSpanUs / 500;
        QTest::newRow("resize keeps left edge") << "z250:2 r250" << 250.0 << 1.0;
        QTest::newRow("resize wider than span") << "z250:2 r2000" << 0.0 << 0.5;
        QTest::newRow("fit after zoom") << "z100:8 f" << 0.0 << 2.0;
    }
    void operations() {
        QFETCH(QString, ops);
        QFETCH(double, start);
        QFETCH(double, usPerPixel);
        TimelineViewport v;
        v.reset(0, 1000, 500);
        for (const QString& op : ops.split(' ', Qt::SkipEmptyParts)) {
            if (op.startsWith('z')) {
                const QStringList p = op.mid(1).split(':');
                v.zoomAbout(p[0].toDouble(), p[1].toDouble());
            } else if (op.startsWith('p')) {
                v.panPixels(op.mid(1).toDouble());
            } else if (op.startsWith('r')) {
                v.resize(op.mid(1).toDouble());
            } else if (op == "f") {
                v.fitAll();
            }
        }
        QVERIFY2(std::abs(v.startUs - start) < 1e-9, qPrintable(QString::number(v.startUs)));
        QVERIFY2(std::abs(v.usPerPixel - usPerPixel) < 1e-12, qPrintable(QString::number(v.usPerPixel)));
        QVERIFY(v.startUs >= v.domainStartUs - 1e-9 && v.endUs() <= v.domainEndUs + 1e-9);
    }

    void roundTrip() {
        TimelineViewport v;
        v.reset(100, 5100, 800);
        v.zoomAbout(123, 7.5);
        for (double x : {0.0, 1.0, 399.5, 799.0}) QVERIFY(std::abs(v.timeToX(v.xToTime(x)) - x) < 1e-9);
        const double t = v.xToTime(321);
        v.zoomAbout(321, 3);
        QVERIFY(std::abs(v.xToTime(321) - t) < 1e-9);  // the time under the cursor stays put
    }

    void axisLabelsShareOneUnit_data() {
        QTest::addColumn<double>("spanUs");
        QTest::addColumn<QStringList>("labels");  // the first ticks from 0
        QTest::newRow("2 s of CPU samples") << 2.0e6 << QStringList{"0.0 s", "0.5 s", "1.0 s"};
        QTest::newRow("4 ms") << 4000.0 << QStringList{"0.0 ms", "0.5 ms", "1.0 ms"};
        QTest::newRow("80 µs") << 80.0 << QStringList{"0 µs", "10 µs", "20 µs"};
        QTest::newRow("900 µs") << 900.0 << QStringList{"0.0 ms", "0.2 ms", "0.4 ms"};
        QTest::newRow("sub-µs") << 0.04 << QStringList{"0 ns", "5 ns", "10 ns"};
    }
    void axisLabelsShareOneUnit() {
        QFETCH(double, spanUs);
        QFETCH(QStringList, labels);
        constexpr int kTicks = 8;
        const double step = timeAxisStep(spanUs, kTicks);
        for (int i = 0; i < labels.size(); ++i)
            QCOMPARE(QString::fromStdString(formatAxisTime(i * step, step)), labels[i]);
    }

    void tracksPerVariantAndStream() {
        const std::vector<KernelRecord> r = {testing::kernelRecord(0, 7, 0, 1), testing::kernelRecord(1, 7, 2, 1),
                                             testing::kernelRecord(1, 9, 2, 0.5), testing::kernelRecord(0, 7, 5, 1)};
        const TimelineTracks t = timelineTracks(r, {"causal", "linear"});
        QCOMPARE(t.names.size(), size_t(3));
        QCOMPARE(t.names[0], std::string("causal · stream 7"));
        QCOMPARE(t.names[2], std::string("linear · stream 9"));
        QCOMPARE(t.trackOf, (std::vector<int>{0, 1, 2, 0}));
    }

    void layoutFoldsTinyKernels_data() {
        QTest::addColumn<double>("zoom");
        QTest::addColumn<int>("expectBoxes");
        // 100 kernels of 1 µs every 2 µs on one track, domain 200 µs on 100 px.
        QTest::newRow("overview folds") << 1.0 << 1;  // 1 px per kernel: one folded box
        QTest::newRow("zoomed apart") << 20.0 << 5;   // 10 px per kernel, 5 of them visible
    }
    void layoutFoldsTinyKernels() {
        QFETCH(double, zoom);
        QFETCH(int, expectBoxes);
        std::vector<KernelRecord> r;
        for (int i = 0; i < 100; ++i) r.push_back(testing::kernelRecord(0, 1, 2.0 * i, 1.0));
        const TimelineTracks t = timelineTracks(r, {"causal"});
        TimelineViewport v;
        v.reset(0, 200, 100);
        v.zoomAbout(0, zoom);
        const auto boxes = layoutTimeline(r, t, v);
        QCOMPARE(int(boxes.size()), expectBoxes);
        int folded = 0;
        for (const auto& b : boxes) folded += b.count;
        QVERIFY(folded >= expectBoxes);
        if (expectBoxes == 1) QCOMPARE(folded, 100);
    }

    void hitTesting() {
        const std::vector<KernelRecord> r = {testing::kernelRecord(0, 1, 10, 20), testing::kernelRecord(1, 1, 40, 20)};
        const TimelineTracks t = timelineTracks(r, {"a", "b"});
        TimelineViewport v;
        v.reset(0, 100, 100);
        const auto boxes = layoutTimeline(r, t, v);
        QCOMPARE(boxes.size(), size_t(2));
        QCOMPARE(hitTest(boxes, 15, 0), 0);
        QCOMPARE(boxes[size_t(hitTest(boxes, 45, 1))].first, 1);
        QCOMPARE(hitTest(boxes, 45, 0), -1);  // right time, wrong track
        QCOMPARE(hitTest(boxes, 5, 0), -1);
    }
};

QTEST_GUILESS_MAIN(TestTimelineViewport)
#include "tst_timelineviewport.moc"
