// attnscope-cli report: the whole report of a trace (HTML, Markdown, JSON, CSV) in one command.
#include <cstdio>

#include "attnscope/demo_trace.h"
#include "attnscope/variants.h"
#include "attnscope/gpu.h"
#include "cli.h"
#include "guiapp.h"
#include "report.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "report";

int runReport(Args& args) {
    args.description(
            "Analyses every head of TRACE and writes a self-contained report to DIR: report.html (figures\n"
            "embedded, opens offline), report.md with figures/*.png, report.json (docs/report-schema.md),\n"
            "csv/*.csv and report-figures.pdf (every figure as a vector page).")
        .positional("TRACE",
                    "the trace (*.attn.safetensors), or 'demo' / 'demo:vision'; default: the bundled demo trace", false)
        .option("o", "output directory (created when missing)")
        .option("format", "formats to write: html, md, json, csv (comma-separated)", "html,md,json,csv")
        .option("heads", "heads shown at three scales, LAYER:HEAD,… (default: chosen from the analysis)")
        .option("layers", "layers to analyse, e.g. 0-3,7 (default: all)")
        .option("profile", "variants to profile on the first selected head, e.g. causal,sliding:256,topk:8")
        .option("dpi", "resolution of the PNG figures", "150")
        .flag("exclude-sinks", "measure every metric with the sink keys excluded and renormalised")
        .flag("cpu", "analyse on the CPU even when a GPU is present")
        .noProgressFlag()
        .alias("quiet", "no-progress");  // the earlier spelling, hidden: scripts written for it keep working
    if (!args.parse()) return args.exitCode();
    if (!args.has("o")) return fail(kVerb, "missing -o DIR (the output directory)");
    const std::string trace = !args.has("TRACE")              ? findDemoTrace()
                              : isDemoName(args.get("TRACE")) ? findDemoTrace(args.get("TRACE"))  // demo, demo:vision
                                                              : args.get("TRACE");
    if (trace.empty())
        return fail(kVerb, "no TRACE given and no demo trace found (set ATTNSCOPE_DEMO or pass a trace)");

    ReportOptions options;
    auto formats = parseReportFormats(args.get("format"));
    if (!formats) return fail(kVerb, formats.status());
    options.formats = *formats;
    if (args.has("heads")) {
        auto heads = parseHeadRefs(args.get("heads"));
        if (!heads) return fail(kVerb, heads.status());
        options.heads = *heads;
    }
    std::string error;
    const auto dpi = args.getDouble("dpi", &error);
    if (!dpi) return fail(kVerb, error);
    if (*dpi < 36 || *dpi > 1200) return fail(kVerb, "--dpi must be within 36..1200");
    options.dpi = *dpi;
    if (args.has("layers")) {
        // Layer bounds are checked against the trace by the analysis; here only the syntax.
        constexpr int kAnyLayer = 1 << 20;
        auto layers = parseIndexList(args.get("layers"), kAnyLayer, "--layers", &error);
        if (!layers) return fail(kVerb, error);
        options.analysis.layers = *layers;
    }
    options.analysis.excludeSinks = args.has("exclude-sinks");
    // The analysis runs on the GPU's tensor cores when one is present (the same service as
    // `analyze`); the profile section picks its own backend.
    std::unique_ptr<GpuEngine> gpu;
    if (!args.has("cpu")) {
        gpu = createGpuEngine();
        if (gpu->info().available) options.analysis.gpu = gpu.get();
    }
    if (args.has("profile")) {
        options.profileVariants = splitVariantList(args.get("profile"));
        for (const auto& v : options.profileVariants)
            if (auto parsed = parseVariant(v); !parsed) return fail(kVerb, "--profile: " + parsed.message());
    }

    auto app = makeGuiApp();
    auto result = generateReport(trace, args.get("o"), options, progressLine(!args.has("no-progress")));
    if (!result) return fail(kVerb, result.status());
    std::printf("report of %s written to %s:\n", trace.c_str(), args.get("o").c_str());
    for (const auto& f : result->files)
        if (f.rfind("figures/", 0) != 0) std::printf("  %s\n", f.c_str());
    return 0;
}

}  // namespace

ATTNSCOPE_CLI_VERB("report",
                   "report [TRACE] -o DIR [--format html,md,json,csv] [--heads L:H,...] [--layers 0-3,7] "
                   "[--profile VARIANTS] [--dpi N] [--exclude-sinks] [--cpu] [--no-progress]",
                   "write an HTML/Markdown/JSON/CSV report of a trace", runReport);

}  // namespace attnscope::cli
