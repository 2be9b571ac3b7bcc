// JSON export of the analysis (schema "attnscope.analysis" v1). Numbers are rounded to six
// significant digits: the vectors are O(T) per head and full double precision would triple the size.
#include <cstdio>
#include <cstdlib>

#include "analysis_internal.h"

namespace attnscope {

namespace {

constexpr int kSchemaVersion = 1;

Json num(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", x);
    return Json(std::strtod(buf, nullptr));
}

template <typename T>
Json numbers(const std::vector<T>& v) {
    Json a = Json::array();
    for (const T& x : v) a.push(num(double(x)));
    return a;
}

Json ints(const std::vector<int64_t>& v) {
    Json a = Json::array();
    for (int64_t x : v) a.push(Json(x));
    return a;
}

Json toJson(const BlockSparsity& b) {
    Json j = Json::object();
    j.set("blockSize", Json(b.blockSize));
    j.set("blockRows", Json(b.blockRows));
    j.set("blockCols", Json(b.blockCols));
    j.set("allowedBlocks", Json(b.allowedBlocks));
    Json cov = Json::array();
    for (const auto& c : b.coverage) {
        Json e = Json::object();
        e.set("gamma", num(c.gamma));
        e.set("keptBlocks", Json(c.keptBlocks));
        e.set("density", num(c.density));
        e.set("recall", num(c.recall));
        e.set("blocksPerRow", numbers(c.blocksPerRow));
        cov.push(std::move(e));
    }
    j.set("coverage", std::move(cov));
    j.set("mass", numbers(b.mass));
    return j;
}

Json toJson(const HeadSimilarity& s) {
    Json j = Json::object();
    j.set("layer", Json(s.layer));
    j.set("heads", Json(s.heads));
    j.set("order", numbers(s.order));
    j.set("divergence", numbers(s.divergence));
    j.set("distance", numbers(s.distance));
    Json merges = Json::array();
    for (const auto& m : s.merges) merges.push(Json(Json::Array{Json(m.a), Json(m.b), num(m.height)}));
    j.set("merges", std::move(merges));
    return j;
}

Json toJson(const LayerSummary& s) {
    Json j = Json::object();
    j.set("layer", Json(s.layer));
    j.set("heads", Json(s.heads));
    j.set("sinkRate", num(s.sinkRate));
    j.set("hiddenSinkHeads", Json(s.hiddenSinkHeads));
    j.set("medianEntropy", num(s.medianEntropy));
    j.set("medianEntropyNormalized", num(s.medianEntropyNormalized));
    j.set("density", num(s.density));
    Json roles = Json::object();
    for (const auto& [label, n] : s.roles) roles.set(label, Json(n));
    j.set("roles", std::move(roles));
    return j;
}

}  // namespace

Json toJson(const HeadAnalysis& h) {
    Json j = Json::object();
    j.set("layer", Json(h.layer));
    j.set("head", Json(h.head));
    j.set("label", Json(h.role.label));
    j.set("evidence", Json(h.role.evidence));
    Json st = Json::object();
    st.set("rows", Json(h.stats.rows));
    st.set("entropy", num(h.stats.entropy));
    st.set("entropyNormalized", num(h.stats.entropyNormalized));
    st.set("meanDistance", num(h.stats.meanDistance));
    st.set("firstTokenMass", num(h.stats.firstTokenMass));
    st.set("recentMass", num(h.stats.recentMass));
    j.set("stats", std::move(st));
    Json sk = Json::object();
    sk.set("alpha0", num(h.sinks.alpha0));
    sk.set("firstTokenSink", Json(h.sinks.firstTokenSink));
    sk.set("hiddenSinks", ints(h.sinks.hiddenSinks));
    if (h.sinks.learnedSink) {
        Json learned = Json::object();
        learned.set("logit", num(h.sinks.learnedSinkLogit));
        learned.set("share", num(h.sinks.learnedSinkShare));
        sk.set("learnedSink", std::move(learned));
    } else {
        sk.set("learnedSink", Json());
    }
    sk.set("alpha", numbers(h.sinks.alpha));
    j.set("sinks", std::move(sk));
    j.set("excludedKeys", ints(h.excludedKeys));
    const RoleScores& r = h.roles;
    Json rs = Json::object();
    rs.set("previousToken", num(r.previousToken));
    rs.set("nextToken", num(r.nextToken));
    rs.set("duplicateToken", num(r.duplicateToken));
    rs.set("induction", num(r.induction));
    rs.set("duplicateMatched", num(r.duplicateMatched));
    rs.set("inductionMatched", num(r.inductionMatched));
    rs.set("inductionRepeat", num(r.inductionRepeat));
    rs.set("repeatRows", Json(r.repeatRows));
    rs.set("duplicateRows", Json(r.duplicateRows));
    rs.set("inductionRows", Json(r.inductionRows));
    rs.set("localMass", num(r.localMass));
    rs.set("documentMass", num(r.documentMass));
    rs.set("documentSpread", num(r.documentSpread));
    rs.set("verticalScore", num(r.verticalScore));
    rs.set("slashScore", num(r.slashScore));
    j.set("roles", std::move(rs));
    Json masks = Json::array();
    for (const auto& m : h.masks) {
        Json e = Json::object();
        e.set("name", Json(m.name));
        e.set("params", Json(m.params));
        e.set("recall", num(m.recall));
        e.set("outputError", num(m.outputError));
        e.set("keptFraction", num(m.keptFraction));
        masks.push(std::move(e));
    }
    j.set("masks", std::move(masks));
    Json blocks = Json::array();
    for (const auto& b : h.blocks) blocks.push(toJson(b));
    j.set("blocks", std::move(blocks));
    Json prof = Json::object();
    prof.set("columnMass", numbers(h.profiles.columnMass));
    prof.set("offsetOrigin", Json(h.profiles.offsetOrigin));
    prof.set("offsetMass", numbers(h.profiles.offsetMass));
    j.set("profiles", std::move(prof));
    return j;
}

Json toJson(const ModelAnalysis& a) {
    Json j = Json::object();
    j.set("schema", Json("attnscope.analysis"));
    j.set("version", Json(kSchemaVersion));
    j.set("trace", Json(a.tracePath));
    j.set("model", Json(a.model));
    j.set("tokens", Json(a.tokens));
    j.set("backend", Json(a.backend));
    Json notes = Json::array();
    for (const auto& n : a.notes) notes.push(Json(n));
    j.set("notes", std::move(notes));
    Json opt = Json::object();
    std::vector<int64_t> layers(a.options.layers.begin(), a.options.layers.end());
    opt.set("layers", ints(layers));
    opt.set("excludeSinks", Json(a.options.excludeSinks));
    opt.set("gammas", numbers(a.options.head.gammas));
    opt.set("blockSizes", ints(a.options.head.blockSizes));
    opt.set("summaryGamma", num(a.options.summaryGamma));
    opt.set("summaryBlockSize", Json(a.options.summaryBlockSize));
    opt.set("firstTokenEps", num(a.options.head.sinks.firstTokenEps));
    opt.set("hiddenSinkThreshold", num(a.options.head.sinks.hiddenThreshold));
    opt.set("window", Json(a.options.head.masks.window));
    opt.set("excludeBos", Json(a.options.head.roles.excludeBos));
    opt.set("excludeCurrentToken", Json(a.options.head.roles.excludeCurrentToken));
    j.set("options", std::move(opt));
    j.set("sinkRate", num(a.sinkRate));
    Json layers2 = Json::array();
    for (const auto& s : a.layers) layers2.push(toJson(s));
    j.set("layers", std::move(layers2));
    Json heads = Json::array();
    for (const auto& h : a.heads) heads.push(toJson(h));
    j.set("heads", std::move(heads));
    Json sim = Json::array();
    for (const auto& s : a.similarity) sim.push(toJson(s));
    j.set("similarity", std::move(sim));
    return j;
}

}  // namespace attnscope
