// The report's machine-readable outputs: JSON with every metric (docs/report-schema.md) and
// CSV tables, one row per head / sink / coverage point / mask / layer / variant.
#include <cmath>
#include <sstream>

#include "attnscope/trace.h"
#include "attnscope/trace_summary.h"
#include "reportdocument.h"

namespace attnscope {

namespace {

std::string csvField(const std::string& s) {
    if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string csvNumber(double v) {
    if (!std::isfinite(v)) return "";
    std::ostringstream os;
    os.precision(9);
    os << v;
    return os.str();
}

class CsvTable {
public:
    explicit CsvTable(const std::vector<std::string>& header) { row(header); }
    void row(const std::vector<std::string>& fields) {
        for (size_t i = 0; i < fields.size(); ++i) m_text += (i ? "," : "") + csvField(fields[i]);
        m_text += "\n";
    }
    std::string text() const { return m_text; }

private:
    std::string m_text;
};

std::string tokenOf(const TraceMetadata& m, int64_t k) {
    return k >= 0 && size_t(k) < m.tokens.size() ? m.tokens[size_t(k)] : std::string();
}

}  // namespace

Json reportToJson(const ReportData& d, const std::vector<std::string>& files) {
    Json j = Json::object();
    j.set("schema", "attnscope.report");
    j.set("version", 1);
    j.set("generator", std::string("attnscope ") + ATTNSCOPE_VERSION);
    j.set("trace", traceSummaryJson(*d.trace));
    j.set("analysis", toJson(d.analysis));
    j.set("vision", d.vision ? toJson(*d.vision) : Json());  // null for other kinds
    Json sel = Json::array();
    for (const auto& m : d.maps) {
        Json h = Json::object();
        h.set("layer", m.ref.layer);
        h.set("head", m.ref.head);
        Json scales = Json::array();
        const std::pair<const char*, const AttentionMap*> scaleList[] = {
            {"overview", &m.overview}, {"zoom", &m.zoom}, {"window", &m.window}};
        for (const auto& [name, map] : scaleList) {
            Json s = Json::object();
            s.set("scale", name);
            s.set("rect",
                  Json(Json::Array{Json(map->rect.q0), Json(map->rect.q1), Json(map->rect.k0), Json(map->rect.k1)}));
            s.set("width", map->width);
            s.set("height", map->height);
            scales.push(std::move(s));
        }
        h.set("maps", std::move(scales));
        sel.push(std::move(h));
    }
    j.set("selectedHeads", std::move(sel));
    if (d.profile)
        j.set("profile", profileToJson(*d.profile));
    else
        j.set("profile", Json());
    if (!d.profileNote.empty()) j.set("profileNote", d.profileNote);
    Json f = Json::array();
    for (const auto& name : files) f.push(name);
    j.set("files", std::move(f));
    return j;
}

std::vector<std::pair<std::string, std::string>> reportToCsv(const ReportData& d) {
    const TraceMetadata& meta = d.trace->metadata();
    std::vector<std::pair<std::string, std::string>> out;

    std::vector<std::string> header = {"layer",
                                       "head",
                                       "role",
                                       "entropy",
                                       "entropy_normalized",
                                       "mean_distance",
                                       "first_token_mass",
                                       "recent_mass",
                                       "alpha0",
                                       "first_token_sink",
                                       "hidden_sinks",
                                       "previous_token",
                                       "next_token",
                                       "duplicate_token",
                                       "induction",
                                       "local_mass",
                                       "document_mass",
                                       "vertical_score",
                                       "slash_score"};
    const auto& gammas = d.analysis.options.head.gammas;
    const auto& sizes = d.analysis.options.head.blockSizes;
    for (int64_t b : sizes)
        for (double g : gammas) header.push_back("density_b" + std::to_string(b) + "_g" + csvNumber(g));
    CsvTable heads(header);
    CsvTable sinks({"layer", "head", "key", "token", "alpha", "kind"});
    CsvTable sparsity({"layer", "head", "block_size", "gamma", "kept_blocks", "allowed_blocks", "density", "recall"});
    CsvTable masks({"layer", "head", "mask", "params", "recall", "output_error", "kept_fraction"});
    for (const auto& h : d.analysis.heads) {
        const std::string L = std::to_string(h.layer), H = std::to_string(h.head);
        std::vector<std::string> r = {L,
                                      H,
                                      h.role.label,
                                      csvNumber(h.stats.entropy),
                                      csvNumber(h.stats.entropyNormalized),
                                      csvNumber(h.stats.meanDistance),
                                      csvNumber(h.stats.firstTokenMass),
                                      csvNumber(h.stats.recentMass),
                                      csvNumber(h.sinks.alpha0),
                                      h.sinks.firstTokenSink ? "1" : "0",
                                      std::to_string(h.sinks.hiddenSinks.size()),
                                      csvNumber(h.roles.previousToken),
                                      csvNumber(h.roles.nextToken),
                                      csvNumber(h.roles.duplicateToken),
                                      csvNumber(h.roles.induction),
                                      csvNumber(h.roles.localMass),
                                      h.roles.documentMass < 0 ? "" : csvNumber(h.roles.documentMass),
                                      csvNumber(h.roles.verticalScore),
                                      csvNumber(h.roles.slashScore)};
        for (int64_t b : sizes)
            for (double g : gammas) {
                const GammaCoverage* c = h.coverage(b, g);
                r.push_back(c ? csvNumber(c->density) : "");
            }
        heads.row(r);
        for (int64_t k : h.sinks.keys()) {
            const double a = size_t(k) < h.sinks.alpha.size() ? h.sinks.alpha[size_t(k)] : NAN;
            sinks.row({L, H, std::to_string(k), tokenOf(meta, k), csvNumber(a), k == 0 ? "first-token" : "hidden"});
        }
        for (const auto& b : h.blocks)
            for (const auto& c : b.coverage)
                sparsity.row({L, H, std::to_string(b.blockSize), csvNumber(c.gamma), std::to_string(c.keptBlocks),
                              std::to_string(b.allowedBlocks), csvNumber(c.density), csvNumber(c.recall)});
        for (const auto& m : h.masks)
            masks.row(
                {L, H, m.name, m.params, csvNumber(m.recall), csvNumber(m.outputError), csvNumber(m.keptFraction)});
    }
    CsvTable layers({"layer", "heads", "sink_rate_percent", "hidden_sink_heads", "median_entropy",
                     "median_entropy_normalized", "density", "roles"});
    for (const auto& l : d.analysis.layers) {
        std::string roles;
        for (const auto& [label, n] : l.roles) roles += (roles.empty() ? "" : ";") + label + "=" + std::to_string(n);
        layers.row({std::to_string(l.layer), std::to_string(l.heads), csvNumber(l.sinkRate),
                    std::to_string(l.hiddenSinkHeads), csvNumber(l.medianEntropy), csvNumber(l.medianEntropyNormalized),
                    csvNumber(l.density), roles});
    }
    out.push_back({"heads.csv", heads.text()});
    out.push_back({"layers.csv", layers.text()});
    out.push_back({"sinks.csv", sinks.text()});
    out.push_back({"sparsity.csv", sparsity.text()});
    out.push_back({"masks.csv", masks.text()});
    if (d.profile) out.push_back({"profile.csv", profileToCsv(*d.profile)});
    if (d.vision) {  // one row per head; a share column per prefix token, named by its token
        std::vector<std::string> header = {"layer", "head", "patch_queries", "patch_distance", "prefix_share"};
        for (const auto& n : d.vision->prefixNames) header.push_back("share " + n);
        CsvTable vision(header);
        for (const VisionHeadStats& h : d.vision->heads) {
            std::vector<std::string> r = {std::to_string(h.layer), std::to_string(h.head),
                                          std::to_string(h.patchQueries), csvNumber(h.patchDistance),
                                          csvNumber(h.prefixShare)};
            for (double v : h.prefixTokenShare) r.push_back(csvNumber(v));
            vision.row(r);
        }
        out.push_back({"vision.csv", vision.text()});
    }
    return out;
}

}  // namespace attnscope
