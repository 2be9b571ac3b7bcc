#pragma once
// The map computations the views submit to the ComputeService: exact pooled tiles (GPU when
// present, else CPU two-pass reusing the cached lse) and a fast row-sampled preview for the first
// overview of long sequences and for grid thumbnails.
#include <QImage>
#include <QMetaType>
#include <QString>

#include <vector>

#include "attnscope/attention.h"
#include "headcache.h"
#include "mapcoloring.h"

namespace attnscope {

class GpuEngine;

struct MapRequest {
    int layer = 0, head = 0;
    MapRect rect;
    int width = 0, height = 0;
    std::vector<int64_t> excludedKeys;
    /// Compute only `height` evenly spaced query rows (exact rows, pooled over keys) instead of
    /// every row: O(height·T·d) rather than O(T²·d). A preview, flagged as not exact.
    bool sampledRows = false;
};

struct MapResult {
    MapRequest request;
    AttentionMap map;
    bool exact = true;
    QString backend;   ///< "GPU", "CPU", "CPU, sampled rows"
    double seconds = 0;
    /// The map coloured on the worker (so the GUI thread does no per-cell work), with the
    /// coloring used; its vmax is this map's own maximum.
    QImage image;
    MapColoring coloring;
    bool shadeMasked = false;
};

/// Colours `result` into result.image with `coloring` (vmax replaced by the map's maximum).
void colorizeResult(MapResult& result, MapColoring coloring, bool shadeMasked, QColor maskColor);

/// Computes one map; thread-safe (runs on pool threads or the GPU worker).
Result<MapResult> computeMap(HeadCache& cache, const MapRequest& request, const CancelToken& cancel,
                             GpuEngine* gpu = nullptr);

/// Rows below which thumbnails and first overviews are computed exactly rather than sampled.
constexpr int64_t kExactOverviewTokens = 4096;

}  // namespace attnscope

Q_DECLARE_METATYPE(attnscope::MapResult)
