// attnscope-cli map: a pooled attention map of one head as PNG or CSV, computed two-pass from
// Q/K (never T×T), or pooled from the stored probabilities of a weights-only trace.
#include <cmath>
#include <cstdio>
#include <string>

#include "attnscope/attention.h"
#include "attnscope/image.h"
#include "attnscope/trace.h"
#include "attnscope/gpu.h"
#include "attnscope/map_service.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "map";

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

std::string toCsv(const AttentionMap& m, const std::vector<float>& values) {
    std::string out;
    const int64_t hk = m.rect.k1 - m.rect.k0;
    for (int x = 0; x < m.width; ++x)  // header: first key of each column
        out += (x ? "," : "") + ("k" + std::to_string(m.rect.k0 + cellStart(x, hk, m.width)));
    out += '\n';
    char buf[32];
    for (int y = 0; y < m.height; ++y) {
        for (int x = 0; x < m.width; ++x) {
            std::snprintf(buf, sizeof buf, "%s%.9g", x ? "," : "",
                          double(values[size_t(y) * size_t(m.width) + size_t(x)]));
            out += buf;
        }
        out += '\n';
    }
    return out;
}

struct MapArgs {
    std::string out;
    bool csv = false;
    long long layer = 0, head = 0;
    int width = 0, height = 0;
    std::string pool, scale;
    Colormap colormap{};
    bool hasRect = false;
    MapRect rect{};  ///< as given (checked against the trace's T once it is open)
};

/// The command-line step (Verb::parse): everything that needs no trace.
int parseMapArgs(Args& a, MapArgs& m) {
    a.description(
         "Renders the attention map of one head over a rectangle of the T x T matrix, pooled to WxH cells "
         "(mean or max of the probabilities in each cell), as a PNG (colormap, log or linear scale) or a CSV "
         "(a header row with each column's first key, then H rows of W values). Computed from Q/K in two "
         "passes without holding T x T; weights-only traces are pooled from their stored probabilities.")
        .positional("trace", "trace file (*.attn.safetensors), or 'demo' for the bundled trace")
        .option("layer", "layer index")
        .option("head", "query head index")
        .mapCellOptions()
        .option("scale", "colour scale: log or linear", "log")
        .option("colormap", "viridis or magma", "viridis")
        .flag("exclude-sinks", "mask keys with normalized column mean alpha_k > 0.3 and renormalize rows")
        .flag("cpu", "compute on the CPU even when a GPU is present (default: the GPU when one is)")
        .flag("allow-long", "run CPU work estimated at over an hour (refused by default, with the estimate)")
        .noProgressFlag()
        .option("o", "output file: .png or .csv");
    if (!a.parse()) return a.exitCode();
    m.out = a.get("o");
    if (m.out.empty()) return fail(kVerb, "missing -o FILE (.png or .csv)");
    m.csv = endsWith(m.out, ".csv");
    if (!m.csv && !endsWith(m.out, ".png")) return fail(kVerb, "-o " + m.out + ": expected a .png or .csv file name");
    if (Status s = checkOutputFile(m.out); !s) return fail(kVerb, s);  // before the map is computed
    if (!a.has("layer") || !a.has("head")) return fail(kVerb, "--layer and --head are required");
    std::string err;
    const auto layer = a.getInt("layer", &err);
    if (!layer) return fail(kVerb, err);
    const auto head = a.getInt("head", &err);
    if (!head) return fail(kVerb, err);
    m.layer = *layer, m.head = *head;
    const auto size = parseMapSize(a.get("size"), kMaxMapSide, &err);
    if (!size) return fail(kVerb, err);
    m.width = size->first, m.height = size->second;
    m.pool = a.get("pool"), m.scale = a.get("scale");
    if (m.pool != "mean" && m.pool != "max") return fail(kVerb, "--pool " + m.pool + ": expected mean or max");
    if (m.scale != "log" && m.scale != "linear") return fail(kVerb, "--scale " + m.scale + ": expected log or linear");
    auto colormap = parseColormap(a.get("colormap"));
    if (!colormap) return fail(kVerb, "--colormap: " + colormap.message());
    m.colormap = *colormap;
    m.hasRect = a.has("rect");
    if (m.hasRect && !parseRect(a.get("rect"), m.rect))
        return fail(kVerb, "--rect " + a.get("rect") + ": expected four integers q0,q1,k0,k1");
    return kRun;
}

int mapVerb(Args& a, MapArgs& p) {
    const std::string& out = p.out;
    const bool csv = p.csv;
    const auto layer = std::optional<long long>(p.layer), head = std::optional<long long>(p.head);
    const int width = p.width, height = p.height;
    const std::string pool = p.pool, scale = p.scale;

    auto opened = openTraceArg(a.get("trace"));
    if (!opened) return fail(kVerb, opened.status());
    const Trace& t = **opened;
    const int64_t tokens = t.tokens();
    if (*layer < 0 || *layer >= t.numLayers())
        return fail(kVerb, "--layer " + std::to_string(*layer) + " out of range: the trace has " +
                               std::to_string(t.numLayers()) + " layers (0.." + std::to_string(t.numLayers() - 1) +
                               ")");
    const int heads = t.config(int(*layer)).heads;
    if (*head < 0 || *head >= heads)
        return fail(kVerb, "--head " + std::to_string(*head) + " out of range: layer " + std::to_string(*layer) +
                               " has " + std::to_string(heads) + " heads (0.." + std::to_string(heads - 1) + ")");
    MapRect rect{0, tokens, 0, tokens};
    if (p.hasRect) {
        rect = p.rect;
        if (rect.q0 < 0 || rect.q1 <= rect.q0 || rect.q1 > tokens || rect.k0 < 0 || rect.k1 <= rect.k0 ||
            rect.k1 > tokens)
            return fail(kVerb, "--rect " + a.get("rect") + " must lie inside [0," + std::to_string(tokens) +
                                   "] with q0 < q1 and k0 < k1");
    }

    MapRequest request;
    request.layer = int(*layer);
    request.head = int(*head);
    request.rect = rect;
    request.width = width;
    request.height = height;
    request.excludeSinks = a.has("exclude-sinks");
    // The caller picks the backend: the GPU unless --cpu, or none is present.
    std::unique_ptr<GpuEngine> gpu;
    if (!a.has("cpu") && t.hasQK()) gpu = createGpuEngine();
    if ((!gpu || !gpu->info().available) && t.hasQK()) {
        // Pass 1 over every key of the rect's rows (their lse), pass 2 over the rect.
        const LayerConfig& c = t.config(request.layer);
        const int64_t rows = rect.q1 - rect.q0;
        if (int rc = checkCpuWork(
                kVerb, cpuMapScoreProducts(t, request), c.headDim, a.has("allow-long"),
                "a map over " + std::to_string(rows) + " x " + std::to_string(rect.k1 - rect.k0) + " pairs");
            rc != kRun)
            return rc;
    }
    HeadCache cache(*opened, 1);
    auto map = headMap(cache, request, progressLine(!a.has("no-progress")), gpu.get());
    if (!map) return fail(kVerb, map.status());
    if (map->nonFinite > 0)
        std::fprintf(stderr,
                     "attnscope-cli map: warning: layer %d head %d has %lld NaN/Inf values in Q/K; those "
                     "cells are drawn magenta\n",
                     request.layer, request.head, static_cast<long long>(map->nonFinite));
    std::string backend = map->backendLabel;
    if (map->backend == MapBackend::Cpu && backend == "CPU")
        backend = a.has("cpu") ? "CPU (--cpu)" : gpu ? "CPU (no GPU: " + gpu->info().reason + ")" : "CPU";
    const std::vector<int64_t>& sinks = map->sinks;
    if (a.has("exclude-sinks")) {
        std::string list;
        for (size_t i = 0; i < sinks.size() && i < 16; ++i) list += (i ? "," : "") + std::to_string(sinks[i]);
        std::printf("excluded %zu sink key(s)%s%s\n", sinks.size(), sinks.empty() ? "" : ": ", list.c_str());
    }
    const AttentionMap& m = map->map;
    const std::vector<float>& values = pool == "max" ? m.max : m.mean;
    Status written;
    if (csv) {
        written = writeFileAtomic(out, toCsv(m, values));
    } else {
        ColorizeOptions c;
        c.map = p.colormap;
        c.scale = scale == "log" ? ColorScale::Log : ColorScale::Linear;
        written = writePng(out, colorize(values, m.width, m.height, c));
    }
    if (!written) return fail(kVerb, written);
    std::printf(
        "wrote %s (%dx%d cells, layer %d head %d, queries [%lld,%lld) x keys [%lld,%lld), %s pooling%s) on %s\n",
        out.c_str(), m.width, m.height, request.layer, request.head, static_cast<long long>(rect.q0),
        static_cast<long long>(rect.q1), static_cast<long long>(rect.k0), static_cast<long long>(rect.k1), pool.c_str(),
        csv ? "" : (", " + scale + " scale").c_str(), backend.c_str());
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB_PARSED(
    "map",
    "map TRACE --layer L --head H [--rect q0,q1,k0,k1] [--size N|WxH] [--pool mean|max] "
    "[--scale log|linear] [--colormap viridis|magma] [--exclude-sinks] [--cpu] [--allow-long] [--no-progress] "
    "-o map.png|map.csv",
    "render one head's pooled attention map (PNG or CSV) from Q/K, never holding T x T", MapArgs, parseMapArgs,
    mapVerb);

}  // namespace attnscope::cli
