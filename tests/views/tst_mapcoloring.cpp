// MapColoring / colorizeMap, the GUI's map colours, and the map jobs (mapjobs.h) that compute and
// colour the maps on the workers: the same bytes as core's colorize() (what
// `attnscope-cli map` writes to its PNG; tests/cli/tst_map checks that half) for the same values,
// scale and colormap, on random maps over many decades and on a head of the demo trace; the log
// floor is core's (kLogScaleDecades below the maximum) in the GUI map and the exported figure.
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <random>

#include "attnscope/demo_trace.h"
#include "attnscope/image.h"
#include "attnscope/map_service.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "brute_attention.h"
#include "computeservice.h"
#include "mapjobs.h"
#include "figurebuilders.h"
#include "mapcoloring.h"

using namespace attnscope;

namespace {
AttentionMap randomMap(std::mt19937_64& rng, int w, int h) {
    AttentionMap m;
    m.width = w, m.height = h;
    m.rect = {0, h, 0, w};
    std::uniform_real_distribution<double> decades(-9, 0);
    std::uniform_int_distribution<int> special(0, 40);
    for (int i = 0; i < w * h; ++i) {
        const int s = special(rng);
        float v = float(std::pow(10.0, decades(rng)));
        if (s == 0) v = 0;  // exact zeros (masked-out probability)
        if (s == 1) v = std::nanf("");
        m.mean.push_back(v);
        m.max.push_back(s == 1 ? v : std::min(1.0f, v * 3));
        m.allowed.push_back(s == 2 ? 0.0f : 1.0f);
    }
    return m;
}

/// Compares the GUI's image of `map` with core's colorize() of the same values, pixel by pixel.
void compareWithCore(const AttentionMap& map, bool logScale, bool maxPooling, const QString& colormap) {
    MapColoring c;
    c.logScale = logScale;
    c.maxPooling = maxPooling;
    c.colormap = colormap;
    c.vmax = pooledMaximum(map, maxPooling);
    const QImage gui = colorizeMap(map, c, false, Qt::black);
    ColorizeOptions o;
    o.map = parseColormap(colormap.toStdString()).value();
    o.scale = logScale ? ColorScale::Log : ColorScale::Linear;
    const Image core = colorize(pooledValues(map, maxPooling), map.width, map.height, o);
    QCOMPARE(gui.width(), core.width);
    QCOMPARE(gui.height(), core.height);
    for (int y = 0; y < map.height; ++y)
        for (int x = 0; x < map.width; ++x) {
            const QRgb g = gui.pixel(x, y);
            const Rgb k = core.pixel(x, y);
            QVERIFY2(
                qRed(g) == k.r && qGreen(g) == k.g && qBlue(g) == k.b,
                qPrintable(QStringLiteral("%1 %2 %3 pooling, cell (%4,%5) value %6: GUI %7,%8,%9 vs core %10,%11,%12")
                               .arg(colormap, logScale ? "log" : "linear", maxPooling ? "max" : "mean")
                               .arg(x)
                               .arg(y)
                               .arg(double(pooledValues(map, maxPooling)[size_t(y * map.width + x)]))
                               .arg(qRed(g))
                               .arg(qGreen(g))
                               .arg(qBlue(g))
                               .arg(k.r)
                               .arg(k.g)
                               .arg(k.b)));
        }
}
}  // namespace

class TestMapColoring : public QObject {
    Q_OBJECT
private slots:
    void scaleIsCores() {
        MapColoring c;
        c.vmax = 0.5f;
        QCOMPARE(c.vmin(), float(logScaleFloor(0.5)));
        QCOMPARE(double(c.vmin()), double(float(0.5 * 1e-4)));
        QCOMPARE(c.unit(0.5f), 1.0);
        QCOMPARE(c.unit(c.vmin()), 0.0);
        QCOMPARE(c.unit(1e-9f), 0.0);
        QCOMPARE(c.unit(std::nanf("")), 0.0);
        QVERIFY(std::abs(c.unit(0.005f) - 0.5) < 1e-6);  // two of the four decades
        c.logScale = false;
        QCOMPARE(c.vmin(), 0.0f);
        QVERIFY(std::abs(c.unit(0.125f) - 0.25) < 1e-12);
        QCOMPARE(c.unit(-1.0f), 0.0);
    }

    void sameBytesAsCoreOnRandomMaps() {
        std::mt19937_64 rng(testing::freshSeed());
        for (auto [w, h] : {std::pair{1, 1}, {7, 5}, {64, 48}, {200, 3}}) {
            const AttentionMap map = randomMap(rng, w, h);
            for (bool log : {true, false})
                for (bool maxPooling : {false, true})
                    for (const char* cmap : {"viridis", "magma", "gray"}) {
                        compareWithCore(map, log, maxPooling, QString::fromLatin1(cmap));
                        if (QTest::currentTestFailed()) return;
                    }
        }
    }

    void maskedAndInvalidCells() {
        AttentionMap map;
        map.width = 3, map.height = 1;
        map.mean = {0.5f, 0.25f, std::nanf("")};
        map.max = map.mean;
        map.allowed = {1.0f, 0.0f, 1.0f};
        MapColoring c;
        c.vmax = pooledMaximum(map, false);
        QCOMPARE(c.vmax, 0.5f);
        const QImage shaded = colorizeMap(map, c, true, QColor(10, 20, 30));
        QCOMPARE(shaded.pixel(1, 0), qRgb(10, 20, 30));
        QCOMPARE(shaded.pixel(2, 0), qRgb(kInvalidColor.r, kInvalidColor.g, kInvalidColor.b));  // as the CLI
        const Rgb top = colormapLevel(Colormap::Viridis, 1.0);
        QCOMPARE(shaded.pixel(0, 0), qRgb(top.r, top.g, top.b));
    }

    // computeMap is headMap's result (values, exactness, backend) with a time; a cancelled token
    // stops it with an error rather than a partial map; colorizeResult colours with the map's own
    // maximum, as colorizeMap does.
    void mapJobs() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath(QStringLiteral("s.attn.safetensors")).toStdString();
        SynthOptions o;
        o.tokens = 200;
        o.layers = 1;
        o.seed = testing::freshSeed();
        auto truth = writeSyntheticTrace(path, o);
        QVERIFY2(truth.ok(), truth.message().c_str());
        auto trace = Trace::open(path);
        QVERIFY2(trace.ok(), trace.message().c_str());
        HeadCache cache(*trace, 2);
        MapRequest r;
        r.layer = 0;
        r.head = 2;
        r.rect = {10, 190, 0, 150};
        r.width = 30;
        r.height = 24;
        auto job = computeMap(cache, r, CancelToken{});
        QVERIFY2(job.ok(), job.message().c_str());
        auto direct = headMap(cache, r);
        QVERIFY2(direct.ok(), direct.message().c_str());
        QCOMPARE(job->map.width, 30);
        QCOMPARE(job->map.height, 24);
        QCOMPARE(job->map.mean, direct->map.mean);
        QCOMPARE(job->map.max, direct->map.max);
        QCOMPARE(job->exact, direct->exact);
        QCOMPARE(job->backend, QString::fromStdString(direct->backendLabel));
        QCOMPARE(job->request.head, 2);
        QVERIFY(job->seconds >= 0);

        MapRequest other = r;
        other.head = 5;  // not cached: the cancelled token stops it
        CancelToken cancelled;
        cancelled.cancel();
        QVERIFY(!computeMap(cache, other, cancelled).ok());

        MapColoring c;
        c.vmax = 123.0f;  // replaced by the map's maximum
        c.maxPooling = true;
        c.colormap = QStringLiteral("magma");
        MapResult& result = *job;
        colorizeResult(result, c, true, QColor(1, 2, 3));
        QCOMPARE(result.coloring.vmax, pooledMaximum(result.map, true));
        QVERIFY(result.shadeMasked);
        QCOMPARE(result.image, colorizeMap(result.map, result.coloring, true, QColor(1, 2, 3)));
    }

    void demoHeadMatchesCliAndFigure() {
        const std::string path = findDemoTrace();
        if (path.empty()) QSKIP("no demo trace (resources/demo or $ATTNSCOPE_DEMO)");
        auto trace = Trace::open(path);
        QVERIFY2(trace.ok(), trace.message().c_str());
        HeadCache cache(*trace, 1);
        MapRequest r;
        r.layer = 0;
        r.head = 1;
        r.width = 48;
        r.height = 40;
        const int64_t T = (*trace)->tokens();
        r.rect = {0, T, 0, T};
        auto m = headMap(cache, r);  // what `map demo --layer 0 --head 1 --size 48x40 --cpu` computes
        QVERIFY2(m.ok(), m.message().c_str());
        for (bool maxPooling : {false, true}) {
            compareWithCore(m->map, true, maxPooling, QStringLiteral("viridis"));
            // The exported figure's colour bar starts at the same floor as the GUI map.
            const HeatmapFigure f = mapFigure(m->map, {}, maxPooling, QStringLiteral("t"));
            MapColoring c;
            c.maxPooling = maxPooling;
            c.vmax = pooledMaximum(m->map, maxPooling);
            QCOMPARE(f.vmax, c.vmax);
            QCOMPARE(f.vmin, c.vmin());
            QCOMPARE(f.scale, ColorScale::Log);
        }
    }
};

QTEST_MAIN(TestMapColoring)
#include "tst_mapcoloring.moc"
