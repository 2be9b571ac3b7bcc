// attnscope-cli analyze: sinks, sparsity, head roles and head similarity for every head of a trace
// (core/include/attnscope/analysis.h; definitions in shared/docs/analysis-metrics.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "attnscope/analysis.h"
#include "attnscope/gpu.h"
#include "attnscope/trace.h"
#include "cli.h"
#include "vision_output.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "analyze";
constexpr size_t kMaxListedSinks = 4;  // hidden-sink positions shown per head in the table

std::string rolesText(const LayerSummary& s) {
    std::string out;
    for (const auto& [label, n] : s.roles) out += (out.empty() ? "" : " ") + label + ":" + std::to_string(n);
    return out;
}

std::string sinksText(const SinkInfo& s) {
    std::string out;
    for (size_t i = 0; i < s.hiddenSinks.size() && i < kMaxListedSinks; ++i)
        out += (i ? "," : "") + std::to_string(s.hiddenSinks[i]);
    if (s.hiddenSinks.size() > kMaxListedSinks) out += ",…";
    return out.empty() ? "-" : out;
}

void printSummary(const ModelAnalysis& m, const AnalyzeOptions& o, double seconds) {
    int sinkHeads = 0;
    for (const auto& h : m.heads) sinkHeads += h.sinks.firstTokenSink;
    std::printf("trace %s (model %s, T=%lld): %zu heads in %zu layers analysed in %.2f s%s\n", m.tracePath.c_str(),
                m.model.empty() ? "?" : m.model.c_str(), static_cast<long long>(m.tokens), m.heads.size(),
                m.layers.size(), seconds, o.excludeSinks ? " (sinks excluded and renormalized)" : "");
    std::printf("model sink rate %.1f%% (%d of %zu heads with alpha_0 > %.2f)\n\n", m.sinkRate, sinkHeads,
                m.heads.size(), o.head.sinks.firstTokenEps);
    std::printf("%5s %5s %7s %6s %9s %7s %9s  %s\n", "layer", "heads", "sink%", "hidden", "H_median", "H_norm",
                "density", "heads by role");
    for (const auto& s : m.layers)
        std::printf("%5d %5d %7.1f %6d %9.3f %7.3f %9.3f  %s\n", s.layer, s.heads, s.sinkRate, s.hiddenSinkHeads,
                    s.medianEntropy, s.medianEntropyNormalized, s.density, rolesText(s).c_str());
    std::printf(
        "(H_median: median over heads of the mean entropy in nats; density: kept/allowed blocks at "
        "gamma %.2f, block %lld)\n",
        o.summaryGamma, static_cast<long long>(o.summaryBlockSize));
}

void printHeads(const ModelAnalysis& m, const AnalyzeOptions& o) {
    std::printf("\n%5s %4s %-15s %6s %5s %-12s %7s %5s %5s %5s %7s  %s\n", "layer", "head", "role", "alpha0", "sink",
                "hidden", "entropy", "prev", "ind", "dup", "density", "evidence");
    for (const auto& h : m.heads) {
        const GammaCoverage* c = h.coverage(o.summaryBlockSize, o.summaryGamma);
        std::printf(
            "%5d %4d %-15s %6.3f %5s %-12s %7.3f %5.2f %5.2f %5.2f %7.3f  %s\n", h.layer, h.head, h.role.label.c_str(),
            h.sinks.alpha0, h.sinks.firstTokenSink ? "yes" : "no", sinksText(h.sinks).c_str(), h.stats.entropy,
            h.roles.previousToken,
            h.roles.repeatRows >= o.head.roles.minRepeatRows ? h.roles.inductionRepeat : h.roles.inductionMatched,
            h.roles.duplicateMatched, c ? c->density : 0.0, h.role.evidence.c_str());
    }
}

/// Heads with a learned sink logit (GPT-OSS): the share of each head's attention mass the sink
/// takes (the keys' probabilities sum to the rest).
void printLearnedSinks(const ModelAnalysis& m) {
    if (std::none_of(m.heads.begin(), m.heads.end(), [](const HeadAnalysis& h) { return h.sinks.learnedSink; })) return;
    std::printf(
        "\nlearned sinks: share of each head's attention mass taken by its sink logit (mean over rows "
        "of exp(sink - L))\n%5s %4s %8s %7s\n",
        "layer", "head", "logit", "share");
    for (const auto& h : m.heads)
        if (h.sinks.learnedSink)
            std::printf("%5d %4d %8.3f %7.3f\n", h.layer, h.head, h.sinks.learnedSinkLogit, h.sinks.learnedSinkShare);
}

void printTimings(const ModelAnalysis& m) {
    double read = 0, upload = 0, compute = 0, finish = 0;
    std::printf("%5s %4s %9s %9s %10s %9s\n", "layer", "on", "read ms", "upload ms", "compute ms", "finish ms");
    for (const auto& t : m.timings) {
        std::printf("%5d %4s %9.1f %9.1f %10.1f %9.1f", t.layer, t.gpu ? "GPU" : "CPU", t.readMs, t.uploadMs,
                    t.computeMs, t.finishMs);
        for (const auto& [name, ms] : t.passes) std::printf("  %s %.1f", name.c_str(), ms);
        std::printf("\n");
        read += t.readMs, upload += t.uploadMs, compute += t.computeMs, finish += t.finishMs;
    }
    std::printf(
        "total: read %.1f ms, upload %.1f ms (both overlap the previous layer's compute on the GPU), "
        "compute %.1f ms, finish %.1f ms\n\n",
        read, upload, compute, finish);
}

/// The command-line step (Verb::parse): every option that needs no trace, into `o` (--layers is
/// read once the trace is open: its bounds are the trace's).
int parseAnalyzeArgs(Args& a, AnalyzeOptions& o) {
    a.description(
         "Measures every head of TRACE two-pass from Q/K/V (never T x T): entropy, attention "
         "distance, first-token and hidden sinks, block sparsity at gamma 0.5/0.9/0.95/0.99, "
         "candidate masks (window, sink+window, vertical-slash, top-k blocks) with their output "
         "error, previous-token / duplicate / induction scores, a role label per head and head "
         "similarity. Prints a per-layer summary and a per-head table. On a vision trace also each head's mean "
         "attention distance in patches and the prefix tokens' (CLS, registers) share of the patch queries' "
         "attention (JSON key 'vision').")
        .positional("TRACE", "*.attn.safetensors trace with Q/K/V, or 'demo' / 'demo:vision' for the bundled traces")
        .option("layers", "layers to analyse, e.g. 0,3-5 (default: all)")
        .optionalValue("json", "FILE",
                       "write every result (vectors and block matrices included) as JSON to FILE; without FILE (or "
                       "'-') to stdout instead of the tables")
        .flag("exclude-sinks", "detect sinks, then measure everything with them masked out and rows renormalized")
        .option("gamma", "coverage reported in the summary", "0.9")
        .option("block", "block size of the summary density", "128")
        .option("window", "sliding window W of the candidate masks", "512")
        .option("block-sizes", "block sizes of the block mass matrices (the first is also the top-k mask's)", "64,128")
        .flag("exclude-bos", "TransformerLens exclude_bos for the role scores")
        .flag("exclude-current-token", "TransformerLens exclude_current_token for the role scores")
        .flag("all", "also measure the candidate masks and head similarity without --json")
        .flag("no-similarity", "skip the per-layer head similarity pass")
        .flag("no-heads", "print only the per-layer summary")
        .flag("cpu",
              "run on the CPU even when a GPU is present (default: the GPUs' tensor cores when there are any; "
              "layers are spread over every visible GPU)")
        .flag("allow-long", "run CPU work estimated at over an hour (refused by default, with the estimate)")
        .flag("timing", "print per-layer read / upload / compute / finish milliseconds")
        .flag("no-progress", "no progress line on stderr");
    if (!a.parse()) return a.exitCode();
    std::string err;
    auto gamma = a.getDouble("gamma", &err);
    if (!gamma) return fail(kVerb, err);
    if (!(*gamma > 0 && *gamma <= 1)) return fail(kVerb, "--gamma must be in (0, 1], got " + a.get("gamma"));
    o.summaryGamma = *gamma;
    auto block = a.getInt("block", &err);
    if (!block) return fail(kVerb, err);
    if (*block <= 0) return fail(kVerb, "--block must be > 0, got " + a.get("block"));
    o.summaryBlockSize = *block;
    auto window = a.getInt("window", &err);
    if (!window) return fail(kVerb, err);
    if (*window <= 0) return fail(kVerb, "--window must be > 0, got " + a.get("window"));
    o.head.masks.window = *window;
    {
        std::vector<int64_t> sizes;
        const std::string list = a.get("block-sizes");
        size_t p = 0;
        while (p <= list.size()) {
            const size_t e = std::min(list.find(',', p), list.size());
            const std::string item = list.substr(p, e - p);
            char* end = nullptr;
            const long long b = std::strtoll(item.c_str(), &end, 10);
            if (item.empty() || *end != '\0' || b <= 0 || b > (1LL << 30))
                return fail(kVerb, "--block-sizes " + list + ": expected positive integers separated by commas");
            sizes.push_back(b);
            p = e + 1;
        }
        o.head.blockSizes = sizes;
        o.head.masks.topKBlockSize = sizes.front();
    }
    o.head.masks.sinkWindow = *window;
    o.excludeSinks = a.has("exclude-sinks");
    // The tables print sinks, entropy, roles and density; candidate masks and head similarity
    // (about 40% of the time) only reach the JSON, so they are measured when it is written.
    const bool everything = a.has("json") || a.has("all");
    if (a.has("json") && a.get("json") != "-")  // refuse an unwritable --json FILE before the analysis
        if (Status s = checkOutputFile(a.get("json")); !s) return fail(kVerb, s);
    o.similarity = everything && !a.has("no-similarity");
    o.head.masks.enabled = everything;
    o.head.roles.excludeBos = a.has("exclude-bos");
    o.head.roles.excludeCurrentToken = a.has("exclude-current-token");
    return kRun;
}

int analyzeVerb(Args& a, AnalyzeOptions& o) {
    const bool everything = a.has("json") || a.has("all");
    auto trace = openTraceArg(a.get("TRACE"));
    if (!trace) return fail(kVerb, trace.status());
    const Trace& t = **trace;
    if (a.has("layers")) {
        std::string err;
        auto layers = parseIndexList(a.get("layers"), t.numLayers(), "--layers", &err);
        if (!layers) return fail(kVerb, err);
        o.layers = *layers;
    }

    // Every visible GPU: layers are dealt to them in turn (one thread per GPU).
    std::vector<std::unique_ptr<GpuEngine>> gpus;
    std::unique_ptr<GpuEngine> gpu;
    if (!a.has("cpu")) {
        gpus = createGpuEngines();
        if (!gpus.empty()) {
            o.gpu = gpus.front().get();
            for (size_t g = 1; g < gpus.size(); ++g) o.moreGpus.push_back(gpus[g].get());
        } else {
            gpu = createGpuEngine();  // says why there is none
        }
    }
    if (!o.gpu && t.hasQK()) {
        // Score passes per head on the CPU: lse, then probabilities with P·V (about two); the
        // candidate masks add about three; --exclude-sinks analyses every head twice.
        const double passes = (3.0 + (everything ? 3.0 : 0.0)) * (o.excludeSinks ? 2.0 : 1.0);
        double products = 0;
        int64_t headDim = 0;
        for (int l = 0; l < t.numLayers(); ++l) {
            if (!o.layers.empty() && std::find(o.layers.begin(), o.layers.end(), l) == o.layers.end()) continue;
            const LayerConfig& c = t.config(l);
            products += passes * c.heads * scoreProducts(t.tokens(), t.tokens(), c.headDim, c.causal);
            headDim = std::max<int64_t>(headDim, c.headDim);
        }
        if (int rc = checkCpuWork(kVerb, products, headDim, a.has("allow-long"),
                                  "analyzing " + std::to_string(t.tokens()) + " tokens");
            rc != kRun)
            return rc;
    }
    const VisionOptions visionOptions{o.layers};
    if (int rc = checkVisionWork(kVerb, t, visionOptions, a.has("allow-long")); rc != kRun) return rc;
    const auto start = std::chrono::steady_clock::now();
    auto model = analyzeTrace(t, o, progressLine(!a.has("no-progress")));
    if (!model) return fail(kVerb, model.status());
    auto vision = analyzeIfVision(t, visionOptions, progressLine(!a.has("no-progress")));
    if (!vision) return fail(kVerb, vision.status());
    Json json = toJson(*model);
    if (*vision) json.set("vision", toJson(**vision));  // vision traces only
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (a.get("json") == "-") {  // JSON alone on stdout, as `info --json`; notes go to stderr
        for (const auto& n : model->notes) std::fprintf(stderr, "note: %s\n", n.c_str());
        std::printf("%s\n", json.dump(1).c_str());
        return 0;
    }
    std::printf("backend: %s%s\n", model->backend.c_str(),
                a.has("cpu")
                    ? " (--cpu)"
                    : (gpu && !gpu->info().available ? (" (no GPU: " + gpu->info().reason + ")").c_str() : ""));
    for (const auto& n : model->notes) std::printf("note: %s\n", n.c_str());
    if (a.has("timing")) printTimings(*model);
    printSummary(*model, model->options, seconds);
    if (!everything) std::printf("(candidate masks and head similarity: with --json FILE or --all)\n");
    if (!a.has("no-heads")) printHeads(*model, model->options);
    printLearnedSinks(*model);
    if (*vision) printVisionTable(**vision);
    if (a.has("json")) {
        if (Status s = writeFileAtomic(a.get("json"), json.dump(1)); !s.ok()) return fail(kVerb, s);
        std::printf("\nwrote %s\n", a.get("json").c_str());
    }
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB_PARSED(
    "analyze",
    "analyze TRACE [--layers 0,3-5] [--json[=FILE]] [--exclude-sinks] [--gamma 0.9] [--block 128] "
    "[--window 512] [--block-sizes 64,128] [--exclude-bos] [--exclude-current-token] [--all] "
    "[--no-similarity] [--no-heads] [--cpu] [--allow-long] [--timing] [--no-progress]",
    "sinks, sparsity, head roles and head similarity for every head, with a per-layer summary", AnalyzeOptions,
    parseAnalyzeArgs, analyzeVerb);
}  // namespace attnscope::cli
