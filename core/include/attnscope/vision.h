#pragma once
// Vision traces (kind "vision"): the token layout and the analyses a vision user expects
// (docs/analysis.md, "Vision"). The patch tokens are the last rows·cols positions, row-major;
// positions before them are prefix tokens (CLS, registers, a distillation token).
//
// Like every analysis, two-pass and row by row from Q/K (never T×T), exact (float64 sums):
//   auto trace = Trace::open(path);
//   auto v = analyzeVision(**trace, {}, progress);
//   if (v) for (const VisionHeadStats& h : v->heads) use(h.patchDistance, h.prefixShare);
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/json.h"
#include "attnscope/matrix.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

class Trace;
struct TraceMetadata;

/// Where the patches of a vision trace are: patch (r, c) is token prefix + r·cols + c.
struct VisionLayout {
    int64_t tokens = 0;  ///< T
    int64_t prefix = 0;  ///< T − rows·cols prefix tokens before the patches
    int rows = 0, cols = 0;

    int64_t patches() const { return int64_t(rows) * cols; }
    int64_t patchToken(int r, int c) const { return prefix + int64_t(r) * cols + c; }
    bool isPatch(int64_t t) const { return t >= prefix && t < tokens; }
    int patchRow(int64_t t) const { return int((t - prefix) / cols); }
    int patchCol(int64_t t) const { return int((t - prefix) % cols); }
};

/// The layout of a trace from its metadata and T; InvalidArgument naming `where` (the file) when
/// the trace is not a vision trace.
Result<VisionLayout> visionLayout(const TraceMetadata& metadata, int64_t tokens, const std::string& where);
Result<VisionLayout> visionLayout(const Trace& trace);

/// "p3,7": the display name of patch (r, c), as capture tools write it into `tokens`.
std::string patchTokenName(int r, int c);

/// metrics (docs/analysis.md "Vision"), over the patch queries of one head.
struct VisionHeadStats {
    int layer = -1, head = -1;
    /// Patch queries with mass on patch keys (the count behind patchDistance).
    int64_t patchQueries = 0;
    /// Mean attention distance in patches (the ViT paper's, in patch units): per patch query the
    /// attention-weighted mean Euclidean distance between patch centres over the patch keys,
    /// normalised by the query's mass on patch keys; averaged over patch queries.
    double patchDistance = 0;
    /// Mean over patch queries of the attention mass on prefix tokens (CLS + registers).
    double prefixShare = 0;
    /// The same mean per prefix token ("which register is the sink"); prefix entries.
    std::vector<double> prefixTokenShare;
    /// Index of the prefix token with the largest share, -1 without prefix tokens.
    int64_t topPrefixToken() const;
};

/// The vision metrics of one head from its Q/K (q, k: [T, d]; K already GQA-mapped).
Result<VisionHeadStats> analyzeVisionHead(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                          const VisionLayout& layout, const ProgressFn& progress = {});

struct VisionOptions {
    std::vector<int> layers;  ///< empty: every layer
};

struct VisionAnalysis {
    VisionLayout layout;
    std::vector<std::string> prefixNames;  ///< the trace's token strings of the prefix tokens
    std::vector<VisionHeadStats> heads;    ///< layer-major
};

/// Every head of the chosen layers: from Q/K with the layer's native spec (learned sinks
/// included), or from the stored probabilities of a weights-only trace. Progress covers the run;
/// cancelling returns ErrorCode::Cancelled.
Result<VisionAnalysis> analyzeVision(const Trace& trace, const VisionOptions& options = {},
                                     const ProgressFn& progress = {});

/// Score products analyzeVision spends on the CPU (two passes over the patch rows of every head),
/// for estimateCpuWork (cpu_budget.h); 0 for weights-only traces.
double visionScoreProducts(const Trace& trace, const VisionOptions& options = {});

/// One query's attention arranged for an image overlay.
struct QueryPatchAttention {
    int layer = -1, head = -1;
    int64_t query = 0;
    int rows = 0, cols = 0;
    std::vector<float> patches;  ///< [rows × cols] probability on each patch key, row-major
    std::vector<float> prefix;   ///< probability on each prefix token
    float maxPatch = 0;          ///< the largest entry of `patches`
};

/// The attention row of `query` (any token) of one head: from Q/K or stored probabilities.
Result<QueryPatchAttention> queryPatchAttention(const Trace& trace, int layer, int head, int64_t query);

/// JSON (camelCase, docs/json.md): layout {tokens, prefixTokens, patchGrid}, prefixNames, and per
/// head {layer, head, patchQueries, patchDistance, prefixShare, prefixTokenShare[]}. The one home
/// of these keys: `analyze --json` and the report use it.
Json toJson(const VisionAnalysis& analysis);

}  // namespace attnscope
