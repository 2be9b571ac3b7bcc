#include "benchresponsiveness.h"

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "attentionmapcanvas.h"
#include "attnscope/synth.h"
#include "computeservice.h"
#include "eventwait.h"
#include "mappanel.h"
#include "tracesession.h"

namespace attnscope {

namespace {
constexpr double kTargetFirstOverviewMs = 2000;
constexpr double kTargetStallMs = 50;
constexpr int kHeartbeatMs = 5;
constexpr int kFrameMs = 16;    ///< one scripted interaction step per frame
constexpr int kZoomSteps = 60;  ///< wheel steps from the overview to token level
constexpr int kPanSteps = 60;
constexpr int kTimeoutMs = 120000;
constexpr int kWindowWidth = 1200, kWindowHeight = 900;

/// Records the longest gap between heartbeat ticks beyond their interval.
class StallMonitor {
public:
    StallMonitor() {
        m_timer.setTimerType(Qt::PreciseTimer);
        m_timer.setInterval(kHeartbeatMs);
        QObject::connect(&m_timer, &QTimer::timeout, [this] {
            const double gap = double(m_clock.nsecsElapsed()) * 1e-6;
            m_clock.restart();
            const double stall = gap - kHeartbeatMs;
            m_max = std::max(m_max, stall);
            if (stall > kTargetStallMs) ++m_over;
        });
    }
    void start() {
        m_max = 0;
        m_over = 0;
        m_clock.start();
        m_timer.start();
    }
    void stop() { m_timer.stop(); }
    double maxStallMs() const { return m_max; }
    int stallsOverTarget() const { return m_over; }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    double m_max = 0;
    int m_over = 0;
};
}  // namespace

int runResponsivenessBenchmark(int64_t tokens) {
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("bench.attn.safetensors"));
    SynthOptions options;
    options.tokens = tokens;
    options.layers = 1;
    options.heads = {SynthHead::FirstTokenSink, SynthHead::LocalBand};
    QElapsedTimer clock;
    clock.start();
    if (auto truth = writeSyntheticTrace(path.toStdString(), options); !truth) {
        std::fprintf(stderr, "error: %s\n", truth.message().c_str());
        return 2;
    }
    std::printf("synthetic trace: %lld tokens, d=%d, written in %.0f ms\n", static_cast<long long>(tokens),
                options.headDim, double(clock.elapsed()));

    ComputeService compute;
    TraceSession session(&compute);
    MapPanel panel(&session);
    panel.resize(kWindowWidth, kWindowHeight);
    panel.show();
    AttentionMapCanvas* canvas = panel.canvas();
    std::printf("compute: %s, %d hardware threads\n", qPrintable(compute.gpuDescription()),
                QThread::idealThreadCount());

    StallMonitor monitor;
    double firstOverviewMs = -1, exactOverviewMs = -1;
    QObject::connect(canvas, &AttentionMapCanvas::tileArrived, [&] {
        if (firstOverviewMs < 0) firstOverviewMs = double(clock.nsecsElapsed()) * 1e-6;
    });
    QString failure;
    QObject::connect(&session, &TraceSession::openFailed, [&](const QString&, const QString& m) { failure = m; });
    QObject::connect(canvas, &AttentionMapCanvas::computeFailed, [&](const QString& m) { failure = m; });

    monitor.start();
    clock.restart();
    session.open(path);
    waitFor([&] { return !failure.isEmpty() || canvas->isUpToDate(); }, kTimeoutMs);
    exactOverviewMs = double(clock.nsecsElapsed()) * 1e-6;
    const double openStall = monitor.maxStallMs();
    const int openOver = monitor.stallsOverTarget();
    if (!failure.isEmpty() || firstOverviewMs < 0) {
        std::fprintf(stderr, "error: %s\n", failure.isEmpty() ? "no overview arrived" : qPrintable(failure));
        return 2;
    }
    std::printf("first overview: %.0f ms (%s)\n", firstOverviewMs,
                tokens > kExactOverviewTokens ? "row-sampled preview" : "exact");
    std::printf("exact overview: %.0f ms\n", exactOverviewMs);
    std::printf("open phase: max stall %.1f ms, %d stalls > %.0f ms\n", openStall, openOver, kTargetStallMs);

    // Interaction like a user's wheel and drag, one step a frame: zoom about a point towards
    // token level, wait for the exact tiles, pan across, wait again, zoom back out. The heartbeat
    // runs throughout, the waits included (tiles arrive and are drawn then).
    monitor.start();
    const int tilesBefore = canvas->tilesReceived();
    const double zoomFactor = std::pow(double(tokens) / 20.0, 1.0 / kZoomSteps);
    auto drive = [&](int steps, const std::function<void()>& step) {
        int done = 0;
        QTimer driver;
        driver.setInterval(kFrameMs);
        QObject::connect(&driver, &QTimer::timeout, [&] {
            step();
            if (++done == steps) driver.stop();
        });
        QElapsedTimer t;
        t.start();
        driver.start();
        waitFor([&] { return !driver.isActive(); }, kTimeoutMs);
        const double driveMs = double(t.nsecsElapsed()) * 1e-6;
        t.restart();
        waitFor([&] { return canvas->isUpToDate(); }, kTimeoutMs);
        return std::pair{driveMs, double(t.nsecsElapsed()) * 1e-6};
    };
    const auto zoomIn = drive(kZoomSteps, [&] { canvas->zoomBy(zoomFactor); });
    std::printf("zoom in: %d steps in %.0f ms, token-level tiles %.0f ms after the last step (%.1f px per token)\n",
                kZoomSteps, zoomIn.first, zoomIn.second, canvas->viewport().pixelsPerToken());
    const auto pan = drive(kPanSteps, [&] {
        MapViewport v = canvas->viewport();
        v.panPixels(-40, -25);
        canvas->setViewport(v);
    });
    std::printf("pan: %d steps in %.0f ms, tiles %.0f ms after the last step\n", kPanSteps, pan.first, pan.second);
    const auto zoomOut = drive(kZoomSteps, [&] { canvas->zoomBy(1.0 / zoomFactor); });
    std::printf("zoom out: %d steps in %.0f ms, up to date %.0f ms after the last step\n", kZoomSteps, zoomOut.first,
                zoomOut.second);
    monitor.stop();
    std::printf("interaction phase: %d tiles arrived, max stall %.1f ms, %d stalls > %.0f ms\n",
                canvas->tilesReceived() - tilesBefore, monitor.maxStallMs(), monitor.stallsOverTarget(),
                kTargetStallMs);
    const bool ok =
        firstOverviewMs <= kTargetFirstOverviewMs && std::max(openStall, monitor.maxStallMs()) <= kTargetStallMs;
    std::printf("targets (first overview <= %.0f ms, no stall > %.0f ms): %s\n", kTargetFirstOverviewMs, kTargetStallMs,
                ok ? "met" : "NOT met");
    return ok ? 0 : 1;
}

}  // namespace attnscope
