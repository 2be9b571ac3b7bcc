#pragma once
// The map jobs the views submit to the ComputeService: core's map service (map_service.h: exact
// pooled tiles on the GPU when present, else the CPU two-pass reusing the cached lse; a fast
// row-sampled preview for first overviews of long sequences and grid thumbnails; weights-only
// traces pooled from their stored probabilities), plus the colouring done on the worker.
#include <QImage>
#include <QMetaType>
#include <QString>

#include <vector>

#include "attnscope/attention.h"
#include "attnscope/head_cache.h"
#include "attnscope/map_service.h"
#include "mapcoloring.h"

namespace attnscope {

class CancelToken;
class GpuEngine;

struct MapResult {
    MapRequest request;
    AttentionMap map;
    bool exact = true;
    QString backend;  ///< HeadMap::backendLabel: "GPU <name>", "CPU", "CPU, sampled rows", …
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
