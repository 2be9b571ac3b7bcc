#pragma once
// The report as a small document model (sections of paragraphs, tables and figures), built
// once and written as HTML and Markdown so both carry the same content.
#include <QString>
#include <QStringList>

#include <map>
#include <optional>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/attention.h"
#include "attnscope/json.h"
#include "attnscope/profiler.h"
#include "attnscope/status.h"
#include "attnscope/vision.h"
#include "figure.h"
#include "report.h"

namespace attnscope {

class Trace;

struct ReportTable {
    QStringList header;
    std::vector<QStringList> rows;
};

struct ReportBlock {
    enum class Kind { Paragraph, Table, Figure };
    Kind kind = Kind::Paragraph;
    QString text;  ///< paragraph text, or the figure caption
    ReportTable table;
    std::optional<Figure> figure;
    QString name;  ///< figure file stem (figures/<name>.png)
};

struct ReportSection {
    QString id, title;
    std::vector<ReportBlock> blocks;

    void paragraph(const QString& text);
    void table(ReportTable t);
    void figure(Figure f, const QString& name, const QString& caption);
};

struct ReportDocument {
    QString title;
    QString subtitle;
    std::vector<ReportSection> sections;
};

/// A selected head's maps at three scales and its token window.
struct HeadMaps {
    HeadRef ref;
    AttentionMap overview, zoom, window;
};

/// Everything a report shows, computed once.
struct ReportData {
    std::shared_ptr<const Trace> trace;
    ModelAnalysis analysis;
    std::vector<HeadRef> selected;
    std::vector<HeadMaps> maps;
    std::optional<ProfileReport> profile;
    std::string profileNote;               ///< why there is no profile section, when one was asked for
    std::optional<VisionAnalysis> vision;  ///< vision traces only: patch distance and prefix share per head
};

/// Maps a stage's progress [0, 1] onto [from, to] of `progress` (empty stays empty).
ProgressFn progressRange(const ProgressFn& progress, double from, double to);

/// Opens the trace, analyses it, picks heads, computes their maps and runs the profile.
/// Progress spans [0, 1] of its own work.
Result<ReportData> collectReportData(const std::string& tracePath, const ReportOptions& options,
                                     const ProgressFn& progress);

/// The sections of the report (trace summary, overview, sinks, sparsity, roles, maps, profile).
ReportDocument buildReportDocument(const ReportData& data);

/// Every figure of the document as PNG at `dpi`, keyed by its file stem (encoded once for all
/// writers).
using ReportPngs = std::map<QString, QByteArray>;
Result<ReportPngs> encodeReportFigures(const ReportDocument& doc, double dpi, const ProgressFn& progress);

/// HTML embedding the figures as data: URIs.
QByteArray reportToHtml(const ReportDocument& doc, const ReportPngs& pngs);
/// Markdown referencing figures/<name>.png (the files to write next to it are the PNGs).
QByteArray reportToMarkdown(const ReportDocument& doc);
/// JSON with every metric (docs/report-schema.md).
Json reportToJson(const ReportData& data, const std::vector<std::string>& files);
/// CSV tables: file name -> contents (heads, layers, sinks, sparsity, masks, profile).
std::vector<std::pair<std::string, std::string>> reportToCsv(const ReportData& data);

}  // namespace attnscope
