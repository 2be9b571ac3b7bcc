#pragma once
// Synthetic vision traces (`attnscope-cli synth --vision ROWSxCOLS[,prefix=N][,patch=P]`): an
// encoder over prefix tokens ([CLS], registers) and a rows × cols patch grid, with a procedural
// image and planted heads a vision user looks for, at real model sizes (e.g. DINOv2-L: 24 layers
// × 16 heads, 37 × 37 patches + 5 prefix tokens) without model weights.
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/progress.h"
#include "attnscope/status.h"
#include "attnscope/trace.h"

namespace attnscope {

enum class VisionSynthHead {
    Local,   ///< 2-D local: a patch attends to patches near it (score −‖Δ‖² in patches)
    Sink,    ///< patch queries put most mass on one prefix token (the last register; a patch without prefix)
    Object,  ///< attention stays inside the query's region of the image (the shapes or the background)
    Noise,   ///< diffuse random attention
};
const char* visionSynthHeadName(VisionSynthHead h);

struct VisionSynthOptions {
    int rows = 16, cols = 16;  ///< patch grid
    int prefix = 1;            ///< prefix tokens: [CLS], then [REG0] … (0: none, as SigLIP)
    int patchSize = 14;        ///< image pixels per patch side (the image is rows·P × cols·P)
    int layers = 2;
    int heads = 4;    ///< query heads per layer
    int kvHeads = 0;  ///< 0: heads; query head h uses kv head h / (heads / kvHeads)
    int headDim = 64;
    DType dtype = DType::F16;
    uint64_t seed = 1;
    bool image = true;  ///< write the `image` tensor
};

/// Where the planted patterns are.
struct VisionSynthTruth {
    std::vector<VisionSynthHead> heads;  ///< per query head of every layer
    int64_t tokens = 0;
    int64_t sinkToken = 0;      ///< the Sink heads' key
    int64_t objectPatches = 0;  ///< patches whose centre lies on a shape
    double localScale = 1.0;    ///< Local heads: score −localScale·‖Δ‖² (patches)
};

/// The procedural image: a vertical gradient with a disc and a square (rows·P × cols·P RGB).
TraceImage visionSynthImage(const VisionSynthOptions& options);

/// Writes the trace to `path` (a layer at a time, through TraceStreamWriter; kind vision,
/// non-causal layers, tokens "[CLS]", "[REG0]" … "p{r},{c}"). Fails before writing on bad options.
Result<VisionSynthTruth> writeVisionSyntheticTrace(const std::string& path, const VisionSynthOptions& options,
                                                   const ProgressFn& progress = {});

}  // namespace attnscope
