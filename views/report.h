#pragma once
// One-command reports of a trace: a self-contained HTML page (figures embedded, no external
// URL), a Markdown version with its figures as files, JSON with every metric
// (docs/report-schema.md) and CSV tables. Used by attnscope-cli report and the GUI's
// "Export report…"; long work reports progress and honours cancellation.
#include <string>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

enum class ReportFormat { Html, Markdown, Json, Csv };

/// Parses "html,md,json,csv" (also "markdown"); the error names the bad entry.
Result<std::vector<ReportFormat>> parseReportFormats(const std::string& text);

struct HeadRef {
    int layer = 0, head = 0;
    bool operator==(const HeadRef&) const = default;
};
/// Parses "L:H,L:H"; the error names the bad entry.
Result<std::vector<HeadRef>> parseHeadRefs(const std::string& text);

struct ReportOptions {
    std::vector<ReportFormat> formats = {ReportFormat::Html, ReportFormat::Markdown, ReportFormat::Json,
                                         ReportFormat::Csv};
    /// Heads whose maps are shown at three scales; empty = chosen automatically (the strongest
    /// sink, induction/previous-token and local heads, up to autoHeads).
    std::vector<HeadRef> heads;
    int autoHeads = 4;
    AnalyzeOptions analysis;
    /// Variants to profile on the first selected head's Q/K/V (empty = no profile section).
    std::vector<std::string> profileVariants;
    int mapCells = 256;     ///< overview map resolution (cells per side)
    int zoomTokens = 256;   ///< side of the zoomed window (tokens)
    int windowTokens = 24;  ///< side of the token-level window (one cell per token)
    double dpi = 150;       ///< PNG figures
};

struct ReportResult {
    std::vector<std::string> files;  ///< everything written, relative to the output directory
};

/// Writes the report of `tracePath` into `outDir` (created when missing): report.html,
/// report.md + figures/, report.json, csv/*.csv, report-figures.pdf. Files are written
/// atomically. Cancelling through `progress` returns ErrorCode::Cancelled.
Result<ReportResult> generateReport(const std::string& tracePath, const std::string& outDir,
                                    const ReportOptions& options = {}, const ProgressFn& progress = {});

}  // namespace attnscope
