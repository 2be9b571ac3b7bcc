#include "mapjobs.h"

#include <QElapsedTimer>

#include "computeservice.h"

namespace attnscope {

void colorizeResult(MapResult& result, MapColoring coloring, bool shadeMasked, QColor maskColor) {
    coloring.vmax = pooledMaximum(result.map, coloring.maxPooling);
    result.image = colorizeMap(result.map, coloring, shadeMasked, maskColor);
    result.coloring = coloring;
    result.shadeMasked = shadeMasked;
}

Result<MapResult> computeMap(HeadCache& cache, const MapRequest& request, const CancelToken& cancel, GpuEngine* gpu) {
    QElapsedTimer timer;
    timer.start();
    auto map = headMap(cache, request, cancelOnly(cancel), gpu);
    if (!map) return map.status();
    MapResult result;
    result.request = request;
    result.map = std::move(map->map);
    result.exact = map->exact;
    result.backend = QString::fromStdString(map->backendLabel);
    result.seconds = double(timer.nsecsElapsed()) * 1e-9;
    return result;
}

}  // namespace attnscope
