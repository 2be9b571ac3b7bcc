// attnscope-cli map: a pooled attention map of one head as PNG or CSV, computed two-pass from
// Q/K (never T×T), or pooled from the stored probabilities of a weights-only trace.
#include <cmath>
#include <cstdio>
#include <string>

#include "attnscope/attention.h"
#include "attnscope/image.h"
#include "attnscope/trace.h"
#include "attnscope/gpu.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "map";
constexpr double kSinkThreshold = 0.3;  ///< analysis-metrics.md: a sink has alpha_k > 0.3
constexpr int kMaxSide = 16384;         ///< refuse absurd image sizes
constexpr int64_t kStoredRowChunk = 256;  ///< rows read at once from a weights-only trace

bool endsWith(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Parses "a,b,c,d" into four integers.
bool parseRect(const std::string& text, MapRect& r) {
    long long v[4];
    char tail = 0;
    if (std::sscanf(text.c_str(), "%lld,%lld,%lld,%lld%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4) return false;
    r = {v[0], v[1], v[2], v[3]};
    return true;
}

/// Cells partition a span as attentionMap does: cell c starts at floor(c·span/cells).
int64_t cellStart(int c, int64_t span, int cells) { return int64_t(c) * span / cells; }
int cellOf(int64_t i, int64_t span, int cells) { return int(((i + 1) * cells - 1) / span); }

bool parseSize(const std::string& text, int& w, int& h) {
    char tail = 0;
    return std::sscanf(text.c_str(), "%dx%d%c", &w, &h, &tail) == 2;
}

/// Pools a weights-only trace's stored probabilities (optionally with sink columns removed and
/// rows renormalised, the "exclude and renormalise" of analysis-metrics.md).
Result<AttentionMap> storedMap(const Trace& t, int layer, int head, MapRect rect, int width, int height,
                               bool excludeSinks, std::vector<int64_t>& sinks) {
    const int64_t tokens = t.tokens(), hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    if (excludeSinks) {
        std::vector<double> colSum(size_t(tokens), 0.0);
        for (int64_t r0 = 0; r0 < tokens; r0 += kStoredRowChunk) {
            auto rows = t.storedAttention(layer, head, r0, std::min(tokens, r0 + kStoredRowChunk));
            if (!rows) return rows.status();
            for (int64_t c = 0; c < tokens; ++c) colSum[size_t(c)] += rows->col(c).cast<double>().sum();
        }
        const bool causal = t.config(layer).causal;
        for (int64_t c = 0; c < tokens; ++c)
            if (colSum[size_t(c)] / double(causal ? tokens - c : tokens) > kSinkThreshold) sinks.push_back(c);
    }
    AttentionMap m;
    m.rect = rect;
    m.width = int(std::min<int64_t>(width, hk));
    m.height = int(std::min<int64_t>(height, hq));
    std::vector<double> sum(size_t(m.width) * size_t(m.height), 0.0);
    m.max.assign(sum.size(), 0.0f);
    m.allowed.assign(sum.size(), 1.0f);  // the stored matrix carries no mask
    for (int64_t r0 = rect.q0; r0 < rect.q1; r0 += kStoredRowChunk) {
        auto rows = t.storedAttention(layer, head, r0, std::min(rect.q1, r0 + kStoredRowChunk));
        if (!rows) return rows.status();
        MatrixRM& p = *rows;
        for (Eigen::Index r = 0; r < p.rows(); ++r) {
            if (!sinks.empty()) {
                double removed = 0;
                for (int64_t c : sinks) removed += p(r, c), p(r, c) = 0;
                if (removed < 1.0) p.row(r) /= float(1.0 - removed);
            }
            const int y = cellOf(r0 + r - rect.q0, hq, m.height);
            for (int64_t c = rect.k0; c < rect.k1; ++c) {
                const size_t cell = size_t(y) * size_t(m.width) + size_t(cellOf(c - rect.k0, hk, m.width));
                sum[cell] += p(r, c);
                m.max[cell] = std::max(m.max[cell], p(r, c));
            }
        }
    }
    m.mean.resize(sum.size());
    for (int y = 0; y < m.height; ++y)
        for (int x = 0; x < m.width; ++x) {
            const double area = double(cellStart(y + 1, hq, m.height) - cellStart(y, hq, m.height)) *
                                double(cellStart(x + 1, hk, m.width) - cellStart(x, hk, m.width));
            const size_t cell = size_t(y) * size_t(m.width) + size_t(x);
            m.mean[cell] = float(sum[cell] / area);
        }
    return m;
}

std::string toCsv(const AttentionMap& m, const std::vector<float>& values) {
    std::string out;
    const int64_t hk = m.rect.k1 - m.rect.k0;
    for (int x = 0; x < m.width; ++x)  // header: first key of each column
        out += (x ? "," : "") + ("k" + std::to_string(m.rect.k0 + cellStart(x, hk, m.width)));
    out += '\n';
    char buf[32];
    for (int y = 0; y < m.height; ++y) {
        for (int x = 0; x < m.width; ++x) {
            std::snprintf(buf, sizeof buf, "%s%.9g", x ? "," : "", double(values[size_t(y) * size_t(m.width) + size_t(x)]));
            out += buf;
        }
        out += '\n';
    }
    return out;
}

int mapVerb(Args& a) {
    a.description("Renders the attention map of one head over a rectangle of the T x T matrix, pooled to WxH cells "
                  "(mean or max of the probabilities in each cell), as a PNG (colormap, log or linear scale) or a CSV "
                  "(a header row with each column's first key, then H rows of W values). Computed from Q/K in two "
                  "passes without holding T x T; weights-only traces are pooled from their stored probabilities.")
        .positional("trace", "trace file (*.attn.safetensors), or 'demo' for the bundled trace")
        .option("layer", "layer index")
        .option("head", "query head index")
        .option("rect", "q0,q1,k0,k1: queries [q0,q1) x keys [k0,k1) (default: the whole map)")
        .option("size", "output cells WxH (clamped to the rect)", "512x512")
        .option("pool", "mean or max", "mean")
        .option("scale", "colour scale: log or linear", "log")
        .option("colormap", "viridis or magma", "viridis")
        .flag("exclude-sinks", "mask keys with normalized column mean alpha_k > 0.3 and renormalize rows")
        .flag("cpu", "compute on the CPU even when a GPU is present (default: the GPU when one is)")
        .option("o", "output file: .png or .csv");
    if (!a.parse()) return a.exitCode();
    std::string path = a.get("trace");
    if (path == "demo") path = demoTracePath();
    if (path.empty()) return fail(kVerb, "no demo trace found (set ATTNSCOPE_DEMO or install the demo)");
    const std::string out = a.get("o");
    if (out.empty()) return fail(kVerb, "missing -o FILE (.png or .csv)");
    const bool csv = endsWith(out, ".csv");
    if (!csv && !endsWith(out, ".png")) return fail(kVerb, "-o " + out + ": expected a .png or .csv file name");
    if (!a.has("layer") || !a.has("head")) return fail(kVerb, "--layer and --head are required");
    std::string err;
    const auto layer = a.getInt("layer", &err);
    if (!layer) return fail(kVerb, err);
    const auto head = a.getInt("head", &err);
    if (!head) return fail(kVerb, err);
    int width = 0, height = 0;
    if (!parseSize(a.get("size"), width, height) || width < 1 || height < 1 || width > kMaxSide || height > kMaxSide)
        return fail(kVerb, "--size " + a.get("size") + ": expected WxH with 1 <= W, H <= " + std::to_string(kMaxSide));
    const std::string pool = a.get("pool"), scale = a.get("scale");
    if (pool != "mean" && pool != "max") return fail(kVerb, "--pool " + pool + ": expected mean or max");
    if (scale != "log" && scale != "linear") return fail(kVerb, "--scale " + scale + ": expected log or linear");
    auto colormap = parseColormap(a.get("colormap"));
    if (!colormap) return fail(kVerb, "--colormap: " + colormap.message());

    auto opened = Trace::open(path);
    if (!opened) return fail(kVerb, opened.status());
    const Trace& t = **opened;
    const int64_t tokens = t.tokens();
    if (*layer < 0 || *layer >= t.numLayers())
        return fail(kVerb, "--layer " + std::to_string(*layer) + " out of range: the trace has " +
                               std::to_string(t.numLayers()) + " layers (0.." + std::to_string(t.numLayers() - 1) + ")");
    const int heads = t.config(int(*layer)).heads;
    if (*head < 0 || *head >= heads)
        return fail(kVerb, "--head " + std::to_string(*head) + " out of range: layer " + std::to_string(*layer) +
                               " has " + std::to_string(heads) + " heads (0.." + std::to_string(heads - 1) + ")");
    MapRect rect{0, tokens, 0, tokens};
    if (a.has("rect")) {
        if (!parseRect(a.get("rect"), rect))
            return fail(kVerb, "--rect " + a.get("rect") + ": expected four integers q0,q1,k0,k1");
        if (rect.q0 < 0 || rect.q1 <= rect.q0 || rect.q1 > tokens || rect.k0 < 0 || rect.k1 <= rect.k0 || rect.k1 > tokens)
            return fail(kVerb, "--rect " + a.get("rect") + " must lie inside [0," + std::to_string(tokens) +
                                   "] with q0 < q1 and k0 < k1");
    }

    const int L = int(*layer), H = int(*head);
    std::vector<int64_t> sinks;
    std::string backend = "stored probabilities";
    Result<AttentionMap> map = Status(ErrorCode::Internal, "map: not computed");
    if (t.hasQK()) {
        auto q = t.head(L, H, Which::Q);
        if (!q) return fail(kVerb, q.status());
        auto k = t.head(L, H, Which::K);
        if (!k) return fail(kVerb, k.status());
        if (q->nonFinite + k->nonFinite > 0)
            std::fprintf(stderr, "attnscope-cli map: warning: layer %d head %d has %lld NaN/Inf values in Q/K; those "
                                 "cells are drawn magenta\n", L, H, static_cast<long long>(q->nonFinite + k->nonFinite));
        AttentionSpec spec = specForLayer(t.config(L), H);
        if (a.has("exclude-sinks")) {
            auto found = sinkColumns(q->m, k->m, spec, kSinkThreshold, progressLine());
            if (!found) return fail(kVerb, found.status());
            sinks = *found;
            spec.mask.excludedKeys = sinks;
        }
        std::unique_ptr<GpuEngine> gpu;
        if (!a.has("cpu") && q->nonFinite + k->nonFinite == 0) gpu = createGpuEngine();
        if (gpu && gpu->info().available) {
            map = gpu->attentionMap(q->m, k->m, spec, rect, width, height);
            backend = "GPU " + gpu->info().name;
        } else {
            map = attentionMap(q->m, k->m, spec, rect, width, height, progressLine());
            backend = a.has("cpu") ? "CPU (--cpu)" : gpu ? "CPU (no GPU: " + gpu->info().reason + ")" : "CPU (NaN/Inf in Q/K)";
        }
    } else {
        map = storedMap(t, L, H, rect, width, height, a.has("exclude-sinks"), sinks);
    }
    if (!map) return fail(kVerb, map.status());
    if (a.has("exclude-sinks")) {
        std::string list;
        for (size_t i = 0; i < sinks.size() && i < 16; ++i) list += (i ? "," : "") + std::to_string(sinks[i]);
        std::printf("excluded %zu sink key(s)%s%s\n", sinks.size(), sinks.empty() ? "" : ": ", list.c_str());
    }
    const std::vector<float>& values = pool == "max" ? map->max : map->mean;
    Status written;
    if (csv) {
        written = writeFileAtomic(out, toCsv(*map, values));
    } else {
        ColorizeOptions c;
        c.map = *colormap;
        c.scale = scale == "log" ? ColorScale::Log : ColorScale::Linear;
        written = writePng(out, colorize(values, map->width, map->height, c));
    }
    if (!written) return fail(kVerb, written);
    std::printf("wrote %s (%dx%d cells, layer %d head %d, queries [%lld,%lld) x keys [%lld,%lld), %s pooling%s) on %s\n",
                out.c_str(), map->width, map->height, L, H, static_cast<long long>(rect.q0),
                static_cast<long long>(rect.q1), static_cast<long long>(rect.k0), static_cast<long long>(rect.k1),
                pool.c_str(), csv ? "" : (", " + scale + " scale").c_str(), backend.c_str());
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB("map",
                   "map TRACE --layer L --head H [--rect q0,q1,k0,k1] [--size WxH] [--pool mean|max] "
                   "[--scale log|linear] [--colormap viridis|magma] [--exclude-sinks] [--cpu] -o map.png|map.csv",
                   "render one head's pooled attention map (PNG or CSV) from Q/K, never holding T x T", mapVerb);

}  // namespace attnscope::cli
