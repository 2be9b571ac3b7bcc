// attnscope-cli info: what a trace holds (model, shapes, dtypes, sizes) and whether it is valid.
#include <cstdio>
#include <set>

#include "attnscope/json.h"
#include "attnscope/memory.h"
#include "attnscope/trace.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "info";

/// The tensors of a layer by role, present ones only.
std::vector<std::pair<const char*, const TensorView*>> roles(const Trace& t, int layer) {
    const LayerTensors& l = t.layer(layer);
    std::vector<std::pair<const char*, const TensorView*>> out;
    if (t.hasQK()) out = {{"q", &l.q}, {"k", &l.k}, {"v", &l.v}};
    if (l.attn) out.push_back({"attn", &*l.attn});
    if (l.out) out.push_back({"out", &*l.out});
    if (l.sinks) out.push_back({"sinks", &*l.sinks});
    return out;
}

/// Role -> dtypes used by it across layers, in role order q, k, v, attn, out.
std::vector<std::pair<std::string, std::set<std::string>>> dtypesByRole(const Trace& t) {
    std::vector<std::pair<std::string, std::set<std::string>>> out;
    for (const char* role : {"q", "k", "v", "attn", "out", "sinks"}) {
        std::set<std::string> names;
        for (int i = 0; i < t.numLayers(); ++i)
            for (const auto& [r, view] : roles(t, i))
                if (std::string_view(r) == role) names.insert(dtypeName(view->dtype));
        if (!names.empty()) out.emplace_back(role, std::move(names));
    }
    return out;
}

Json shapeJson(const std::vector<int64_t>& shape) {
    Json s = Json::array();
    for (int64_t d : shape) s.push(d);
    return s;
}

Json toJson(const Trace& t, bool scanned) {
    const TraceMetadata& m = t.metadata();
    Json j = Json::object();
    j.set("file", t.path());
    j.set("size_bytes", t.fileSize());
    j.set("format", m.format);
    j.set("version", m.version);
    j.set("model", m.model);
    j.set("source", m.source);
    j.set("kind", traceKindName(m.kind));
    j.set("patch_grid", m.kind == TraceKind::Vision ? Json(Json::Array{Json(m.patchRows), Json(m.patchCols)}) : Json());
    j.set("tokens", t.tokens());
    j.set("text", m.text);
    j.set("has_qkv", t.hasQK());
    Json check = Json::object();  // the capture tool's self-check (null when the trace has none)
    if (m.captureCheck.present) {
        check.set("status", m.captureCheck.status);
        check.set("max_abs_delta", m.captureCheck.maxAbsDelta);
        check.set("compared", m.captureCheck.compared);
        check.set("tolerance", m.captureCheck.tolerance);
        check.set("worst_layer", m.captureCheck.worstLayer);
        check.set("rows_checked", m.captureCheck.rowsChecked);
    }
    j.set("capture_check", m.captureCheck.present ? std::move(check) : Json());
    j.set("capture_check_text", describeCaptureCheck(m.captureCheck));
    j.set("num_layers", t.numLayers());
    Json layers = Json::array();
    for (int i = 0; i < t.numLayers(); ++i) {
        const LayerConfig& c = t.config(i);
        Json l = Json::object();
        l.set("index", i);
        Json settings = layerConfigJson(c);  // a named object: the loop must not outlive a temporary
        for (auto& [k, v] : settings.asObject()) l.set(k, std::move(v));
        Json sinks = Json::array();  // learned sink logits per head (v2), null without
        for (float s : c.sinks) sinks.push(double(s));
        l.set("sinks", c.hasSinks() ? std::move(sinks) : Json());
        Json tensors = Json::object();
        for (const auto& [role, view] : roles(t, i)) {
            Json v = Json::object();
            v.set("dtype", dtypeName(view->dtype));
            v.set("shape", shapeJson(view->shape));
            v.set("bytes", view->bytes);
            tensors.set(role, std::move(v));
        }
        l.set("tensors", std::move(tensors));
        layers.push(std::move(l));
    }
    j.set("layers", std::move(layers));
    Json dtypes = Json::object();
    for (const auto& [role, names] : dtypesByRole(t)) {
        Json list = Json::array();
        for (const auto& n : names) list.push(n);
        dtypes.set(role, std::move(list));
    }
    j.set("dtypes", std::move(dtypes));
    j.set("scanned", scanned);
    Json nonFinite = Json::array();
    for (const auto& n : t.nonFinite()) {
        Json e = Json::object();
        e.set("tensor", n.tensor);
        e.set("nan", n.nan);
        e.set("inf", n.inf);
        nonFinite.push(std::move(e));
    }
    j.set("non_finite", std::move(nonFinite));
    j.set("valid", true);
    Json warnings = Json::array();
    for (const auto& w : t.warnings()) warnings.push(w);
    j.set("warnings", std::move(warnings));
    return j;
}

std::string optionalNumber(double v, const char* format) {
    if (v <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

void printText(const Trace& t, bool scanned) {
    const TraceMetadata& m = t.metadata();
    std::printf("file        %s\n", t.path().c_str());
    std::printf("size        %s (%llu bytes)\n", humanBytes(t.fileSize()).c_str(), (unsigned long long)t.fileSize());
    std::printf("format      %s v%d\n", m.format.c_str(), m.version);
    std::printf("model       %s\n", m.model.empty() ? "-" : m.model.c_str());
    std::printf("source      %s\n", m.source.empty() ? "-" : m.source.c_str());
    if (m.kind == TraceKind::Vision)
        std::printf("kind        vision (patch grid %d×%d)\n", m.patchRows, m.patchCols);
    else
        std::printf("kind        %s\n", traceKindName(m.kind));
    std::printf("tokens      T = %lld\n", (long long)t.tokens());
    std::printf("layers      %d (%s)\n", t.numLayers(), t.hasQK() ? "q/k/v" : "weights only: stored attention");
    std::printf("check       %s\n", describeCaptureCheck(m.captureCheck).c_str());
    std::string dtypes;
    for (const auto& [role, names] : dtypesByRole(t)) {
        dtypes += dtypes.empty() ? "" : ", ";
        dtypes += role + " ";
        for (auto it = names.begin(); it != names.end(); ++it) dtypes += (it == names.begin() ? "" : "/") + *it;
    }
    std::printf("dtypes      %s\n\n", dtypes.c_str());

    std::printf("  layer  heads  kv  head_dim  scale     causal  window  softcap  alibi  positional    tensors\n");
    for (int i = 0; i < t.numLayers(); ++i) {
        const LayerConfig& c = t.config(i);
        std::string tensors;
        for (const auto& [role, view] : roles(t, i)) tensors += std::string(tensors.empty() ? "" : " ") + role;
        std::printf("  %5d  %5d  %2d  %8d  %-8.4g  %-6s  %6s  %7s  %-5s  %-12s  %s\n", i, c.heads, c.kvHeads, c.headDim,
                    c.scale, c.causal ? "yes" : "no", optionalNumber(double(c.slidingWindow), "%.0f").c_str(),
                    optionalNumber(c.softcap, "%g").c_str(), c.alibi ? "yes" : "no", c.positional.c_str(),
                    tensors.c_str());
    }
    for (int i = 0; i < t.numLayers(); ++i) {
        const LayerConfig& c = t.config(i);
        if (!c.hasSinks()) continue;
        std::string logits;
        for (float s : c.sinks) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%s%.4g", logits.empty() ? "" : " ", double(s));
            logits += buf;
        }
        std::printf("  layer %d learned sink logits per head: %s\n", i, logits.c_str());
    }
    std::printf("\n");
    if (!scanned) {
        std::printf("non-finite  not scanned (--no-scan)\n");
    } else if (t.nonFinite().empty()) {
        std::printf("non-finite  none\n");
    } else {
        std::printf("non-finite  NaN/Inf found in %zu tensor(s):\n", t.nonFinite().size());
        for (const auto& n : t.nonFinite())
            std::printf("              %-20s %lld NaN, %lld Inf\n", n.tensor.c_str(), (long long)n.nan, (long long)n.inf);
    }
    std::printf("validation  OK (%zu warning%s)\n", t.warnings().size(), t.warnings().size() == 1 ? "" : "s");
    for (const auto& w : t.warnings()) std::printf("  warning: %s\n", w.c_str());
}

int infoVerb(Args& a) {
    a.description("Prints what a trace holds: model, source, kind, T, per-layer heads / kv heads / head dim / scale / "
                  "causal / window / softcap / ALiBi / positional encoding, dtypes, file size, NaN/Inf counts, and "
                  "the validation result with warnings. Exit 0 when the trace is valid, 1 with a one-line error "
                  "naming the file otherwise.")
        .positional("trace", "trace file (*.attn.safetensors), or 'demo' for the bundled trace")
        .flag("json", "print a JSON object instead of text")
        .flag("no-scan", "skip the NaN/Inf scan (opens without reading the tensor data)")
        .flag("no-progress", "no progress line on stderr");
    if (!a.parse()) return a.exitCode();
    std::string path = a.get("trace");
    if (path == "demo") path = demoTracePath();
    if (path.empty()) return fail(kVerb, "no demo trace found (set ATTNSCOPE_DEMO or install the demo)");

    OpenOptions options;
    options.scanValues = !a.has("no-scan");
    auto trace = Trace::open(path, options, progressLine(options.scanValues && !a.has("no-progress")));
    if (!trace) {
        if (a.has("json")) {
            Json j = Json::object();
            j.set("file", path);
            j.set("valid", false);
            j.set("error_code", errorCodeName(trace.status().code()));
            j.set("error", trace.message());
            std::printf("%s\n", j.dump(2).c_str());
        }
        return fail(kVerb, trace.status());
    }
    if (a.has("json")) std::printf("%s\n", toJson(**trace, options.scanValues).dump(2).c_str());
    else printText(**trace, options.scanValues);
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB("info", "info TRACE [--json] [--no-scan] [--no-progress]",
                   "describe a trace (model, layers, heads, T, dtypes, size) and validate it", infoVerb);

}  // namespace attnscope::cli
