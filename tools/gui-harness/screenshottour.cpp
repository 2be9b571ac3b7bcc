#include "screenshottour.h"

#include <QDir>
#include <QScreen>
#include <QTabWidget>

#include <cstdio>

#include "analysisrunner.h"
#include "attentionmapcanvas.h"
#include "comparisonview.h"
#include "eventwait.h"
#include "headgrid.h"
#include "kerneltimelinecanvas.h"
#include "mainwindow.h"
#include "neuronview.h"
#include "profilerpanel.h"
#include "tokenview.h"
#include "tracesession.h"
#include "visionview.h"

namespace attnscope {

namespace {
constexpr int kTimeoutMs = 120000;
constexpr int kAnalysisTimeoutMs = 600000;  ///< a 32k-token trace takes minutes on two CPU cores
constexpr int kSettleMs = 400;
constexpr double kTokenLevelPixels = 28;
constexpr int kProfileSamples = 5;

enum Tab { MapTab, TokensTab, NeuronsTab, CompareTab, SinksTab, SparsityTab };

}  // namespace

int runScreenshotTour(MainWindow& window, const QString& dir, const QString& trace) {
    QDir().mkpath(dir);
    window.resize(window.screen()->availableSize());  // the Xvfb screen: 1600×1000, 1280×800, …
    TraceSession* session = window.session();
    if (trace.isEmpty())
        window.openDemo();
    else
        window.openTrace(trace);
    if (!waitFor([&] { return session->isOpen() || !window.lastError().isEmpty(); }, kTimeoutMs) ||
        !session->isOpen()) {
        std::fprintf(stderr, "error: could not open the trace: %s\n", qPrintable(window.lastError()));
        return 2;
    }
    // The analysis starts by itself when a trace opens (unless turned off).
    if (!window.analysis()->isRunning() && !session->analysis()) window.analysis()->run();
    waitFor([&] { return !window.analysis()->isRunning(); }, kAnalysisTimeoutMs);
    if (!session->analysis())
        std::fprintf(stderr, "warning: analysis unavailable: %s\n", qPrintable(window.lastError()));
    int heads = 0;
    for (int l = 0; l < session->trace()->numLayers(); ++l) heads += session->trace()->config(l).heads;
    waitFor([&] { return window.headGrid()->thumbnailsReady() == heads; }, kTimeoutMs);
    window.headGrid()->setMetric(HeadMetric::RoleScore);
    const HeadId head = session->analysis() ? mostInterestingHead(*session->analysis()) : HeadId{};
    session->select(head);

    int saved = 0;
    auto shot = [&](const QString& name) {
        settle(kSettleMs);
        const QString path = QDir(dir).filePath(name + QStringLiteral(".png"));
        if (window.grab().save(path)) {
            ++saved;
            std::printf("saved %s\n", qPrintable(path));
        } else {
            std::fprintf(stderr, "error: could not save %s\n", qPrintable(path));
        }
    };
    AttentionMapCanvas* map = window.mapCanvas();
    window.tabs()->setCurrentIndex(MapTab);
    waitFor([&] { return map->isUpToDate(); }, kTimeoutMs);
    shot(QStringLiteral("01-map-overview"));

    const int64_t t = session->trace()->tokens();
    const int64_t q = t * 3 / 4;
    map->zoomToToken(q, std::max<int64_t>(0, q - 6), kTokenLevelPixels);
    waitFor([&] { return map->isUpToDate(); }, kTimeoutMs);
    session->inspect(q, std::max<int64_t>(0, q - 1));
    shot(QStringLiteral("02-map-token-level"));

    map->fitAll();
    ViewOptions o = session->options();
    o.showCoverage = true;
    o.variantOverlay = QStringLiteral("sliding:256");
    session->setOptions(o);
    waitFor([&] { return map->isUpToDate(); }, kTimeoutMs);
    shot(QStringLiteral("03-map-overlays"));
    o.showCoverage = false;
    o.variantOverlay.clear();
    session->setOptions(o);

    window.tabs()->setCurrentIndex(TokensTab);
    auto* tokens = qobject_cast<TokenView*>(window.tabs()->widget(TokensTab));
    waitFor([&] { return tokens && tokens->headsReady() > 0; }, kTimeoutMs);
    shot(QStringLiteral("04-token-view"));

    window.tabs()->setCurrentIndex(NeuronsTab);
    auto* neurons = qobject_cast<NeuronView*>(window.tabs()->widget(NeuronsTab));
    waitFor([&] { return neurons && neurons->hasData(); }, kTimeoutMs);
    shot(QStringLiteral("05-neuron-view"));

    const int layerHeads = session->trace()->config(head.layer).heads;
    session->setCompared({head, {head.layer, (head.head + 1) % layerHeads}});
    window.tabs()->setCurrentIndex(CompareTab);
    auto* compare = qobject_cast<ComparisonView*>(window.tabs()->widget(CompareTab));
    waitFor([&] { return compare && compare->hasDifference(); }, kTimeoutMs);
    shot(QStringLiteral("06-compare"));

    window.tabs()->setCurrentIndex(SinksTab);
    shot(QStringLiteral("07-sinks"));
    window.tabs()->setCurrentIndex(SparsityTab);
    shot(QStringLiteral("08-sparsity"));

    int expected = 8;
    // A vision trace: the image with the query's attention in the middle layer's first head (the
    // query row inspected in the map shots above, else the centre patch), that query in every
    // head of the layer below it, and in every head of the model in the Heads dock.
    if (VisionView* vision = window.visionView(); window.tabs()->isTabVisible(window.tabs()->indexOf(vision))) {
        int heads = 0;
        for (int l = 0; l < window.session()->trace()->numLayers(); ++l)
            heads += window.session()->trace()->config(l).heads;
        window.tabs()->setCurrentWidget(vision);
        const int middle = window.session()->trace()->numLayers() / 2;
        window.session()->select({middle, 0});
        // As a click on the query's patch does: the Heads dock's thumbnails show it in every head.
        window.session()->inspect(vision->query(), 0);
        waitFor(
            [&] {
                return vision->isUpToDate() && vision->headStrip()->rows().layer == middle &&
                       !vision->headStrip()->rows().heatmaps.empty() && window.headGrid()->thumbnailsReady() == heads;
            },
            kTimeoutMs);
        shot(QStringLiteral("11-vision"));
        ++expected;
    }
    if (ProfilerPanel* profiler = window.profiler()) {
        // A CPU profile of the current head's shape: a few variants, few samples, so it is quick.
        window.tabs()->setCurrentWidget(profiler);
        profiler->setVariants({QStringLiteral("causal"), QStringLiteral("sliding:256"), QStringLiteral("gamma:0.9")});
        profiler->setBackendChoice(BackendChoice::Auto);
        profiler->setMaxSamples(kProfileSamples);
        profiler->run();
        waitFor([&] { return !profiler->isRunning(); }, kTimeoutMs);
        shot(QStringLiteral("09-profiler"));
        ++expected;
        // The profile's kernel records (CUPTI's on the GPU, the CPU reference's calls otherwise) on
        // the results' kernel timeline tab.
        auto* timeline = profiler->findChild<KernelTimelineCanvas*>();
        const auto& report = profiler->report();
        if (timeline && report && !report->shapes.empty() && !report->shapes.front().records.empty()) {
            for (auto* results : profiler->findChildren<QTabWidget*>())
                if (results->indexOf(timeline) >= 0) results->setCurrentWidget(timeline);
            shot(QStringLiteral("10-kernel-timeline"));
            ++expected;
        }
    }
    window.tabs()->setCurrentIndex(MapTab);
    return saved == expected ? 0 : 1;
}

}  // namespace attnscope
