// Vision analyses (attnscope/vision.h; definitions in docs/analysis.md, "Vision"): mean attention
// distance in patches and the prefix tokens' share, per head, two-pass from Q/K or from the stored
// probabilities of a weights-only trace. Sums are float64; nothing holds T×T.
#include "attnscope/vision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "analysis_internal.h"
#include "attnscope/cpu_budget.h"
#include "attnscope/trace.h"

namespace attnscope {

namespace {

/// Rows of stored probabilities read at once on the weights-only path (≈ 64 MB of floats).
constexpr int64_t kStoredChunkFloats = int64_t(16) << 20;

/// Accumulates probability tiles of the patch query rows into the vision sums. Rows belong to
/// one worker each (forEachProbabilityTile runs a row tile on one worker), so the per-row sums
/// need no locking; the per-prefix-token sums are per worker.
class VisionAccumulator {
public:
    VisionAccumulator(const VisionLayout& layout, int workers)
        : m_layout(layout), m_distanceSum(size_t(layout.patches()), 0.0), m_patchMass(size_t(layout.patches()), 0.0),
          m_prefix(size_t(workers), std::vector<double>(size_t(layout.prefix), 0.0)) {
        // dist(Δr, Δc) between patch centres, looked up instead of a square root per pair.
        m_distance.resize(size_t(layout.patches()));
        for (int dr = 0; dr < layout.rows; ++dr)
            for (int dc = 0; dc < layout.cols; ++dc)
                m_distance[size_t(dr) * size_t(layout.cols) + size_t(dc)] = std::sqrt(double(dr * dr + dc * dc));
    }

    /// P: rows [qStart, qStart + P.rows()) (patch queries) × keys [kStart, kStart + P.cols()).
    void add(int worker, int64_t qStart, int64_t kStart, const float* p, int64_t rows, int64_t cols, int64_t stride) {
        const VisionLayout& L = m_layout;
        std::vector<double>& prefix = m_prefix[size_t(worker)];
        const int64_t prefixEnd = std::min(L.prefix, kStart + cols);
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = qStart + r;
            const float* row = p + r * stride;
            for (int64_t j = kStart; j < prefixEnd; ++j) prefix[size_t(j)] += double(row[j - kStart]);
            const int64_t patchIndex = i - L.prefix;
            const int ri = int(patchIndex / L.cols), ci = int(patchIndex % L.cols);
            double dist = 0, mass = 0;
            const int64_t firstKey = std::max(kStart, L.prefix);
            int rj = L.patchRow(firstKey), cj = L.patchCol(firstKey);
            for (int64_t j = firstKey; j < kStart + cols; ++j) {
                const double pj = double(row[j - kStart]);
                mass += pj;
                dist += pj * m_distance[size_t(std::abs(ri - rj)) * size_t(L.cols) + size_t(std::abs(ci - cj))];
                if (++cj == L.cols) cj = 0, ++rj;
            }
            m_distanceSum[size_t(patchIndex)] += dist;
            m_patchMass[size_t(patchIndex)] += mass;
        }
    }

    VisionHeadStats finish() const {
        VisionHeadStats s;
        const int64_t n = m_layout.patches();
        double distance = 0;
        for (int64_t i = 0; i < n; ++i)
            if (m_patchMass[size_t(i)] > 0) {
                distance += m_distanceSum[size_t(i)] / m_patchMass[size_t(i)];
                ++s.patchQueries;
            }
        s.patchDistance = s.patchQueries ? distance / double(s.patchQueries) : 0.0;
        s.prefixTokenShare.assign(size_t(m_layout.prefix), 0.0);
        for (const auto& w : m_prefix)
            for (size_t t = 0; t < w.size(); ++t) s.prefixTokenShare[t] += w[t];
        for (double& v : s.prefixTokenShare) {
            v /= double(n);
            s.prefixShare += v;
        }
        return s;
    }

private:
    const VisionLayout& m_layout;
    std::vector<double> m_distance;             ///< [rows × cols] by |Δr|, |Δc|
    std::vector<double> m_distanceSum;          ///< per patch query Σ p·dist over patch keys
    std::vector<double> m_patchMass;            ///< per patch query Σ p over patch keys
    std::vector<std::vector<double>> m_prefix;  ///< per worker, per prefix token Σ p over patch queries
};

Status checkLayout(const VisionLayout& layout) {
    if (layout.rows <= 0 || layout.cols <= 0 || layout.patches() > layout.tokens)
        return Status(ErrorCode::InvalidArgument, "vision: patch grid " + std::to_string(layout.rows) + "×" +
                                                      std::to_string(layout.cols) +
                                                      " does not fit T = " + std::to_string(layout.tokens));
    return Status::success();
}

/// The weights-only path: stored rows of the patch queries, a chunk at a time.
Result<VisionHeadStats> visionFromStored(const Trace& trace, int layer, int head, const VisionLayout& layout,
                                         const ProgressFn& progress) {
    VisionAccumulator acc(layout, 1);
    const int64_t T = layout.tokens;
    const int64_t chunk = std::max<int64_t>(1, kStoredChunkFloats / T);
    for (int64_t q0 = layout.prefix; q0 < T; q0 += chunk) {
        const int64_t q1 = std::min(T, q0 + chunk);
        auto rows = trace.storedAttention(layer, head, q0, q1);
        if (!rows) return rows.status();
        acc.add(0, q0, 0, rows->data(), q1 - q0, T, T);
        if (progress && !progress(double(q1 - layout.prefix) / double(layout.patches()), "vision"))
            return Status(ErrorCode::Cancelled, "vision analysis cancelled");
    }
    return acc.finish();
}

}  // namespace

namespace {
Result<VisionHeadStats> visionFromQK(const Trace& trace, int layer, int head, const VisionLayout& layout,
                                     const ProgressFn& progress) {
    auto q = trace.head(layer, head, Which::Q);
    if (!q) return q.status();
    auto k = trace.head(layer, head, Which::K);
    if (!k) return k.status();
    return analyzeVisionHead(q->m, k->m, specForLayer(trace.config(layer), head), layout, progress);
}
}  // namespace

Result<VisionLayout> visionLayout(const TraceMetadata& m, int64_t tokens, const std::string& where) {
    if (m.kind != TraceKind::Vision || m.patchRows <= 0 || m.patchCols <= 0)
        return Status(ErrorCode::InvalidArgument, where + ": not a vision trace (__metadata__.kind is '" +
                                                      traceKindName(m.kind) +
                                                      "'; the vision analyses need kind 'vision' with a patch_grid)");
    VisionLayout l;
    l.tokens = tokens;
    l.rows = m.patchRows;
    l.cols = m.patchCols;
    l.prefix = tokens - l.patches();
    if (Status st = checkLayout(l); !st) return Status(st.code(), where + ": " + st.message());
    return l;
}

Result<VisionLayout> visionLayout(const Trace& trace) {
    return visionLayout(trace.metadata(), trace.tokens(), trace.path());
}

std::string patchTokenName(int r, int c) { return "p" + std::to_string(r) + "," + std::to_string(c); }

int64_t VisionHeadStats::topPrefixToken() const {
    if (prefixTokenShare.empty()) return -1;
    return int64_t(std::max_element(prefixTokenShare.begin(), prefixTokenShare.end()) - prefixTokenShare.begin());
}

Result<VisionHeadStats> analyzeVisionHead(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                          const VisionLayout& layout, const ProgressFn& progress) {
    if (Status st = checkLayout(layout); !st) return st;
    if (q.rows() != layout.tokens || k.rows() != layout.tokens)
        return Status(ErrorCode::InvalidArgument, "vision: q has " + std::to_string(q.rows()) + " rows and k " +
                                                      std::to_string(k.rows()) +
                                                      ", expected T = " + std::to_string(layout.tokens));
    const int64_t T = layout.tokens;
    // Pass 1 over the patch rows only, then pass 2 over their probability tiles.
    auto lse = rowLogSumExp(q, k, spec, layout.prefix, T, detail::subProgress(progress, 0.0, 0.5));
    if (!lse) return lse.status();
    VisionAccumulator acc(layout, workerCount());
    Status st = forEachProbabilityTile(
        q, k, spec, *lse, layout.prefix, T, 0, T,
        [&](int worker, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
            acc.add(worker, qStart, kStart, P.data(), P.rows(), P.cols(), P.outerStride());
        },
        detail::subProgress(progress, 0.5, 1.0));
    if (!st) return st;
    return acc.finish();
}

double visionScoreProducts(const Trace& trace, const VisionOptions& options) {
    if (!trace.hasQK()) return 0;
    auto layout = visionLayout(trace);
    if (!layout) return 0;
    double products = 0;
    for (int l = 0; l < trace.numLayers(); ++l) {
        if (!options.layers.empty() &&
            std::find(options.layers.begin(), options.layers.end(), l) == options.layers.end())
            continue;
        const LayerConfig& c = trace.config(l);
        products += 2.0 * c.heads * scoreProducts(layout->patches(), trace.tokens(), c.headDim, c.causal);
    }
    return products;
}

Result<VisionAnalysis> analyzeVision(const Trace& trace, const VisionOptions& options, const ProgressFn& progress) {
    auto layout = visionLayout(trace);
    if (!layout) return layout.status();
    VisionAnalysis out;
    out.layout = *layout;
    const auto& tokens = trace.metadata().tokens;
    for (int64_t t = 0; t < layout->prefix; ++t)
        out.prefixNames.push_back(size_t(t) < tokens.size() ? tokens[size_t(t)] : std::to_string(t));
    std::vector<int> layers = options.layers;
    if (layers.empty())
        for (int l = 0; l < trace.numLayers(); ++l) layers.push_back(l);
    int total = 0;
    for (int l : layers) {
        if (l < 0 || l >= trace.numLayers())
            return Status(ErrorCode::InvalidArgument, trace.path() + ": layer " + std::to_string(l) +
                                                          " out of range (the trace has " +
                                                          std::to_string(trace.numLayers()) + " layers)");
        total += trace.config(l).heads;
    }
    int done = 0;
    for (int l : layers) {
        const LayerConfig& c = trace.config(l);
        for (int h = 0; h < c.heads; ++h, ++done) {
            const ProgressFn p = detail::subProgress(progress, double(done) / total, double(done + 1) / total);
            auto s = trace.hasQK() ? visionFromQK(trace, l, h, *layout, p) : visionFromStored(trace, l, h, *layout, p);
            if (!s) return s.status();
            s->layer = l;
            s->head = h;
            out.heads.push_back(std::move(*s));
        }
    }
    if (progress) progress(1.0, "vision");
    return out;
}

Result<QueryPatchAttention> queryPatchAttention(const Trace& trace, int layer, int head, int64_t query) {
    auto layout = visionLayout(trace);
    if (!layout) return layout.status();
    if (query < 0 || query >= layout->tokens)
        return Status(ErrorCode::InvalidArgument, trace.path() + ": query " + std::to_string(query) +
                                                      " out of range [0," + std::to_string(layout->tokens) + ")");
    std::vector<float> row;
    if (trace.hasQK()) {
        auto q = trace.head(layer, head, Which::Q);
        if (!q) return q.status();
        auto k = trace.head(layer, head, Which::K);
        if (!k) return k.status();
        auto r = attentionRow(q->m, k->m, specForLayer(trace.config(layer), head), query, 0);
        if (!r) return r.status();
        row = std::move(r->probabilities);
    } else {
        auto r = trace.storedAttention(layer, head, query, query + 1);
        if (!r) return r.status();
        row.assign(r->data(), r->data() + r->size());
    }
    QueryPatchAttention out;
    out.layer = layer;
    out.head = head;
    out.query = query;
    out.rows = layout->rows;
    out.cols = layout->cols;
    out.prefix.assign(row.begin(), row.begin() + layout->prefix);
    out.patches.assign(row.begin() + layout->prefix, row.end());
    for (float v : out.patches) out.maxPatch = std::max(out.maxPatch, v);
    return out;
}

namespace {
Json num(double x) {  // six significant digits, as the analysis JSON
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", x);
    return Json(std::strtod(buf, nullptr));
}
}  // namespace

Json toJson(const VisionAnalysis& a) {
    Json j = Json::object();
    Json layout = Json::object();
    layout.set("tokens", Json(a.layout.tokens));
    layout.set("prefixTokens", Json(a.layout.prefix));
    layout.set("patchGrid", Json(Json::Array{Json(a.layout.rows), Json(a.layout.cols)}));
    j.set("layout", std::move(layout));
    Json names = Json::array();
    for (const auto& n : a.prefixNames) names.push(n);
    j.set("prefixNames", std::move(names));
    Json heads = Json::array();
    for (const VisionHeadStats& h : a.heads) {
        Json e = Json::object();
        e.set("layer", Json(h.layer));
        e.set("head", Json(h.head));
        e.set("patchQueries", Json(h.patchQueries));
        e.set("patchDistance", num(h.patchDistance));
        e.set("prefixShare", num(h.prefixShare));
        Json shares = Json::array();
        for (double s : h.prefixTokenShare) shares.push(num(s));
        e.set("prefixTokenShare", std::move(shares));
        heads.push(std::move(e));
    }
    j.set("heads", std::move(heads));
    return j;
}

}  // namespace attnscope
