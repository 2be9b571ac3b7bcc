#pragma once
// Pure viewport of the kernel timeline: maps time (µs) to pixels and back, zooms about a point,
// pans and clamps (Tracy's TimelineContext, hotspot's TimeLineData). No Qt, unit-tested with rows.
#include <cstdint>
#include <string>
#include <vector>

namespace attnscope {

struct KernelRecord;

struct TimelineViewport {
    /// Narrowest visible span: 10 ns, well below any kernel.
    static constexpr double kMinSpanUs = 0.01;

    double domainStartUs = 0, domainEndUs = 1;  ///< the whole recording
    double startUs = 0;                         ///< time at pixel x = 0
    double usPerPixel = 1;
    double width = 1;  ///< plot width in pixels

    /// Sets the recording's extent and the plot width, then shows everything.
    void reset(double domainStart, double domainEnd, double widthPx);
    void fitAll();
    /// Zooms by `factor` (> 1 zooms in) keeping the time under pixel x fixed, then clamps.
    void zoomAbout(double x, double factor);
    /// Moves the view by a pixel delta (drag pan: positive dx shows earlier times), then clamps.
    void panPixels(double dx);
    /// Changes the width keeping the left edge's time, then clamps.
    void resize(double widthPx);

    double timeToX(double us) const { return (us - startUs) / usPerPixel; }
    double xToTime(double x) const { return startUs + x * usPerPixel; }
    double endUs() const { return startUs + width * usPerPixel; }
    double spanUs() const { return width * usPerPixel; }

    /// Keeps the span within [kMinSpanUs, domain] and the view inside the domain.
    void clamp();
};

/// One drawn box of the timeline: a kernel, or several kernels folded into one box because
/// each was narrower than the fold width.
struct TimelineBox {
    int track = 0;
    double x0 = 0, x1 = 0;  ///< pixels
    int first = 0;          ///< index of the first record in the box
    int count = 1;          ///< records folded into it (1 = a single kernel)
};

/// Tracks of a record list: one per (variant, stream), in order of first appearance.
struct TimelineTracks {
    std::vector<std::string> names;
    std::vector<int> trackOf;  ///< per record
};
TimelineTracks timelineTracks(const std::vector<KernelRecord>& records, const std::vector<std::string>& variantLabels);

/// The layout pass: boxes of the visible records, each at least `minBoxPx` wide; neighbours on a
/// track closer than `foldPx` merge into one box. Records outside the view are skipped.
std::vector<TimelineBox> layoutTimeline(const std::vector<KernelRecord>& records, const TimelineTracks& tracks,
                                        const TimelineViewport& view, double minBoxPx = 1.0, double foldPx = 3.0);

/// The box under pixel (x, track), or -1.
int hitTest(const std::vector<TimelineBox>& boxes, double x, int track);

/// A tick step of 1, 2 or 5 × 10^k µs covering `spanUs` in about `ticks` steps.
double timeAxisStep(double spanUs, int ticks);
/// A time axis label: every tick of an axis in one unit (ns, µs, ms or s, chosen from the tick
/// step) with the decimals the step needs, e.g. "0 s", "0.5 s", "1 s" rather than "0 µs" … "1000 ms".
std::string formatAxisTime(double us, double stepUs);

}  // namespace attnscope
