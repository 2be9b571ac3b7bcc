#include "attnscope/map_service.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "attnscope/analysis_limits.h"
#include "attnscope/cpu_budget.h"
#include "attnscope/gpu.h"
#include "attnscope/parallel.h"

namespace attnscope {
namespace {

constexpr int64_t kStoredRowChunk = 256;  ///< rows read at once from a weights-only trace

/// Cells partition a span as attentionMap does: cell c starts at floor(c·span/cells).
int64_t cellStart(int c, int64_t span, int cells) { return int64_t(c) * span / cells; }
int cellOf(int64_t i, int64_t span, int cells) { return int(((i + 1) * cells - 1) / span); }

/// Reports [from, to] of the parent's range.
ProgressFn slice(const ProgressFn& parent, double from, double to) {
    if (!parent) return {};
    return [parent, from, to](double f, std::string_view stage) { return parent(from + (to - from) * f, stage); };
}

std::string headName(const MapRequest& r) {
    return "layer " + std::to_string(r.layer) + " head " + std::to_string(r.head);
}

Status validate(const Trace& t, const MapRequest& r, const MapRect& rect) {
    if (r.layer < 0 || r.layer >= t.numLayers())
        return {ErrorCode::InvalidArgument, "map: layer " + std::to_string(r.layer) + " out of range: the trace has " +
                                                std::to_string(t.numLayers()) + " layers"};
    const int heads = t.config(r.layer).heads;
    if (r.head < 0 || r.head >= heads)
        return {ErrorCode::InvalidArgument, "map: head " + std::to_string(r.head) + " out of range: layer " +
                                                std::to_string(r.layer) + " has " + std::to_string(heads) + " heads"};
    const int64_t T = t.tokens();
    if (rect.q0 < 0 || rect.q1 <= rect.q0 || rect.q1 > T || rect.k0 < 0 || rect.k1 <= rect.k0 || rect.k1 > T)
        return {ErrorCode::InvalidArgument, "map: rectangle q[" + std::to_string(rect.q0) + "," +
                                                std::to_string(rect.q1) + ") x k[" + std::to_string(rect.k0) + "," +
                                                std::to_string(rect.k1) + ") must lie inside [0," + std::to_string(T) +
                                                "] with q0 < q1 and k0 < k1"};
    if (r.width < 1 || r.height < 1 || r.width > kMaxMapSide || r.height > kMaxMapSide)
        return {ErrorCode::InvalidArgument, "map: size " + std::to_string(r.width) + "x" + std::to_string(r.height) +
                                                " must be 1.." + std::to_string(kMaxMapSide) + " cells per side"};
    return {};
}

/// Pools a weights-only trace's stored probabilities (sink columns removed and rows renormalised
/// when asked, the "exclude and renormalise" of analysis-metrics.md).
Result<HeadMap> storedMap(const Trace& t, const MapRequest& r, const MapRect& rect, const ProgressFn& progress) {
    const int64_t tokens = t.tokens(), hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    HeadMap out;
    out.backend = MapBackend::StoredProbabilities;
    out.backendLabel = "stored probabilities";
    std::vector<int64_t> excluded = r.excludedKeys;
    if (r.excludeSinks) {
        std::vector<double> colSum(size_t(tokens), 0.0);
        for (int64_t r0 = 0; r0 < tokens; r0 += kStoredRowChunk) {
            auto rows = t.storedAttention(r.layer, r.head, r0, std::min(tokens, r0 + kStoredRowChunk));
            if (!rows) return rows.status();
            for (int64_t c = 0; c < tokens; ++c) colSum[size_t(c)] += rows->col(c).cast<double>().sum();
            if (progress && !progress(0.5 * double(r0) / double(tokens), "sinks"))
                return Status(ErrorCode::Cancelled, "map cancelled");
        }
        const bool causal = t.config(r.layer).causal;
        for (int64_t c = 0; c < tokens; ++c)
            if (colSum[size_t(c)] / double(causal ? tokens - c : tokens) > kSinkScoreThreshold) out.sinks.push_back(c);
        excluded.insert(excluded.end(), out.sinks.begin(), out.sinks.end());
    }
    std::sort(excluded.begin(), excluded.end());
    excluded.erase(std::unique(excluded.begin(), excluded.end()), excluded.end());
    AttentionMap& m = out.map;
    m.rect = rect;
    m.width = int(std::min<int64_t>(r.width, hk));
    m.height = int(std::min<int64_t>(r.height, hq));
    std::vector<double> sum(size_t(m.width) * size_t(m.height), 0.0);
    std::vector<double> allowedPairs(sum.size(), 0.0);
    m.max.assign(sum.size(), 0.0f);
    for (int64_t r0 = rect.q0; r0 < rect.q1; r0 += kStoredRowChunk) {
        auto rows = t.storedAttention(r.layer, r.head, r0, std::min(rect.q1, r0 + kStoredRowChunk));
        if (!rows) return rows.status();
        MatrixRM& p = *rows;
        for (Eigen::Index row = 0; row < p.rows(); ++row) {
            if (!excluded.empty()) {
                double removed = 0;
                for (int64_t c : excluded) removed += p(row, c), p(row, c) = 0;
                if (removed < 1.0) p.row(row) /= float(1.0 - removed);
            }
            const int y = cellOf(r0 + row - rect.q0, hq, m.height);
            for (int64_t c = rect.k0; c < rect.k1; ++c) {
                const size_t cell = size_t(y) * size_t(m.width) + size_t(cellOf(c - rect.k0, hk, m.width));
                sum[cell] += p(row, c);
                m.max[cell] = std::max(m.max[cell], p(row, c));
                if (!std::binary_search(excluded.begin(), excluded.end(), c)) allowedPairs[cell] += 1;
            }
        }
        if (progress && !progress(0.5 + 0.5 * double(r0 + kStoredRowChunk - rect.q0) / double(hq), "pooling"))
            return Status(ErrorCode::Cancelled, "map cancelled");
    }
    m.mean.resize(sum.size());
    m.allowed.resize(sum.size());  // the stored matrix carries no mask; excluded keys are masked
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x) {
            const double area = double(cellStart(y + 1, hq, m.height) - cellStart(y, hq, m.height)) *
                                double(cellStart(x + 1, hk, m.width) - cellStart(x, hk, m.width));
            const size_t cell = size_t(y) * size_t(m.width) + size_t(x);
            m.mean[cell] = float(sum[cell] / area);
            m.allowed[cell] = float(allowedPairs[cell] / area);
        }
    return out;
}

/// `height` evenly spaced exact rows (the centre row of each cell stands for the whole cell).
Result<AttentionMap> sampledMap(const HeadData& data, const AttentionSpec& spec, const MapRect& rect, int width,
                                int height, const ProgressFn& progress) {
    const int64_t rows = rect.q1 - rect.q0;
    height = int(std::clamp<int64_t>(height, 1, rows));
    width = int(std::clamp<int64_t>(width, 1, rect.k1 - rect.k0));
    AttentionMap out;
    out.rect = rect;
    out.width = width;
    out.height = height;
    out.mean.assign(size_t(width) * height, 0.f);
    out.max.assign(size_t(width) * height, 0.f);
    out.allowed.assign(size_t(width) * height, 0.f);
    std::vector<Status> errors(static_cast<size_t>(height));
    ProgressReporter reporter(progress);
    std::atomic<int> done{0};
    parallelFor(height, [&](int64_t y, int) {
        if (reporter.cancelled()) return;
        const int64_t q = rect.q0 + (2 * y + 1) * rows / (2 * int64_t(height));
        auto row = attentionMap(data.q, data.k, spec, {q, q + 1, rect.k0, rect.k1}, width, 1);
        if (!row) {
            errors[size_t(y)] = row.status();
            return;
        }
        const size_t n = std::min<size_t>(size_t(width), row->mean.size());
        std::copy_n(row->mean.begin(), n, out.mean.begin() + y * width);
        std::copy_n(row->max.begin(), n, out.max.begin() + y * width);
        std::copy_n(row->allowed.begin(), n, out.allowed.begin() + y * width);
        reporter.report(double(++done) / height, "sampled rows");
    });
    if (reporter.cancelled()) return Status(ErrorCode::Cancelled, "map cancelled");
    for (const Status& s : errors)
        if (!s.ok()) return s;
    return out;
}

}  // namespace

MapRect requestRect(const MapRequest& request, int64_t tokens) {
    return request.rect.q1 == 0 ? MapRect{0, tokens, 0, tokens} : request.rect;
}

double cpuMapScoreProducts(const Trace& trace, const MapRequest& request) {
    if (!trace.hasQK() || request.layer < 0 || request.layer >= trace.numLayers()) return 0;
    const LayerConfig& c = trace.config(request.layer);
    const MapRect rect = requestRect(request, trace.tokens());
    const int64_t rows = request.sampledRows ? std::min<int64_t>(request.height, rect.q1 - rect.q0) : rect.q1 - rect.q0;
    if (request.sampledRows) return scoreProducts(rows, trace.tokens(), c.headDim, false);
    return scoreProducts(rows, trace.tokens(), c.headDim, c.causal) +
           scoreProducts(rows, rect.k1 - rect.k0, c.headDim, c.causal);
}

Result<HeadMap> headMap(HeadCache& cache, const MapRequest& request, const ProgressFn& progress, GpuEngine* gpu) {
    if (!cache.trace()) return Status(ErrorCode::InvalidArgument, "map: no trace");
    const Trace& t = *cache.trace();
    const MapRect rect = requestRect(request, t.tokens());
    if (Status s = validate(t, request, rect); !s) return s;
    if (!t.hasQK()) return storedMap(t, request, rect, progress);

    auto head = cache.head(request.layer, request.head);
    if (!head) return head.status();
    const HeadData& data = **head;
    HeadMap out;
    out.nonFinite = data.nonFinite;
    std::vector<int64_t> excluded = request.excludedKeys;
    double from = 0.0;  // progress spent before the map itself
    if (request.excludeSinks) {
        auto sinks = cache.sinks(data, kSinkScoreThreshold, slice(progress, 0.0, 0.3));
        if (!sinks) return sinks.status();
        out.sinks = *sinks;
        excluded.insert(excluded.end(), sinks->begin(), sinks->end());
        from = 0.3;
    }
    const AttentionSpec spec = HeadCache::specWithExclusions(data, excluded);
    if (request.sampledRows) {
        auto map = sampledMap(data, spec, rect, request.width, request.height, slice(progress, from, 1.0));
        if (!map) return map.status();
        out.map = std::move(*map);
        out.exact = false;
        out.backend = MapBackend::CpuSampledRows;
        out.backendLabel = "CPU, sampled rows";
        return out;
    }
    // User variant programs (MaskSpec::expr) have no GPU map passes: they take the CPU engine.
    if (gpu && gpu->info().available && data.nonFinite == 0 && !spec.mask.expr) {
        // Q/K stay on the device between requests: a zoom runs only the two passes.
        auto device = cache.deviceHead(*head, *gpu);
        if (!device) return device.status();
        auto map = gpu->attentionMap(**device, spec, rect, request.width, request.height);
        if (!map) return Status(map.status().code(), headName(request) + ": " + map.status().message());
        out.map = std::move(*map);
        out.backend = MapBackend::Gpu;
        out.backendLabel = "GPU " + gpu->info().name;
        return out;
    }
    // Whole-height requests compute (and cache) the full lse; narrow ones only their rows.
    const bool allRows = rect.q0 == 0 && rect.q1 == data.q.rows();
    std::shared_ptr<const std::vector<float>> lse = cache.cachedLse(data, spec);
    if (!lse && allRows) {
        auto full = cache.lse(data, spec, slice(progress, from, (from + 1.0) / 2));
        if (!full) return full.status();
        lse = *full;
        from = (from + 1.0) / 2;
    }
    auto map =
        attentionMap(data.q, data.k, spec, rect, request.width, request.height, slice(progress, from, 1.0), lse.get());
    if (!map) return map.status();
    out.map = std::move(*map);
    out.backend = MapBackend::Cpu;
    out.backendLabel = data.nonFinite > 0 && gpu && gpu->info().available ? "CPU (NaN/Inf in Q/K)" : "CPU";
    return out;
}

}  // namespace attnscope
