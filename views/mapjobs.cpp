#include "mapjobs.h"

#include <QElapsedTimer>

#include <algorithm>

#include "attnscope/gpu.h"
#include "attnscope/parallel.h"
#include "computeservice.h"

namespace attnscope {

namespace {

Result<AttentionMap> sampledMap(const HeadData& data, const AttentionSpec& spec, const MapRequest& r,
                                const CancelToken& cancel)
{
    const int64_t rows = r.rect.q1 - r.rect.q0;
    const int height = int(std::clamp<int64_t>(r.height, 1, std::max<int64_t>(rows, 1)));
    const int width = int(std::clamp<int64_t>(r.width, 1, std::max<int64_t>(r.rect.k1 - r.rect.k0, 1)));
    AttentionMap out;
    out.rect = r.rect;
    out.width = width;
    out.height = height;
    out.mean.assign(size_t(width) * height, 0.f);
    out.max.assign(size_t(width) * height, 0.f);
    out.allowed.assign(size_t(width) * height, 0.f);
    std::vector<Status> errors(static_cast<size_t>(height));
    parallelFor(height, [&](int64_t y, int) {
        if (cancel.cancelled())
            return;
        // The centre row of the cell stands for the whole cell.
        const int64_t q = r.rect.q0 + (2 * y + 1) * rows / (2 * int64_t(height));
        auto row = attentionMap(data.q, data.k, spec, {q, q + 1, r.rect.k0, r.rect.k1}, width, 1);
        if (!row) {
            errors[size_t(y)] = row.status();
            return;
        }
        const size_t n = std::min<size_t>(size_t(width), row->mean.size());
        std::copy_n(row->mean.begin(), n, out.mean.begin() + y * width);
        std::copy_n(row->max.begin(), n, out.max.begin() + y * width);
        std::copy_n(row->allowed.begin(), n, out.allowed.begin() + y * width);
    });
    if (cancel.cancelled())
        return Status(ErrorCode::Cancelled, "map cancelled");
    for (const Status& s : errors)
        if (!s.ok())
            return s;
    return out;
}

}  // namespace

void colorizeResult(MapResult& result, MapColoring coloring, bool shadeMasked, QColor maskColor)
{
    coloring.vmax = pooledMaximum(result.map, coloring.maxPooling);
    result.image = colorizeMap(result.map, coloring, shadeMasked, maskColor);
    result.coloring = coloring;
    result.shadeMasked = shadeMasked;
}

Result<MapResult> computeMap(HeadCache& cache, const MapRequest& request, const CancelToken& cancel, GpuEngine* gpu)
{
    QElapsedTimer timer;
    timer.start();
    auto head = cache.head(request.layer, request.head);
    if (!head)
        return head.status();
    const HeadData& data = **head;
    const AttentionSpec spec = HeadCache::specWithExclusions(data, request.excludedKeys);
    MapResult result;
    result.request = request;
    if (request.sampledRows) {
        auto map = sampledMap(data, spec, request, cancel);
        if (!map)
            return map.status();
        result.map = std::move(*map);
        result.exact = false;
        result.backend = QStringLiteral("CPU, sampled rows");
    } else if (gpu) {
        // Q/K stay on the device between requests: a zoom runs only the two passes.
        auto device = cache.deviceHead(*head, *gpu);
        if (!device)
            return device.status();
        auto map = gpu->attentionMap(**device, spec, request.rect, request.width, request.height);
        if (!map)
            return map.status();
        result.map = std::move(*map);
        result.backend = QStringLiteral("GPU");
    } else {
        // Whole-height requests compute (and cache) the full lse; narrow ones only their rows.
        const bool allRows = request.rect.q0 == 0 && request.rect.q1 == data.q.rows();
        std::shared_ptr<const std::vector<float>> lse = cache.cachedLse(data, spec);
        if (!lse && allRows) {
            auto full = cache.lse(data, spec, cancel);
            if (!full)
                return full.status();
            lse = *full;
        }
        auto map = attentionMap(data.q, data.k, spec, request.rect, request.width, request.height,
                                cancelOnly(cancel), lse.get());
        if (!map)
            return map.status();
        result.map = std::move(*map);
        result.backend = QStringLiteral("CPU");
    }
    result.seconds = double(timer.nsecsElapsed()) * 1e-9;
    return result;
}

}  // namespace attnscope
