// VisionView (offscreen): patch hit-testing of the fitted picture (data-driven), the overlay's
// values against a float64 brute force of the clicked query's row, a head change and a burst of
// queries (the newest wins), the heads strip (each head's row for the query; a click selects the
// head), a vision trace without an image (the grid alone), and the Heads dock's thumbnails of a
// vision trace (each head's [CLS] row, or the centre patch's, over the patch grid; then the row
// of the inspected query).
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>

#include "attnscope/image.h"
#include "attnscope/synth.h"
#include "attnscope/synth_vision.h"
#include "analysisrunner.h"
#include "attnscope/trace.h"
#include "brute_attention.h"
#include "computeservice.h"
#include "headgridcanvas.h"
#include "shown_view.h"
#include "tracesession.h"
#include "visionview.h"

using namespace attnscope;

namespace {
constexpr int kTimeoutMs = 60000;
constexpr double kTol = 1e-5;  ///< float32 probabilities against float64
}  // namespace

class TestVisionView : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    std::shared_ptr<const Trace> writeTrace(const QString& name, bool image, int rows, int cols, int prefix) {
        VisionSynthOptions o;
        o.rows = rows;
        o.cols = cols;
        o.prefix = prefix;
        o.patchSize = 10;
        o.layers = 2;
        o.heads = 4;
        o.headDim = 16;
        o.dtype = DType::F32;
        o.seed = testing::freshSeed();
        o.image = image;
        const std::string path = m_dir.filePath(name).toStdString();
        if (auto w = writeVisionSyntheticTrace(path, o); !w) qFatal("%s", w.message().c_str());
        auto t = Trace::open(path);
        if (!t) qFatal("%s", t.message().c_str());
        return *t;
    }

    /// The shown row against the brute force of (layer, head, query) on the trace's stored Q/K.
    static void checkAgainstBrute(const Trace& t, const QueryPatchAttention& row) {
        auto q = t.head(row.layer, row.head, Which::Q);
        auto k = t.head(row.layer, row.head, Which::K);
        QVERIFY(q.ok() && k.ok());
        const auto b = testing::bruteAttention(q->m, k->m, specForLayer(t.config(row.layer), row.head));
        const int64_t prefix = t.tokens() - int64_t(row.rows) * row.cols;
        QCOMPARE(int64_t(row.prefix.size()), prefix);
        for (int64_t j = 0; j < t.tokens(); ++j) {
            const double got = j < prefix ? row.prefix[size_t(j)] : row.patches[size_t(j - prefix)];
            QVERIFY2(
                std::abs(got - b.p(row.query, j)) < kTol,
                qPrintable(
                    QString("query %1 key %2: %3 vs brute %4").arg(row.query).arg(j).arg(got).arg(b.p(row.query, j))));
        }
    }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void patchAt_data() {
        QTest::addColumn<QRectF>("area");
        QTest::addColumn<QSize>("picture");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<QPointF>("point");
        QTest::addColumn<int>("row");  // -1: outside
        QTest::addColumn<int>("col");
        const QRectF wide(0, 0, 200, 100);
        QTest::newRow("left margin") << wide << QSize(100, 100) << 4 << 4 << QPointF(49.9, 50) << -1 << -1;
        QTest::newRow("top-left patch") << wide << QSize(100, 100) << 4 << 4 << QPointF(50, 0) << 0 << 0;
        QTest::newRow("centre") << wide << QSize(100, 100) << 4 << 4 << QPointF(100, 50) << 2 << 2;
        QTest::newRow("bottom-right edge") << wide << QSize(100, 100) << 4 << 4 << QPointF(149.99, 99.99) << 3 << 3;
        QTest::newRow("right margin") << wide << QSize(100, 100) << 4 << 4 << QPointF(150, 50) << -1 << -1;
        QTest::newRow("non-square grid") << QRectF(0, 0, 300, 300) << QSize(150, 90) << 3 << 5 << QPointF(299, 150) << 1
                                         << 4;
        QTest::newRow("tall picture, top margin")
            << QRectF(0, 0, 100, 400) << QSize(50, 100) << 6 << 3 << QPointF(50, 99) << -1 << -1;
        QTest::newRow("tall picture, row 5")
            << QRectF(0, 0, 100, 400) << QSize(50, 100) << 6 << 3 << QPointF(99, 299) << 5 << 2;
    }

    void patchAt() {
        QFETCH(QRectF, area);
        QFETCH(QSize, picture);
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(QPointF, point);
        QFETCH(int, row);
        QFETCH(int, col);
        const VisionGeometry g = VisionGeometry::fit(area, picture.width(), picture.height(), rows, cols);
        const auto hit = g.patchAt(point);
        if (row < 0) {
            QVERIFY(!hit);
            return;
        }
        QVERIFY(hit);
        QCOMPARE(hit->first, row);
        QCOMPARE(hit->second, col);
        QVERIFY(g.patchRect(row, col).adjusted(-1e-9, -1e-9, 1e-9, 1e-9).contains(point));
    }

    void clickedPatchAgainstBrute() {
        const int rows = 6, cols = 8, prefix = 3;
        auto trace = writeTrace("img.attn.safetensors", true, rows, cols, prefix);
        testing::ShownView<VisionView> shown({900, 600});
        QVERIFY(shown.showing(trace));
        TraceSession& session = shown.session;
        VisionView& view = shown.view;
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.hasImage(), kTimeoutMs);
        QCOMPARE(view.query(), int64_t(prefix + (rows / 2) * cols + cols / 2));  // the centre patch first
        checkAgainstBrute(*trace, *view.shown());

        // Click patch (1, 6) of the drawn picture: it becomes the query.
        const QRectF cell = view.canvas()->geometryNow().patchRect(1, 6);
        QTest::mouseClick(view.canvas(), Qt::LeftButton, {}, cell.center().toPoint());
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.query() == prefix + 1 * cols + 6, kTimeoutMs);
        checkAgainstBrute(*trace, *view.shown());
        QCOMPARE(session.inspectedQuery(), view.query());  // the session's inspected query too
        QCOMPARE(session.inspectedKey(), int64_t(0));
        // The heatmap: one pixel per patch, the row's largest patch in the colormap's top colour.
        const QImage heat = visionHeatmap(*view.shown(), true);
        QCOMPARE(heat.size(), QSize(cols, rows));
        const auto& p = view.shown()->patches;
        const size_t top = size_t(std::max_element(p.begin(), p.end()) - p.begin());
        const Rgb want = colormapLevel(Colormap::Viridis, 1.0);
        QCOMPARE(heat.pixelColor(int(top % cols), int(top / cols)), QColor(want.r, want.g, want.b));

        // Another head: the row follows the session's selection.
        session.select({1, 1});
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.shown()->layer == 1 && view.shown()->head == 1, kTimeoutMs);
        checkAgainstBrute(*trace, *view.shown());

        // A query inspected elsewhere (a row clicked in the map) becomes the view's query.
        session.inspect(prefix + 2 * cols + 3, 5);
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.query() == prefix + 2 * cols + 3, kTimeoutMs);
        checkAgainstBrute(*trace, *view.shown());

        // A burst of queries: the last one is what stays on screen.
        for (int c = 0; c < cols; ++c) view.setQuery(prefix + 4 * cols + c);
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate(), kTimeoutMs);
        QCOMPARE(view.shown()->query, int64_t(prefix + 4 * cols + cols - 1));
        checkAgainstBrute(*trace, *view.shown());
    }

    void headStripSelectsHeads() {
        const int rows = 4, cols = 5, prefix = 2;
        auto trace = writeTrace("strip.attn.safetensors", true, rows, cols, prefix);
        testing::ShownView<VisionView> shown({900, 600});
        QVERIFY(shown.showing(trace));
        TraceSession& session = shown.session;
        VisionView& view = shown.view;
        const int heads = trace->config(0).heads;
        QTRY_VERIFY_WITH_TIMEOUT(int(view.headStrip()->rows().heatmaps.size()) == heads, kTimeoutMs);
        // Each head's small heatmap is that head's row for the query (against the brute force's
        // largest patch, in the colormap's top colour), with its prefix mass.
        for (int h = 0; h < heads; ++h) {
            auto row = queryPatchAttention(*trace, 0, h, view.query());
            QVERIFY(row.ok());
            const QImage& heat = view.headStrip()->rows().heatmaps[size_t(h)];
            QCOMPARE(heat, visionHeatmap(*row, session.options().logScale));
            float mass = 0;
            for (float v : row->prefix) mass += v;
            QCOMPARE(view.headStrip()->rows().prefixMass[size_t(h)], mass);
        }
        // A click on head 2's heatmap selects it; the main row follows, the strip stays on layer 0.
        QTest::mouseClick(view.headStrip(), Qt::LeftButton, {}, view.headStrip()->cellRect(2).center().toPoint());
        QCOMPARE(session.current(), (HeadId{0, 2}));
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.shown()->head == 2, kTimeoutMs);
        checkAgainstBrute(*trace, *view.shown());
        // Another layer: the strip shows that layer's heads for the same query.
        session.select({1, 0});
        QTRY_VERIFY_WITH_TIMEOUT(view.headStrip()->rows().layer == 1, kTimeoutMs);
        QCOMPARE(int(view.headStrip()->rows().heatmaps.size()), trace->config(1).heads);
        QCOMPARE(view.headStrip()->rows().query, view.query());
    }

    void withoutImageOrPrefix() {
        auto trace = writeTrace("grid.attn.safetensors", false, 5, 7, 0);
        testing::ShownView<VisionView> shown({700, 500});
        QVERIFY(shown.showing(trace));
        VisionView& view = shown.view;
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate(), kTimeoutMs);
        QVERIFY(!view.hasImage());
        QVERIFY(view.shown()->prefix.empty());
        checkAgainstBrute(*trace, *view.shown());
        // The grid alone fills square patches: a click maps to the patch under it.
        const QRectF cell = view.canvas()->geometryNow().patchRect(4, 0);
        QCOMPARE(cell.width(), cell.height());
        QTest::mouseClick(view.canvas(), Qt::LeftButton, {}, cell.center().toPoint());
        QTRY_VERIFY_WITH_TIMEOUT(view.isUpToDate() && view.query() == 4 * 7, kTimeoutMs);
        checkAgainstBrute(*trace, *view.shown());
    }

    void headGridThumbnailsArePatchGrids_data() {
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("prefix");
        QTest::newRow("[CLS] and registers") << 4 << 6 << 3;
        QTest::newRow("patches alone") << 5 << 3 << 0;
    }
    void headGridThumbnailsArePatchGrids() {
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, prefix);
        auto trace = writeTrace(QStringLiteral("grid%1.attn.safetensors").arg(prefix), prefix > 0, rows, cols, prefix);
        ComputeService compute;
        TraceSession session(&compute);
        AnalysisRunner analysis(&session);
        HeadGridCanvas grid(&session, &analysis);
        grid.resize(400, 200);
        grid.show();
        QVERIFY(QTest::qWaitForWindowExposed(&grid));
        session.setTrace(trace);
        int heads = 0;
        for (int l = 0; l < trace->numLayers(); ++l) heads += trace->config(l).heads;
        QTRY_COMPARE_WITH_TIMEOUT(grid.thumbnailsReady(), heads, kTimeoutMs);
        // Each thumbnail is `query`'s patch heatmap in its head (one pixel per patch, not a T × T map).
        const auto thumbnailsShow = [&](int64_t query) {
            for (int l = 0; l < trace->numLayers(); ++l) {
                for (int h = 0; h < trace->config(l).heads; ++h) {
                    auto row = queryPatchAttention(*trace, l, h, query);
                    if (!row || grid.thumbnail({l, h}) != visionHeatmap(*row, true)) return false;
                }
            }
            return true;
        };
        const int64_t query = prefix > 0 ? 0 : int64_t(rows / 2) * cols + cols / 2;
        QCOMPARE(grid.thumbnailQuery(), query);
        QCOMPARE(grid.thumbnail({1, 2}).size(), QSize(cols, rows));
        QVERIFY(thumbnailsShow(query));
        for (int h = 0; h < trace->config(0).heads; ++h) {  // the rows themselves against float64
            auto row = queryPatchAttention(*trace, 0, h, query);
            QVERIFY(row.ok());
            checkAgainstBrute(*trace, *row);
        }
        // An inspected query (a patch clicked in the Vision tab): every thumbnail follows it.
        const int64_t patch = prefix + int64_t(rows - 1) * cols + 1;
        session.inspect(patch, 0);
        QCOMPARE(grid.thumbnailQuery(), patch);
        QTRY_COMPARE_WITH_TIMEOUT(grid.thumbnailsReady(), heads, kTimeoutMs);
        QVERIFY(thumbnailsShow(patch));
        QVERIFY(!thumbnailsShow(query));
        // A text trace afterwards: thumbnails are maps of the whole sequence again.
        session.close();
        QCOMPARE(grid.thumbnailsReady(), 0);
        SynthOptions text;
        text.tokens = 40;
        text.layers = 1;
        const std::string path = m_dir.filePath(QStringLiteral("text%1.attn.safetensors").arg(prefix)).toStdString();
        QVERIFY(writeSyntheticTrace(path, text).ok());
        auto opened = Trace::open(path);
        QVERIFY2(opened.ok(), opened.message().c_str());
        session.setTrace(*opened);
        QCOMPARE(grid.thumbnailQuery(), int64_t(-1));
        QTRY_COMPARE_WITH_TIMEOUT(grid.thumbnailsReady(), (*opened)->config(0).heads, kTimeoutMs);
        QCOMPARE(grid.thumbnail({0, 0}).size(), QSize(40, 40));  // one cell per token below 48
    }
};

QTEST_MAIN(TestVisionView)
#include "tst_visionview.moc"
