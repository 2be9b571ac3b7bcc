#include "benchresponsiveness.h"

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QTimer>

#include <algorithm>
#include <cmath>
#include <cstdio>

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
constexpr int kFrameMs = 16;             ///< one scripted interaction step per frame
constexpr int kZoomSteps = 60;           ///< wheel steps from the overview to token level
constexpr int kPanSteps = 60;
constexpr int kTimeoutMs = 120000;
constexpr int kWindowWidth = 1200, kWindowHeight = 900;

/// Records the longest gap between heartbeat ticks beyond their interval.
class StallMonitor {
public:
    StallMonitor()
    {
        m_timer.setTimerType(Qt::PreciseTimer);
        m_timer.setInterval(kHeartbeatMs);
        QObject::connect(&m_timer, &QTimer::timeout, [this] {
            const double gap = double(m_clock.nsecsElapsed()) * 1e-6;
            m_clock.restart();
            const double stall = gap - kHeartbeatMs;
            m_max = std::max(m_max, stall);
            if (stall > kTargetStallMs)
                ++m_over;
        });
    }
    void start()
    {
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

int runResponsivenessBenchmark(int64_t tokens)
{
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
    std::printf("compute: %s, %d hardware threads\n", qPrintable(compute.gpuDescription()), QThread::idealThreadCount());

    StallMonitor monitor;
    double firstOverviewMs = -1, exactOverviewMs = -1;
    QObject::connect(canvas, &AttentionMapCanvas::tileArrived, [&] {
        if (firstOverviewMs < 0)
            firstOverviewMs = double(clock.nsecsElapsed()) * 1e-6;
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

    // Interaction: zoom about a point towards token level, pan across, zoom back out, one step a
    // frame like a user's wheel and drag, while tiles keep arriving.
    monitor.start();
    const int tilesBefore = canvas->tilesReceived();
    const double zoomFactor = std::pow(double(tokens) / 20.0, 1.0 / kZoomSteps);
    int step = 0;
    QTimer driver;
    driver.setInterval(kFrameMs);
    QObject::connect(&driver, &QTimer::timeout, [&] {
        if (step < kZoomSteps)
            canvas->zoomBy(zoomFactor);
        else if (step < kZoomSteps + kPanSteps)
            canvas->setViewport([&] {
                MapViewport v = canvas->viewport();
                v.panPixels(-40, -25);
                return v;
            }());
        else if (step < 2 * kZoomSteps + kPanSteps)
            canvas->zoomBy(1.0 / zoomFactor);
        else
            driver.stop();
        ++step;
    });
    clock.restart();
    driver.start();
    waitFor([&] { return !driver.isActive(); }, kTimeoutMs);
    const double interactionMs = double(clock.nsecsElapsed()) * 1e-6;
    waitFor([&] { return canvas->isUpToDate(); }, kTimeoutMs);
    const double settleMs = double(clock.nsecsElapsed()) * 1e-6 - interactionMs;
    monitor.stop();
    std::printf("interaction: %d steps in %.0f ms, %d tiles arrived, settled %.0f ms after the last step\n", step,
                interactionMs, canvas->tilesReceived() - tilesBefore, settleMs);
    std::printf("interaction phase: max stall %.1f ms, %d stalls > %.0f ms\n", monitor.maxStallMs(),
                monitor.stallsOverTarget(), kTargetStallMs);
    const bool ok = firstOverviewMs <= kTargetFirstOverviewMs && std::max(openStall, monitor.maxStallMs()) <= kTargetStallMs;
    std::printf("targets (first overview <= %.0f ms, no stall > %.0f ms): %s\n", kTargetFirstOverviewMs, kTargetStallMs,
                ok ? "met" : "NOT met");
    return ok ? 0 : 1;
}

}  // namespace attnscope
