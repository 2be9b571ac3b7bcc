#pragma once
// The trace summary every JSON attnscope writes shares (`info --json`, the report's `trace`), and
// the per-role tensor listing `info` prints. Keys are camelCase, as in every JSON attnscope writes
// (docs/json.md); the trace file's own metadata keeps the file format's snake_case.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "attnscope/json.h"
#include "attnscope/trace.h"

namespace attnscope {

struct TraceSummaryOptions {
    /// Everything `info --json` prints beyond the report's summary: format and version, patch
    /// grid, the capture check, per layer its index, learned sinks and tensors (dtype, shape,
    /// bytes), dtypes by role, the NaN/Inf scan and `valid`; and the whole text, not a preview.
    bool details = false;
    bool scanned = false;  ///< with details: whether the values were scanned for NaN/Inf
};

/// path, model, source, kind, tokens, layers (the count), dtype, fileBytes, hasQK,
/// layerConfigs[] (heads, kvHeads, headDim, scale, causal, slidingWindow, softcap, alibi,
/// positional), text (the first 2,000 characters), warnings; with details, the keys above.
Json traceSummaryJson(const Trace& trace, const TraceSummaryOptions& options = {});

/// The tensors of a layer by role ("q", "k", "v", "attn", "out", "sinks"), present ones only.
std::vector<std::pair<const char*, const TensorView*>> traceTensorRoles(const Trace& trace, int layer);
/// Role -> the dtypes it uses across layers, in role order.
std::vector<std::pair<std::string, std::set<std::string>>> traceDtypesByRole(const Trace& trace);

}  // namespace attnscope
