// attnscope-cli profile: attention variants side by side (CUPTI on the GPU, wall clock on the CPU),
// with accuracy on the data, exported as JSON, CSV and a Perfetto timeline.
#include <cstdio>

#include "attnscope/profiler.h"
#include "attnscope/trace.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "profile";
constexpr const char* kDefaultVariants = "causal,sliding:1024,alibi,softcap:30,document:8,linear";
constexpr int kOverheadRounds = 7;
constexpr int kOverheadReps = 50;

struct Parsed {
    ProfileRequest request;
    std::string json, csv, perfetto;
    bool progress = true;
};

int parseRequest(Args& a, Parsed& out) {
    std::string err;
    ProfileRequest& r = out.request;
    GpuDType dtype = GpuDType::BF16;
    if (a.get("dtype") == "f16")
        dtype = GpuDType::F16;
    else if (a.get("dtype") != "bf16")
        return fail(kVerb, "--dtype expects bf16 or f16, got '" + a.get("dtype") + "'");
    if (a.has("trace") == a.has("shape"))
        return fail(kVerb, "give either TRACE (with --layer/--head; 'demo' for the bundled trace) or --shape B,H,T,D");
    if (a.has("trace")) {
        ShapeSource s;  // its trace is opened by the verb, after the command line is checked
        auto layer = a.getInt("layer", &err);
        if (!layer) return fail(kVerb, err);
        s.layer = int(*layer);
        if (a.get("head") == "all")
            s.head = -1;
        else {
            auto head = a.getInt("head", &err);
            if (!head || *head < 0) return fail(kVerb, err.empty() ? "--head expects a head index or 'all'" : err);
            s.head = int(*head);
        }
        s.dtype = dtype;
        r.shapes.push_back(s);
    } else {
        for (const auto& text : splitList(a.get("shape"), '/')) {
            auto s = parseShape(text);
            if (!s) return fail(kVerb, s.status());
            s->dtype = dtype;
            auto seed = a.getInt("seed", &err);
            if (!seed) return fail(kVerb, err);
            s->seed = uint64_t(*seed);
            r.shapes.push_back(*s);
        }
        if (r.shapes.empty())  // "--shape /" or "--shape ''": --overhead would read a shape that is not there
            return fail(kVerb,
                        "--shape '" + a.get("shape") + "': expected B,H,T,D or B,H,Hkv,T,D (several separated by '/')");
    }
    r.variants = splitVariantList(a.get("variants"));  // commas inside an expr: program's calls stay
    r.dense = a.get("dense");
    if (a.has("cold") && a.has("hot")) return fail(kVerb, "--cold and --hot exclude each other");
    r.cold = a.has("cold");
    r.metrics = a.has("metrics");
    if (a.has("cpu") && a.has("gpu")) return fail(kVerb, "--cpu and --gpu exclude each other");
    r.backend = a.has("cpu") ? BackendChoice::Cpu : a.has("gpu") ? BackendChoice::Gpu : BackendChoice::Auto;
    r.accuracy = !a.has("no-accuracy");
    auto warmup = a.getInt("warmup", &err);
    auto minS = a.getInt("min-samples", &err);
    auto maxS = a.getInt("max-samples", &err);
    auto target = a.getDouble("target-rsd", &err);
    auto timeout = a.getDouble("timeout", &err);
    auto rows = a.getInt("accuracy-rows", &err);
    if (!warmup || !minS || !maxS || !target || !timeout || !rows) return fail(kVerb, err);
    r.warmup = int(*warmup);
    r.stop.minSamples = int(*minS);
    r.stop.maxSamples = int(*maxS);
    r.stop.targetRelStdDev = *target;
    r.stop.timeoutSeconds = *timeout;
    r.accuracyRows = *rows;
    out.json = a.get("json");
    out.csv = a.get("csv");
    out.perfetto = a.get("perfetto");
    out.progress = !a.has("no-progress");
    return kRun;
}

int runOverhead(const Parsed& p) {
    auto rep = measureCuptiOverhead(p.request.shapes.front(), p.request.variants, kOverheadRounds, kOverheadReps,
                                    progressLine(p.progress));
    if (!rep) return fail(kVerb, rep.status());
    std::printf("CUPTI activity overhead on kernel time (CUDA events, %d interleaved rounds x %d reps)\n", rep->rounds,
                rep->repsPerRound);
    std::printf("%-18s %14s %14s %10s\n", "variant", "without ms", "with ms", "overhead");
    for (const auto& row : rep->rows)
        std::printf("%-18s %14.4f %14.4f %9.2f%%\n", row.variant.c_str(), row.msWithout, row.msWith, row.percent);
    std::printf("mean overhead: %.2f%%\n", rep->meanPercent);
    return 0;
}

/// The command-line step (Verb::parse): the request from every option; no trace is opened.
int parseProfileArgs(Args& a, Parsed& p) {
    a.description(
         "Runs attention variants side by side on a trace's own Q/K/V or on a synthetic shape. On a GPU "
         "kernels are timed from CUPTI activity records; without one the CPU reference runs with wall-clock "
         "timing and results are labelled CPU. Accuracy: relative output error and attention-mass recall "
         "against the dense float32 reference. cudnn:V (V one of full, causal, sliding:W, alibi, softcap:C, "
         "relbias:B) runs cuDNN's fused SDPA with V's mask on the same data, timed and scored the same way: the "
         "production baseline next to every variant (GPU only; cuDNN 9 is loaded at run time from "
         "ATTNSCOPE_CUDNN_LIB or libcudnn.so.9, and its rows say why when it cannot run). Exit 3 when a "
         "variant's row holds an error.")
        .positional("trace", "trace file (*.attn.safetensors), or 'demo'", false)
        .option("layer", "trace layer", "0")
        .option("head", "trace head, or 'all'", "0")
        .option("shape", "synthetic B,H,T,D or B,H,Hkv,T,D (several separated by '/')")
        .option("variants",
                "comma-separated variants (cudnn:causal, cudnn:full, … for cuDNN's SDPA; custom:FILE.attnvar or "
                "expr:PROGRAM for a user program, docs/variants.md)",
                kDefaultVariants)
        .option("dense", "baseline variant (default: causal, or full for non-causal data)")
        .option("dtype", "bf16 or f16", "bf16")
        .flag("cold", "flush L2 before every sample")
        .flag("hot", "keep caches warm (default)")
        .flag("metrics", "collect CUPTI range-profiler metrics in a separate replay pass")
        .flag("cpu", "use the CPU backend even when a GPU is present")
        .flag("gpu", "fail instead of falling back to the CPU")
        .flag("overhead", "measure CUPTI activity overhead (CUDA events with and without CUPTI) and exit")
        .flag("no-accuracy", "skip the accuracy pass")
        .option("accuracy-rows", "query rows scored for accuracy", "2048")
        .option("warmup", "untimed runs per variant", "3")
        .option("min-samples", "stopping rule: minimum samples", "10")
        .option("max-samples", "stopping rule: maximum samples", "200")
        .option("target-rsd", "stopping rule: target relative std dev", "0.005")
        .option("timeout", "stopping rule: seconds per variant", "15")
        .option("seed", "synthetic data seed", "1")
        .optionalValue("json", "FILE",
                       "write everything as JSON to FILE; without FILE (or '-') to stdout instead of the table")
        .option("csv", "write the table as CSV")
        .option("perfetto", "write a Chrome/Perfetto trace of the kernel timeline")
        .noProgressFlag();
    if (!a.parse()) return a.exitCode();
    return parseRequest(a, p);
}

int profileVerb(Args& a, Parsed& p) {
    if (a.has("trace")) {
        auto trace = openTraceArg(a.get("trace"));
        if (!trace) return fail(kVerb, trace.status());
        p.request.shapes.front().trace = *trace;
    }
    if (a.has("overhead")) return runOverhead(p);
    for (const std::string& path : {p.json, p.csv, p.perfetto})  // refuse unwritable outputs before the run
        if (!path.empty() && path != "-")
            if (Status s = checkOutputFile(path); !s) return fail(kVerb, s);
    auto report = runProfileOnBestBackend(p.request, progressLine(!a.has("no-progress")));
    if (!report) return fail(kVerb, report.status());
    if (p.json == "-")
        std::printf("%s\n", profileToJson(*report).dump(1).c_str());
    else
        std::fputs(profileToText(*report).c_str(), stdout);
    for (const auto& [path, format] : {std::pair{p.json, "json"}, {p.csv, "csv"}, {p.perfetto, "perfetto"}}) {
        if (path.empty() || path == "-") continue;
        if (Status st = writeProfile(*report, path, format); !st) return fail(kVerb, st);
        std::fprintf(stderr, "wrote %s\n", path.c_str());
    }
    for (const auto& s : report->shapes)
        for (const auto& v : s.variants)
            if (!v.error.empty()) return kExitIncomplete;  // the table shows which variant failed and why
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB_PARSED(
    "profile",
    "profile [TRACE --layer L --head H|all | --shape B,H,T,D[/...]] [--variants causal,sliding:1024,...] "
    "[--dense V] [--dtype bf16|f16] [--seed S] [--cold|--hot] [--metrics] [--cpu|--gpu] [--overhead] "
    "[--no-accuracy] [--accuracy-rows N] [--warmup N] [--min-samples N] [--max-samples N] "
    "[--target-rsd X] [--timeout S] [--json[=F]] [--csv F] [--perfetto F] [--no-progress]",
    "time attention variants side by side (CUPTI or CPU) with their accuracy on the data", Parsed, parseProfileArgs,
    profileVerb);

}  // namespace attnscope::cli
