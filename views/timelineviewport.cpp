// Timeline viewport arithmetic and the layout pass of the kernel timeline.
#include "timelineviewport.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "attnscope/profiler.h"
#include "attnscope/scales.h"

namespace attnscope {

double timeAxisStep(double spanUs, int ticks) { return niceTickStep(spanUs / std::max(ticks, 1)); }

std::string formatAxisTime(double us, double stepUs) {
    struct Unit {
        double us;
        const char* name;
    };
    // The largest unit in which the step is at least 0.1: ticks read 0.5 s, not 500000 µs.
    static constexpr Unit kUnits[] = {{1e6, "s"}, {1e3, "ms"}, {1.0, "µs"}, {1e-3, "ns"}};
    constexpr double kMinStepInUnit = 0.1;
    const Unit* unit = &kUnits[std::size(kUnits) - 1];
    for (const Unit& u : kUnits) {
        if (stepUs / u.us >= kMinStepInUnit) {
            unit = &u;
            break;
        }
    }
    const double step = stepUs / unit->us;
    const int decimals = std::clamp(int(std::ceil(-std::log10(step) - 1e-9)), 0, 3);
    double value = us / unit->us;
    if (std::abs(value) < step * 1e-6) value = 0;  // no "-0"
    char text[64];
    std::snprintf(text, sizeof text, "%.*f %s", decimals, value, unit->name);
    return text;
}

void TimelineViewport::reset(double domainStart, double domainEnd, double widthPx) {
    domainStartUs = domainStart;
    domainEndUs = std::max(domainEnd, domainStart + kMinSpanUs);
    width = std::max(1.0, widthPx);
    fitAll();
}

void TimelineViewport::fitAll() {
    startUs = domainStartUs;
    usPerPixel = (domainEndUs - domainStartUs) / width;
}

void TimelineViewport::zoomAbout(double x, double factor) {
    if (!(factor > 0)) return;
    const double t = xToTime(x);
    usPerPixel /= factor;
    clamp();
    startUs = t - x * usPerPixel;
    clamp();
}

void TimelineViewport::panPixels(double dx) {
    startUs -= dx * usPerPixel;
    clamp();
}

void TimelineViewport::resize(double widthPx) {
    width = std::max(1.0, widthPx);
    clamp();
}

void TimelineViewport::clamp() {
    const double domain = domainEndUs - domainStartUs;
    const double span = std::clamp(width * usPerPixel, std::min(kMinSpanUs, domain), domain);
    usPerPixel = span / width;
    startUs = std::clamp(startUs, domainStartUs, domainEndUs - span);
}

TimelineTracks timelineTracks(const std::vector<KernelRecord>& records, const std::vector<std::string>& variantLabels) {
    TimelineTracks t;
    std::map<std::pair<int, uint32_t>, int> ids;
    t.trackOf.reserve(records.size());
    for (const auto& r : records) {
        const auto key = std::make_pair(r.variantIndex, r.streamId);
        auto it = ids.find(key);
        if (it == ids.end()) {
            it = ids.emplace(key, int(t.names.size())).first;
            const bool known = r.variantIndex >= 0 && size_t(r.variantIndex) < variantLabels.size();
            t.names.push_back((known ? variantLabels[size_t(r.variantIndex)] : std::string("?")) + " · stream " +
                              std::to_string(r.streamId));
        }
        t.trackOf.push_back(it->second);
    }
    return t;
}

std::vector<TimelineBox> layoutTimeline(const std::vector<KernelRecord>& records, const TimelineTracks& tracks,
                                        const TimelineViewport& view, double minBoxPx, double foldPx) {
    // Visit each track's records in time order so folding only merges neighbours.
    std::vector<int> order(records.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        const int ta = tracks.trackOf[size_t(a)], tb = tracks.trackOf[size_t(b)];
        return ta != tb ? ta < tb : records[size_t(a)].startUs < records[size_t(b)].startUs;
    });
    std::vector<TimelineBox> boxes;
    const double viewEnd = view.endUs();
    for (int i : order) {
        const KernelRecord& r = records[size_t(i)];
        if (r.startUs + r.durationUs < view.startUs || r.startUs >= viewEnd) continue;
        TimelineBox b;
        b.track = tracks.trackOf[size_t(i)];
        b.x0 = view.timeToX(r.startUs);
        b.x1 = std::max(view.timeToX(r.startUs + r.durationUs), b.x0 + minBoxPx);
        b.first = i;
        if (!boxes.empty() && boxes.back().track == b.track && b.x0 - boxes.back().x1 < foldPx &&
            (b.x1 - b.x0 < foldPx || boxes.back().count > 1 || boxes.back().x1 - boxes.back().x0 < foldPx)) {
            boxes.back().x1 = std::max(boxes.back().x1, b.x1);
            boxes.back().count += 1;
            continue;
        }
        boxes.push_back(b);
    }
    return boxes;
}

int hitTest(const std::vector<TimelineBox>& boxes, double x, int track) {
    for (size_t i = 0; i < boxes.size(); ++i)
        if (boxes[i].track == track && x >= boxes[i].x0 && x < boxes[i].x1) return int(i);
    return -1;
}

}  // namespace attnscope
