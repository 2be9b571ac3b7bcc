#pragma once
// Pure viewport of a T×T attention map: maps token indices to widget pixels and back, zooms about
// a point and clamps, like Tracy's TimelineContext. No Qt, so it is unit-tested with plain rows.
#include <cstdint>

namespace attnscope {

struct MapViewport {
    /// Most pixels one token may take when zoomed all the way in (room for a token label).
    static constexpr double kMaxPixelsPerToken = 48.0;

    int64_t tokens = 0;  ///< T (queries and keys)
    double width = 0;    ///< plot area in pixels
    double height = 0;
    double keyOrigin = 0;    ///< key (column) at pixel x = 0
    double queryOrigin = 0;  ///< query (row) at pixel y = 0
    double tokensPerPixel = 1;

    /// Sets the size and T, then shows the whole map.
    void reset(int64_t t, double w, double h);
    /// Fits the whole sequence into the plot area (the overview).
    void fitAll();
    /// Zooms by `factor` (> 1 zooms in) keeping the token under pixel (x, y) fixed, then clamps.
    void zoomAbout(double x, double y, double factor);
    /// Moves the view by a pixel delta (drag pan), then clamps.
    void panPixels(double dx, double dy);
    /// Resizes the plot area keeping the top-left token, then clamps.
    void resize(double w, double h);

    double keyToX(double key) const { return (key - keyOrigin) / tokensPerPixel; }
    double queryToY(double query) const { return (query - queryOrigin) / tokensPerPixel; }
    double xToKey(double x) const { return keyOrigin + x * tokensPerPixel; }
    double yToQuery(double y) const { return queryOrigin + y * tokensPerPixel; }
    double pixelsPerToken() const { return 1.0 / tokensPerPixel; }

    /// Token under a pixel, or -1 when the pixel lies outside the sequence.
    int64_t keyAt(double x) const;
    int64_t queryAt(double y) const;

    /// The visible token range, whole tokens, clamped to [0, T): queries [q0,q1) × keys [k0,k1).
    struct Range {
        int64_t q0 = 0, q1 = 0, k0 = 0, k1 = 0;
        bool operator==(const Range&) const = default;
    };
    Range visible() const;

    /// Largest tokensPerPixel: the whole sequence fits the smaller side.
    double maxTokensPerPixel() const;
    double minTokensPerPixel() const { return 1.0 / kMaxPixelsPerToken; }
    bool isOverview() const { return tokensPerPixel >= maxTokensPerPixel() * (1 - 1e-9); }

    /// Keeps the scale in range and the map on screen (centred along an axis it does not fill).
    void clamp();
};

}  // namespace attnscope
