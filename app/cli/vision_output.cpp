// The vision part of `attnscope-cli analyze` (vision_output.h).
#include "vision_output.h"

#include <algorithm>
#include <cstdio>

#include "cli.h"

namespace attnscope::cli {

int checkVisionWork(const std::string& verb, const Trace& trace, const VisionOptions& options, bool allowLong) {
    if (trace.metadata().kind != TraceKind::Vision) return kRun;
    int64_t headDim = 0;
    for (int l = 0; l < trace.numLayers(); ++l) headDim = std::max<int64_t>(headDim, trace.config(l).headDim);
    return checkCpuWork(verb, visionScoreProducts(trace, options), headDim, allowLong,
                        "the vision analyses of " + std::to_string(trace.tokens()) + " tokens");
}

Result<std::optional<VisionAnalysis>> analyzeIfVision(const Trace& trace, const VisionOptions& options,
                                                      const ProgressFn& progress) {
    if (trace.metadata().kind != TraceKind::Vision) return std::optional<VisionAnalysis>();
    auto v = analyzeVision(trace, options, progress);
    if (!v) return v.status();
    return std::optional<VisionAnalysis>(std::move(*v));
}

void printVisionTable(const VisionAnalysis& v) {
    const VisionLayout& L = v.layout;
    std::printf("\nvision: patch grid %d×%d, %lld prefix token%s", L.rows, L.cols, static_cast<long long>(L.prefix),
                L.prefix == 1 ? "" : "s");
    for (const auto& n : v.prefixNames) std::printf(" %s", n.c_str());
    std::printf(
        "\n(distance: mean attention distance of the patch queries over the patch keys, in patches; prefix: "
        "their mean attention mass on the prefix tokens, and the prefix token that takes the most)\n");
    std::printf("%5s %4s %9s %7s  %s\n", "layer", "head", "distance", "prefix", "top prefix token");
    for (const VisionHeadStats& h : v.heads) {
        const int64_t top = h.topPrefixToken();
        if (top < 0)
            std::printf("%5d %4d %9.3f %7s  %s\n", h.layer, h.head, h.patchDistance, "-", "-");
        else
            std::printf("%5d %4d %9.3f %7.3f  %s %.3f\n", h.layer, h.head, h.patchDistance, h.prefixShare,
                        v.prefixNames[size_t(top)].c_str(), h.prefixTokenShare[size_t(top)]);
    }
}

}  // namespace attnscope::cli
