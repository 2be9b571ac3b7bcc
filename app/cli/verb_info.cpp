// attnscope-cli info: what a trace holds (model, shapes, dtypes, sizes) and whether it is valid.
#include <cstdio>
#include <set>

#include "attnscope/json.h"
#include "attnscope/memory.h"
#include "attnscope/trace.h"
#include "attnscope/demo_trace.h"
#include "attnscope/trace_summary.h"
#include "attnscope/vision.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "info";
constexpr size_t kMaxListedPrefix = 8;  ///< prefix token names shown in the layout line

std::string optionalNumber(double v, const char* format) {
    if (v <= 0) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

/// The prefix/patch layout (docs/trace-format.md, "Vision") and the input image of a vision trace.
void printVisionLayout(const Trace& t) {
    auto layout = visionLayout(t);
    if (!layout) return;
    std::string names;
    for (int64_t i = 0; i < layout->prefix && i < int64_t(kMaxListedPrefix); ++i)
        names += (i ? " " : "") + t.metadata().tokens[size_t(i)];
    if (layout->prefix > int64_t(kMaxListedPrefix)) names += " …";
    std::printf("layout      %lld prefix token%s%s%s%s, then patches p0,0 … p%d,%d at positions %lld..%lld\n",
                static_cast<long long>(layout->prefix), layout->prefix == 1 ? "" : "s", names.empty() ? "" : " (",
                names.c_str(), names.empty() ? "" : ")", layout->rows - 1, layout->cols - 1,
                static_cast<long long>(layout->prefix), static_cast<long long>(layout->tokens - 1));
    if (const TensorView* img = t.imageTensor())
        std::printf("image       %lld×%lld RGB (width × height), %.4g×%.4g pixels per patch\n",
                    static_cast<long long>(img->shape[1]), static_cast<long long>(img->shape[0]),
                    double(img->shape[1]) / layout->cols, double(img->shape[0]) / layout->rows);
    else
        std::printf("image       none (maps show the patch grid alone)\n");
}

void printText(const Trace& t, bool scanned) {
    const TraceMetadata& m = t.metadata();
    std::printf("file        %s\n", t.path().c_str());
    std::printf("size        %s (%llu bytes)\n", humanBytes(t.fileSize()).c_str(), (unsigned long long)t.fileSize());
    std::printf("format      %s v%d\n", m.format.c_str(), m.version);
    std::printf("model       %s\n", m.model.empty() ? "-" : m.model.c_str());
    std::printf("source      %s\n", m.source.empty() ? "-" : m.source.c_str());
    if (m.kind == TraceKind::Vision) {
        std::printf("kind        vision (patch grid %d×%d)\n", m.patchRows, m.patchCols);
        printVisionLayout(t);
    } else
        std::printf("kind        %s\n", traceKindName(m.kind));
    std::printf("tokens      T = %lld\n", (long long)t.tokens());
    std::printf("layers      %d (%s)\n", t.numLayers(), t.hasQK() ? "q/k/v" : "weights only: stored attention");
    std::printf("check       %s\n", describeCaptureCheck(m.captureCheck).c_str());
    std::string dtypes;
    for (const auto& [role, names] : traceDtypesByRole(t)) {
        dtypes += dtypes.empty() ? "" : ", ";
        dtypes += role + " ";
        for (auto it = names.begin(); it != names.end(); ++it) dtypes += (it == names.begin() ? "" : "/") + *it;
    }
    std::printf("dtypes      %s\n\n", dtypes.c_str());

    std::printf("  layer  heads  kv  head_dim  scale     causal  window  softcap  alibi  positional    tensors\n");
    for (int i = 0; i < t.numLayers(); ++i) {
        const LayerConfig& c = t.config(i);
        std::string tensors;
        for (const auto& [role, view] : traceTensorRoles(t, i))
            tensors += std::string(tensors.empty() ? "" : " ") + role;
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
    for (int i = 0; i < t.numLayers(); ++i) {
        const LayerConfig& c = t.config(i);
        if (c.alibiSlopes.empty()) continue;
        std::string slopes;
        for (float s : c.alibiSlopes) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "%s%.4g", slopes.empty() ? "" : " ", double(s));
            slopes += buf;
        }
        std::printf("  layer %d ALiBi slopes per head (the model's own): %s\n", i, slopes.c_str());
    }
    std::printf("\n");
    if (!scanned) {
        std::printf("non-finite  not scanned (--no-scan)\n");
    } else if (t.nonFinite().empty()) {
        std::printf("non-finite  none\n");
    } else {
        std::printf("non-finite  NaN/Inf found in %zu tensor(s):\n", t.nonFinite().size());
        for (const auto& n : t.nonFinite())
            std::printf("              %-20s %lld NaN, %lld Inf\n", n.tensor.c_str(), (long long)n.nan,
                        (long long)n.inf);
    }
    std::printf("validation  OK (%zu warning%s)\n", t.warnings().size(), t.warnings().size() == 1 ? "" : "s");
    for (const auto& w : t.warnings()) std::printf("  warning: %s\n", w.c_str());
}

/// The command-line step (Verb::parse).
int parseInfoArgs(Args& a) {
    a.description(
         "Prints what a trace holds: model, source, kind, T, per-layer heads / kv heads / head dim / scale / "
         "causal / window / softcap / ALiBi / positional encoding, dtypes, file size, NaN/Inf counts, and "
         "the validation result with warnings. Exit 0 when the trace is valid, 1 with a one-line error "
         "naming the file otherwise.")
        .positional("trace", "trace file (*.attn.safetensors), or 'demo' / 'demo:vision' for the bundled traces")
        .flag("json", "print a JSON object instead of text (camelCase keys, docs/json.md)")
        .flag("no-scan", "skip the NaN/Inf scan (opens without reading the tensor data)")
        .flag("no-progress", "no progress line on stderr");
    if (!a.parse()) return a.exitCode();
    return kRun;
}

int infoVerb(Args& a) {
    if (int rc = parseInfoArgs(a); rc != kRun) return rc;
    std::string path = a.get("trace");
    if (isDemoName(path)) path = findDemoTrace(path);
    if (path.empty())
        return fail(kVerb, a.get("trace") + ": no such demo trace found (set ATTNSCOPE_DEMO or install the demo)");

    OpenOptions options;
    options.scanValues = !a.has("no-scan");
    auto trace = Trace::open(path, options, progressLine(options.scanValues && !a.has("no-progress")));
    if (!trace) {
        if (a.has("json")) {
            Json j = Json::object();
            j.set("path", path);
            j.set("valid", false);
            j.set("errorCode", errorCodeName(trace.status().code()));
            j.set("error", trace.message());
            std::printf("%s\n", j.dump(2).c_str());
        }
        return fail(kVerb, trace.status());
    }
    if (a.has("json"))
        std::printf("%s\n",
                    traceSummaryJson(**trace, {.details = true, .scanned = options.scanValues}).dump(2).c_str());
    else
        printText(**trace, options.scanValues);
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB_PARSE("info", "info TRACE [--json] [--no-scan] [--no-progress]",
                         "describe a trace (model, layers, heads, T, dtypes, size) and validate it", infoVerb,
                         parseInfoArgs);

}  // namespace attnscope::cli
