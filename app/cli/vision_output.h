#pragma once
// The vision part of `attnscope-cli analyze` (core/include/attnscope/vision.h): patch distance
// and prefix share per head of a vision trace, as a table and in the analysis JSON.
#include <optional>
#include <string>
#include <vector>

#include "attnscope/trace.h"
#include "attnscope/vision.h"

namespace attnscope::cli {

/// Checks the vision analyses' CPU work against the budget (cpu_budget.h), like the verb's own
/// check: kRun when the trace is not a vision trace or the work is accepted, else the exit code.
int checkVisionWork(const std::string& verb, const Trace& trace, const VisionOptions& options, bool allowLong);

/// Runs analyzeVision on a vision trace (nullopt for other kinds).
Result<std::optional<VisionAnalysis>> analyzeIfVision(const Trace& trace, const VisionOptions& options,
                                                      const ProgressFn& progress);

/// The per-head table: patch distance, prefix share and the prefix token with the largest share.
void printVisionTable(const VisionAnalysis& vision);

}  // namespace attnscope::cli
