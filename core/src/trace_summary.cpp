// The shared trace summary (attnscope/trace_summary.h).
#include "attnscope/trace_summary.h"

#include <string_view>

namespace attnscope {

namespace {
constexpr size_t kTextPreview = 2000;  // the report's JSON carries a preview, not a whole book

Json shapeJson(const std::vector<int64_t>& shape) {
    Json s = Json::array();
    for (int64_t d : shape) s.push(d);
    return s;
}

Json captureCheckJson(const CaptureCheck& c) {
    if (!c.present) return Json();  // null: the trace has no capture self-check
    Json check = Json::object();
    check.set("status", c.status);
    check.set("maxAbsDelta", c.maxAbsDelta);
    check.set("compared", c.compared);
    check.set("tolerance", c.tolerance);
    check.set("worstLayer", c.worstLayer);
    check.set("rowsChecked", c.rowsChecked);
    return check;
}
}  // namespace

std::vector<std::pair<const char*, const TensorView*>> traceTensorRoles(const Trace& t, int layer) {
    const LayerTensors& l = t.layer(layer);
    std::vector<std::pair<const char*, const TensorView*>> out;
    if (t.hasQK()) out = {{"q", &l.q}, {"k", &l.k}, {"v", &l.v}};
    if (l.attn) out.push_back({"attn", &*l.attn});
    if (l.out) out.push_back({"out", &*l.out});
    if (l.sinks) out.push_back({"sinks", &*l.sinks});
    return out;
}

std::vector<std::pair<std::string, std::set<std::string>>> traceDtypesByRole(const Trace& t) {
    std::vector<std::pair<std::string, std::set<std::string>>> out;
    for (const char* role : {"q", "k", "v", "attn", "out", "sinks"}) {
        std::set<std::string> names;
        for (int i = 0; i < t.numLayers(); ++i)
            for (const auto& [r, view] : traceTensorRoles(t, i))
                if (std::string_view(r) == role) names.insert(dtypeName(view->dtype));
        if (!names.empty()) out.emplace_back(role, std::move(names));
    }
    return out;
}

Json traceSummaryJson(const Trace& trace, const TraceSummaryOptions& o) {
    const TraceMetadata& m = trace.metadata();
    Json j = Json::object();
    j.set("path", trace.path());
    if (o.details) {
        j.set("format", m.format);
        j.set("version", m.version);
    }
    j.set("model", m.model);
    j.set("source", m.source);
    j.set("kind", traceKindName(m.kind));
    if (o.details)
        j.set("patchGrid",
              m.kind == TraceKind::Vision ? Json(Json::Array{Json(m.patchRows), Json(m.patchCols)}) : Json());
    j.set("tokens", trace.tokens());
    j.set("layers", trace.numLayers());
    j.set("dtype", dtypeName(trace.dtype()));
    j.set("fileBytes", trace.fileSize());
    j.set("hasQK", trace.hasQK());
    if (o.details) {
        j.set("captureCheck", captureCheckJson(m.captureCheck));
        j.set("captureCheckText", describeCaptureCheck(m.captureCheck));
        Json image;  // a vision trace's input image (tensor `image`), null without
        if (const TensorView* t = trace.imageTensor()) {
            image = Json::object();
            image.set("width", t->shape[1]);
            image.set("height", t->shape[0]);
        }
        j.set("image", std::move(image));
        j.set("prefixTokens",
              m.kind == TraceKind::Vision ? Json(trace.tokens() - int64_t(m.patchRows) * m.patchCols) : Json());
    }
    Json layers = Json::array();
    for (int l = 0; l < trace.numLayers(); ++l) {
        const LayerConfig& c = trace.config(l);
        Json lj = Json::object();
        if (o.details) lj.set("index", l);
        lj.set("heads", c.heads);
        lj.set("kvHeads", c.kvHeads);
        lj.set("headDim", c.headDim);
        lj.set("scale", c.scale);
        lj.set("causal", c.causal);
        lj.set("slidingWindow", c.slidingWindow);
        lj.set("softcap", c.softcap);
        lj.set("alibi", c.alibi);
        lj.set("positional", c.positional);
        if (o.details) {
            Json sinks = Json::array();  // learned sink logits per head (format v2), null without
            for (float s : c.sinks) sinks.push(double(s));
            lj.set("sinks", c.hasSinks() ? std::move(sinks) : Json());
            Json slopes = Json::array();  // the layer's own ALiBi slopes (format v2), null = standard
            for (float s : c.alibiSlopes) slopes.push(double(s));
            lj.set("alibiSlopes", c.alibiSlopes.empty() ? Json() : std::move(slopes));
            Json tensors = Json::object();
            for (const auto& [role, view] : traceTensorRoles(trace, l)) {
                Json v = Json::object();
                v.set("dtype", dtypeName(view->dtype));
                v.set("shape", shapeJson(view->shape));
                v.set("bytes", view->bytes);
                tensors.set(role, std::move(v));
            }
            lj.set("tensors", std::move(tensors));
        }
        layers.push(std::move(lj));
    }
    j.set("layerConfigs", std::move(layers));
    j.set("text", !o.details && m.text.size() > kTextPreview ? m.text.substr(0, kTextPreview) : m.text);
    if (o.details) {
        Json dtypes = Json::object();
        for (const auto& [role, names] : traceDtypesByRole(trace)) {
            Json list = Json::array();
            for (const auto& n : names) list.push(n);
            dtypes.set(role, std::move(list));
        }
        j.set("dtypes", std::move(dtypes));
        j.set("scanned", o.scanned);
        Json nonFinite = Json::array();
        for (const auto& n : trace.nonFinite()) {
            Json e = Json::object();
            e.set("tensor", n.tensor);
            e.set("nan", n.nan);
            e.set("inf", n.inf);
            nonFinite.push(std::move(e));
        }
        j.set("nonFinite", std::move(nonFinite));
        j.set("valid", true);
    }
    Json warnings = Json::array();
    for (const auto& w : trace.warnings()) warnings.push(w);
    j.set("warnings", std::move(warnings));
    return j;
}

}  // namespace attnscope
