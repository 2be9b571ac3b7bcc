// HTML and Markdown writers of the report document. The HTML is self-contained: figures are
// data: URIs, the style sheet is inline, and nothing refers to another host or file.
#include <QByteArray>

#include <cmath>
#include <algorithm>

#include "reportdocument.h"

namespace attnscope {

namespace {
constexpr double kCssPxPerPoint = 96.0 / 72.0;  // CSS pixels are 1/96 inch

const char* kStyle = R"(
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
p.sub { color: #666; margin-top: 0; font-size: 0.9em; }
div.toc a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
div.figure { margin: 1.2em 0; }
div.figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
p.caption { color: #444; font-size: 0.85em; margin-top: 0.2em; }
)";

QString escapeHtml(const QString& s) { return s.toHtmlEscaped(); }

QString markdownCell(const QString& s) {
    QString out = s;
    out.replace(QLatin1Char('\\'), QStringLiteral("\\\\"));
    out.replace(QLatin1Char('|'), QStringLiteral("\\|"));
    out.replace(QLatin1Char('\n'), QLatin1Char(' '));
    return out;
}

}  // namespace

Result<ReportPngs> encodeReportFigures(const ReportDocument& doc, double dpi, const ProgressFn& progress) {
    int total = 0;
    for (const auto& s : doc.sections)
        for (const auto& b : s.blocks) total += b.figure ? 1 : 0;
    ReportPngs out;
    for (const auto& s : doc.sections)
        for (const auto& b : s.blocks) {
            if (!b.figure) continue;
            if (progress && !progress(double(out.size()) / std::max(1, total), "figures"))
                return Status(ErrorCode::Cancelled, "report cancelled");
            FigureSaveOptions o;
            o.dpi = dpi;
            auto png = encodeFigure(*b.figure, FigureFormat::Png, o);
            if (!png) return Status(png.status().code(), "figure " + b.name.toStdString() + ": " + png.message());
            out[b.name] = std::move(*png);
        }
    return out;
}

QByteArray reportToHtml(const ReportDocument& doc, const ReportPngs& pngs) {
    QString h;
    h += QStringLiteral(
             "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
             "charset=\"utf-8\"/>\n<title>%1</title>\n<style>%2</style>\n</head>\n<body>\n")
             .arg(escapeHtml(doc.title), QString::fromLatin1(kStyle));
    h += QStringLiteral("<h1>%1</h1>\n<p class=\"sub\">%2</p>\n<div class=\"toc\">")
             .arg(escapeHtml(doc.title), escapeHtml(doc.subtitle));
    for (const auto& s : doc.sections) h += QStringLiteral("<a href=\"#%1\">%2</a> ").arg(s.id, escapeHtml(s.title));
    h += QStringLiteral("</div>\n");
    for (const auto& s : doc.sections) {
        h += QStringLiteral("<div class=\"section\" id=\"%1\">\n<h2>%2</h2>\n").arg(s.id, escapeHtml(s.title));
        for (const auto& b : s.blocks) {
            switch (b.kind) {
            case ReportBlock::Kind::Paragraph: h += QStringLiteral("<p>%1</p>\n").arg(escapeHtml(b.text)); break;
            case ReportBlock::Kind::Table: {
                h += QStringLiteral("<table>\n<tr>");
                for (const auto& c : b.table.header) h += QStringLiteral("<th>%1</th>").arg(escapeHtml(c));
                h += QStringLiteral("</tr>\n");
                for (const auto& r : b.table.rows) {
                    h += QStringLiteral("<tr>");
                    for (const auto& c : r) h += QStringLiteral("<td>%1</td>").arg(escapeHtml(c));
                    h += QStringLiteral("</tr>\n");
                }
                h += QStringLiteral("</table>\n");
                break;
            }
            case ReportBlock::Kind::Figure: {
                const QSizeF pt = preferredFigureSize(*b.figure);
                h += QStringLiteral(
                         "<div class=\"figure\" id=\"fig-%1\"><img alt=\"%2\" width=\"%3\" height=\"%4\" "
                         "src=\"data:image/png;base64,%5\"/>"
                         "<p class=\"caption\">%2</p></div>\n")
                         .arg(b.name, escapeHtml(b.text))
                         .arg(std::lround(pt.width() * kCssPxPerPoint))
                         .arg(std::lround(pt.height() * kCssPxPerPoint))
                         .arg(QString::fromLatin1(pngs.count(b.name) ? pngs.at(b.name).toBase64() : QByteArray()));
                break;
            }
            }
        }
        h += QStringLiteral("</div>\n");
    }
    h += QStringLiteral("</body>\n</html>\n");
    return h.toUtf8();
}

QByteArray reportToMarkdown(const ReportDocument& doc) {
    QString md = QStringLiteral("# %1\n\n%2\n\n").arg(doc.title, doc.subtitle);
    for (const auto& s : doc.sections) {
        md += QStringLiteral("## %1\n\n").arg(s.title);
        for (const auto& b : s.blocks) {
            switch (b.kind) {
            case ReportBlock::Kind::Paragraph: md += b.text + QStringLiteral("\n\n"); break;
            case ReportBlock::Kind::Table: {
                QStringList head, rule;
                for (const auto& c : b.table.header) head << markdownCell(c), rule << QStringLiteral("---");
                md += QStringLiteral("| %1 |\n| %2 |\n")
                          .arg(head.join(QStringLiteral(" | ")), rule.join(QStringLiteral(" | ")));
                for (const auto& r : b.table.rows) {
                    QStringList cells;
                    for (const auto& c : r) cells << markdownCell(c);
                    md += QStringLiteral("| %1 |\n").arg(cells.join(QStringLiteral(" | ")));
                }
                md += QLatin1Char('\n');
                break;
            }
            case ReportBlock::Kind::Figure:
                md += QStringLiteral("![%1](figures/%2.png)\n\n*%1*\n\n").arg(markdownCell(b.text), b.name);
                break;
            }
        }
    }
    return md.toUtf8();
}

}  // namespace attnscope
