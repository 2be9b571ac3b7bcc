// generateReport: collect the data once, build the document, then write each requested format.
#include "report.h"

#include <QString>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "attnscope/trace.h"
#include "reportdocument.h"

namespace attnscope {

namespace {
// Shares of the progress bar: computing dominates, writing (figure encoding) follows.
constexpr double kCollectEnd = 0.8, kFiguresEnd = 0.95;

bool wants(const ReportOptions& o, ReportFormat f) {
    return std::find(o.formats.begin(), o.formats.end(), f) != o.formats.end();
}

/// "a,,b" -> {"a", "b"}.
std::vector<std::string> commaList(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t end = std::min(text.find(',', start), text.size());
        if (end > start) out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

}  // namespace

ProgressFn progressRange(const ProgressFn& progress, double from, double to) {
    if (!progress) return {};
    return [progress, from, to](double f, std::string_view s) {
        return progress(from + (to - from) * std::clamp(f, 0.0, 1.0), s);
    };
}

Result<std::vector<ReportFormat>> parseReportFormats(const std::string& text) {
    std::vector<ReportFormat> out;
    for (const std::string& f : commaList(text)) {
        ReportFormat rf;
        if (f == "html")
            rf = ReportFormat::Html;
        else if (f == "md" || f == "markdown")
            rf = ReportFormat::Markdown;
        else if (f == "json")
            rf = ReportFormat::Json;
        else if (f == "csv")
            rf = ReportFormat::Csv;
        else
            return Status(ErrorCode::InvalidArgument,
                          "--format: unknown format '" + f + "' (expected html, md, json or csv)");
        if (std::find(out.begin(), out.end(), rf) == out.end()) out.push_back(rf);
    }
    if (out.empty())
        return Status(ErrorCode::InvalidArgument, "--format: no format given (expected html, md, json or csv)");
    return out;
}

Result<std::vector<HeadRef>> parseHeadRefs(const std::string& text) {
    std::vector<HeadRef> out;
    for (const std::string& part : commaList(text)) {
        HeadRef h;
        char colon = 0;
        int consumed = 0;
        if (std::sscanf(part.c_str(), "%d%c%d%n", &h.layer, &colon, &h.head, &consumed) != 3 || colon != ':' ||
            consumed != int(part.size()) || h.layer < 0 || h.head < 0)
            return Status(ErrorCode::InvalidArgument,
                          "--heads: cannot read '" + part + "' (expected LAYER:HEAD, e.g. 0:3)");
        if (std::find(out.begin(), out.end(), h) == out.end()) out.push_back(h);
    }
    return out;
}

Result<ReportResult> generateReport(const std::string& tracePath, const std::string& outDir,
                                    const ReportOptions& options, const ProgressFn& progress) {
    namespace fs = std::filesystem;
    if (options.formats.empty()) return Status(ErrorCode::InvalidArgument, "report: no output format requested");
    std::error_code ec;
    fs::create_directories(outDir, ec);
    if (ec) return Status(ErrorCode::IoError, outDir + ": cannot create the report directory: " + ec.message());
    // A folder that cannot be written is refused before the report is computed.
    if (Status s = checkOutputDirectory(outDir); !s) return s;
    if (wants(options, ReportFormat::Csv)) fs::create_directories(fs::path(outDir) / "csv", ec);
    if (!ec && wants(options, ReportFormat::Markdown)) fs::create_directories(fs::path(outDir) / "figures", ec);
    if (ec) return Status(ErrorCode::IoError, outDir + ": cannot create the report directory: " + ec.message());

    auto data = collectReportData(tracePath, options, progressRange(progress, 0, kCollectEnd));
    if (!data) return data.status();
    const ReportDocument doc = buildReportDocument(*data);

    ReportResult result;
    auto write = [&](const std::string& rel, const void* bytes, size_t size) -> Status {
        Status s = writeFileAtomic((fs::path(outDir) / rel).string(), bytes, size);
        if (s.ok()) result.files.push_back(rel);
        return s;
    };

    ReportPngs pngs;
    if (wants(options, ReportFormat::Html) || wants(options, ReportFormat::Markdown)) {
        auto encoded = encodeReportFigures(doc, options.dpi, progressRange(progress, kCollectEnd, kFiguresEnd));
        if (!encoded) return encoded.status();
        pngs = std::move(*encoded);
    }
    if (wants(options, ReportFormat::Html)) {
        const QByteArray html = reportToHtml(doc, pngs);
        if (Status s = write("report.html", html.constData(), size_t(html.size())); !s.ok()) return s;
    }
    if (wants(options, ReportFormat::Markdown)) {
        for (const auto& [name, png] : pngs)
            if (Status s = write("figures/" + name.toStdString() + ".png", png.constData(), size_t(png.size()));
                !s.ok())
                return s;
        const QByteArray md = reportToMarkdown(doc);
        if (Status s = write("report.md", md.constData(), size_t(md.size())); !s.ok()) return s;
    }
    if (wants(options, ReportFormat::Html) || wants(options, ReportFormat::Markdown)) {
        // Every figure as vector pages too, for papers.
        std::vector<Figure> figures;
        for (const auto& s : doc.sections)
            for (const auto& b : s.blocks)
                if (b.figure) figures.push_back(*b.figure);
        if (progress && !progress(kFiguresEnd, "pdf")) return Status(ErrorCode::Cancelled, "report cancelled");
        auto pdf = encodeFiguresPdf(figures);
        if (!pdf) return pdf.status();
        if (Status s = write("report-figures.pdf", pdf->constData(), size_t(pdf->size())); !s.ok()) return s;
    }
    if (wants(options, ReportFormat::Csv)) {
        for (const auto& [name, text] : reportToCsv(*data))
            if (Status s = write("csv/" + name, text.data(), text.size()); !s.ok()) return s;
    }
    if (wants(options, ReportFormat::Json)) {
        std::vector<std::string> files = result.files;
        files.push_back("report.json");
        const std::string text = reportToJson(*data, files).dump(1);
        if (Status s = write("report.json", text.data(), text.size()); !s.ok()) return s;
    }
    if (progress) progress(1.0, "done");
    return result;
}

}  // namespace attnscope
