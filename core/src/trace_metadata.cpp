// The __metadata__ block of a trace: parsing with checks (reader) and serialising (writer).
// safetensors allows only string values there, so lists and objects are JSON-encoded strings.
#include <algorithm>
#include <cmath>
#include <functional>

#include "trace_impl.h"

namespace attnscope {

namespace {

namespace key {
constexpr const char* kFormat = "format";
constexpr const char* kVersion = "version";
constexpr const char* kModel = "model";
constexpr const char* kSource = "source";
constexpr const char* kKind = "kind";
constexpr const char* kPatchGrid = "patch_grid";
constexpr const char* kText = "text";
constexpr const char* kTokens = "tokens";
constexpr const char* kTokenIds = "token_ids";
constexpr const char* kLayers = "layers";
constexpr const char* kDocuments = "documents";
constexpr const char* kExtra = "extra";
constexpr const char* kCaptureCheck = "capture_check";
// Per-layer object keys.
constexpr const char* kHeads = "heads";
constexpr const char* kKvHeads = "kv_heads";
constexpr const char* kHeadDim = "head_dim";
constexpr const char* kScale = "scale";
constexpr const char* kCausal = "causal";
constexpr const char* kSlidingWindow = "sliding_window";
constexpr const char* kSoftcap = "softcap";
constexpr const char* kAlibi = "alibi";
constexpr const char* kAlibiSlopes = "alibi_slopes";
constexpr const char* kPositional = "positional";
}  // namespace key

/// Largest head count / head dim accepted; keeps every product in int range.
constexpr double kMaxLayerDim = 1 << 24;
/// Doubles hold integers exactly up to 2^53 (token ids, windows).
constexpr double kMaxExactInteger = 9007199254740992.0;

/// Reads __metadata__ fields, each error naming the file and the field.
class MetaReader {
public:
    MetaReader(const Json& meta, const std::string& where) : m_meta(meta), m_where(where) {}

    Status error(ErrorCode code, const std::string& field, const std::string& what) const {
        return Status(code, m_where + ": __metadata__." + field + " " + what);
    }

    /// The raw string of `field`; nullptr with `status` set when absent (if required) or not a string.
    const std::string* string(const char* field, bool required, Status& status) const {
        const Json* v = m_meta.find(field);
        if (!v) {
            if (required) status = error(ErrorCode::Format, field, "is missing");
            return nullptr;
        }
        if (!v->isString()) {
            status = error(ErrorCode::Format, field, "must be a string (safetensors metadata holds strings only)");
            return nullptr;
        }
        return &v->asString();
    }

    /// The JSON array of strings encoded in the string `field`, into `out` (see
    /// Json::parseStringArray): true when it was one, false when `field` holds something else.
    Result<bool> stringArray(const char* field, std::vector<std::string>& out) const {
        Status st;
        const std::string* s = string(field, true, st);
        if (!s) return st;
        return Json::parseStringArray(*s, out, m_where + ": __metadata__." + field);
    }

    /// The JSON value encoded in the string `field`. With `lean`, that reader goes first: when it
    /// returns true it has taken the value (the result is then a null Json, to be ignored); false
    /// falls back to the general parser (which then says what is wrong).
    Result<Json> json(const char* field, bool required, bool& present,
                      const std::function<Result<bool>(const std::string&, const std::string&)>& lean = {}) const {
        Status st;
        const std::string* s = string(field, required, st);
        present = s != nullptr;
        if (!s) return st.ok() ? Result<Json>(Json()) : Result<Json>(st);
        const std::string where = m_where + ": __metadata__." + field;
        if (lean) {
            auto taken = lean(*s, where);
            if (!taken) return taken.status();
            if (*taken) return Json();
        }
        return Json::parse(*s, where);
    }

private:
    const Json& m_meta;
    std::string m_where;
};

bool integral(const Json& v, double lo, double hi) {
    return v.isNumber() && std::isfinite(v.asNumber()) && v.asNumber() == std::floor(v.asNumber()) &&
           v.asNumber() >= lo && v.asNumber() <= hi;
}

/// An integer list read by Json::parseNumberArray into `append`: true when taken; false (nothing
/// appended) when the text is not a plain array of numbers; the first non-integer or out-of-range
/// entry is refused as parseIntArray refuses it.
Result<bool> leanIntArray(const MetaReader& reader, const char* field, const std::string& text,
                          const std::string& where, double lo, double hi, auto&& append) {
    size_t i = 0;
    Status bad;
    auto taken = Json::parseNumberArray(
        text,
        [&](double x) {
            if (!integral(Json(x), lo, hi)) {
                bad = reader.error(ErrorCode::Format, std::string(field) + "[" + std::to_string(i) + "]",
                                   "is " + Json(x).dump() + ", expected an integer");
                return false;
            }
            append(x);
            ++i;
            return true;
        },
        where);
    if (!taken) return taken.status();
    if (!bad.ok()) return bad;
    return *taken;
}

/// Parses one entry of the per-layer list.
Status parseLayer(const Json& l, size_t index, const MetaReader& reader, LayerConfig& out) {
    const std::string field = std::string(key::kLayers) + "[" + std::to_string(index) + "]";
    if (!l.isObject()) return reader.error(ErrorCode::Format, field, "must be an object");
    auto need = [&](const char* k) -> const Json* { return l.find(k); };
    auto bad = [&](const char* k, const std::string& what, ErrorCode code = ErrorCode::Format) {
        return reader.error(code, field + "." + k, what);
    };
    for (const char* k : {key::kHeads, key::kKvHeads, key::kHeadDim}) {
        const Json* v = need(k);
        if (!v) return bad(k, "is missing (expected a positive integer)");
        if (!integral(*v, 1, kMaxLayerDim)) return bad(k, "is " + v->dump() + ", expected a positive integer");
    }
    out.heads = int(need(key::kHeads)->asNumber());
    out.kvHeads = int(need(key::kKvHeads)->asNumber());
    out.headDim = int(need(key::kHeadDim)->asNumber());
    if (out.heads % out.kvHeads != 0)
        return bad(key::kKvHeads,
                   "is " + std::to_string(out.kvHeads) + ", which does not divide heads = " +
                       std::to_string(out.heads) + " (GQA needs heads to be a multiple of kv_heads)",
                   ErrorCode::Shape);

    const Json* scale = need(key::kScale);
    if (!scale) return bad(key::kScale, "is missing (expected a positive number, usually 1/sqrt(head_dim))");
    if (!scale->isNumber() || !std::isfinite(scale->asNumber()) || scale->asNumber() <= 0)
        return bad(key::kScale, "is " + scale->dump() + ", expected a positive finite number");
    out.scale = scale->asNumber();

    const Json* causal = need(key::kCausal);
    if (!causal || !causal->isBool()) return bad(key::kCausal, "must be true or false");
    out.causal = causal->asBool();

    out.slidingWindow = 0;
    if (const Json* w = need(key::kSlidingWindow); w && !w->isNull()) {
        if (!integral(*w, 0, kMaxExactInteger))
            return bad(key::kSlidingWindow, "is " + w->dump() + ", expected a non-negative integer or null");
        out.slidingWindow = int64_t(w->asNumber());
    }
    out.softcap = 0;
    if (const Json* c = need(key::kSoftcap); c && !c->isNull()) {
        if (!c->isNumber() || !std::isfinite(c->asNumber()) || c->asNumber() < 0)
            return bad(key::kSoftcap, "is " + c->dump() + ", expected a non-negative number or null");
        out.softcap = c->asNumber();
    }
    out.alibi = false;
    if (const Json* a = need(key::kAlibi); a && !a->isNull()) {
        if (!a->isBool()) return bad(key::kAlibi, "must be true or false");
        out.alibi = a->asBool();
    }
    out.alibiSlopes.clear();
    if (const Json* s = need(key::kAlibiSlopes); s && !s->isNull()) {
        const std::string expected = "expected a JSON array of " + std::to_string(out.heads) +
                                     " finite numbers (one ALiBi slope per query head)";
        if (!out.alibi) return bad(key::kAlibiSlopes, "is given but alibi is not true");
        if (!s->isArray() || s->asArray().size() != size_t(out.heads))
            return bad(key::kAlibiSlopes, (s->isArray() ? "has " + std::to_string(s->asArray().size()) + " entries, "
                                                        : "is not an array, ") +
                                              expected);
        for (const Json& e : s->asArray()) {
            if (!e.isNumber() || !std::isfinite(e.asNumber()))
                return bad(key::kAlibiSlopes, "holds " + e.dump() + ", " + expected);
            out.alibiSlopes.push_back(float(e.asNumber()));
        }
    }
    out.positional = "unknown";
    if (const Json* p = need(key::kPositional); p && !p->isNull()) {
        if (!p->isString()) return bad(key::kPositional, "must be a string such as \"rope-applied\"");
        out.positional = p->asString();
    }
    return Status::success();
}

Status parseKind(const MetaReader& reader, const std::string& kind, TraceMetadata& m) {
    for (TraceKind k : {TraceKind::CausalLM, TraceKind::Encoder, TraceKind::Vision})
        if (kind == traceKindName(k)) {
            m.kind = k;
            return Status::success();
        }
    return reader.error(ErrorCode::Format, key::kKind, "is '" + kind + "', expected one of causal-lm, encoder, vision");
}

Status parseIntArray(const MetaReader& reader, const char* field, const Json& v, double lo, double hi, auto&& append) {
    if (!v.isArray()) return reader.error(ErrorCode::Format, field, "must be a JSON array of integers");
    size_t i = 0;
    for (const Json& e : v.asArray()) {
        if (!integral(e, lo, hi))
            return reader.error(ErrorCode::Format, std::string(field) + "[" + std::to_string(i) + "]",
                                "is " + e.dump() + ", expected an integer");
        append(e.asNumber());
        ++i;
    }
    return Status::success();
}

Status parseLists(const MetaReader& reader, TraceMetadata& m) {
    bool present = false;
    // Token lists are the one part of a header that grows with T: read them without a Json tree.
    auto lean = reader.stringArray(key::kTokens, m.tokens);
    if (!lean) return lean.status();
    if (!*lean) {  // not an array of strings: the general parser says what is wrong
        auto tokens = reader.json(key::kTokens, true, present);
        if (!tokens) return tokens.status();
        if (!tokens->isArray()) return reader.error(ErrorCode::Format, key::kTokens, "must be a JSON array of strings");
        for (const Json& t : tokens->asArray()) {
            if (!t.isString())
                return reader.error(ErrorCode::Format,
                                    key::kTokens + std::string("[") + std::to_string(m.tokens.size()) + "]",
                                    "is " + t.dump() + ", expected a string");
            m.tokens.push_back(t.asString());
        }
    }

    // token_ids and documents grow with T too: read without a Json tree when they are plain
    // integer lists (8 bytes an entry; a 99 MB header of zeros took 4.6 GB as a tree).
    bool taken = false;
    auto ids = reader.json(key::kTokenIds, false, present, [&](const std::string& text, const std::string& where) {
        auto r = leanIntArray(reader, key::kTokenIds, text, where, -kMaxExactInteger, kMaxExactInteger,
                              [&](double x) { m.tokenIds.push_back(int64_t(x)); });
        taken = r && *r;
        return r;
    });
    if (!ids) return ids.status();
    if (present && !taken) {
        m.tokenIds.clear();  // whatever the lean reader took before it turned the text down
        Status st = parseIntArray(reader, key::kTokenIds, *ids, -kMaxExactInteger, kMaxExactInteger,
                                  [&](double x) { m.tokenIds.push_back(int64_t(x)); });
        if (!st) return st;
    }

    taken = false;
    auto docs = reader.json(key::kDocuments, false, present, [&](const std::string& text, const std::string& where) {
        auto r = leanIntArray(reader, key::kDocuments, text, where, INT32_MIN, INT32_MAX,
                              [&](double x) { m.documents.push_back(int32_t(x)); });
        taken = r && *r;
        return r;
    });
    if (!docs) return docs.status();
    if (present && !taken) {
        m.documents.clear();
        Status st = parseIntArray(reader, key::kDocuments, *docs, INT32_MIN, INT32_MAX,
                                  [&](double x) { m.documents.push_back(int32_t(x)); });
        if (!st) return st;
    }

    auto layers = reader.json(key::kLayers, true, present);
    if (!layers) return layers.status();
    if (!layers->isArray() || layers->asArray().empty())
        return reader.error(ErrorCode::Format, key::kLayers, "must be a non-empty JSON array of layer objects");
    for (const Json& l : layers->asArray()) {
        LayerConfig c;
        Status st = parseLayer(l, m.layers.size(), reader, c);
        if (!st) return st;
        if (!c.alibiSlopes.empty() && m.version < traceformat::kSinksVersion)
            return reader.error(
                ErrorCode::Format,
                std::string(key::kLayers) + "[" + std::to_string(m.layers.size()) + "]." + key::kAlibiSlopes,
                "needs format version " + std::to_string(traceformat::kSinksVersion) + " (the file says " +
                    std::to_string(m.version) + ")");
        m.layers.push_back(std::move(c));
    }
    return Status::success();
}

Status parseVisionGrid(const MetaReader& reader, TraceMetadata& m) {
    bool present = false;
    auto grid = reader.json(key::kPatchGrid, m.kind == TraceKind::Vision, present);
    if (!grid) return grid.status();
    if (!present) return Status::success();
    const Json& g = *grid;
    if (!g.isArray() || g.size() != 2 || !integral(g.asArray()[0], 1, kMaxLayerDim) ||
        !integral(g.asArray()[1], 1, kMaxLayerDim))
        return reader.error(ErrorCode::Format, key::kPatchGrid,
                            "is " + g.dump() + ", expected [rows,cols] of positive integers");
    m.patchRows = int(g.asArray()[0].asNumber());
    m.patchCols = int(g.asArray()[1].asNumber());
    return Status::success();
}

/// The capture tool's self-check (optional): {"status": "passed"|"mismatch", "max_abs_delta": x,
/// "compared": "probabilities"|"output", "tolerance": t, "worst_layer": i, "rows_checked": n}.
Status parseCaptureCheck(const MetaReader& reader, TraceMetadata& m) {
    bool present = false;
    auto check = reader.json(key::kCaptureCheck, false, present);
    if (!check) return check.status();
    if (!present) return Status::success();
    const Json& c = *check;
    auto bad = [&](const std::string& field, const std::string& what) {
        return reader.error(ErrorCode::Format, std::string(key::kCaptureCheck) + "." + field, what);
    };
    if (!c.isObject()) return reader.error(ErrorCode::Format, key::kCaptureCheck, "must be a JSON object");
    const Json* status = c.find("status");
    if (!status || !status->isString() || (status->asString() != "passed" && status->asString() != "mismatch"))
        return bad("status", "must be \"passed\" or \"mismatch\"");
    CaptureCheck& out = m.captureCheck;
    out.present = true;
    out.status = status->asString();
    for (auto [field, target] :
         {std::pair{"max_abs_delta", &out.maxAbsDelta}, std::pair{"tolerance", &out.tolerance}}) {
        const Json* v = c.find(field);
        if (!v || !v->isNumber() || !std::isfinite(v->asNumber()) || v->asNumber() < 0)
            return bad(field, "must be a non-negative number");
        *target = v->asNumber();
    }
    if (const Json* v = c.find("compared"); v && v->isString()) out.compared = v->asString();
    if (const Json* v = c.find("worst_layer"); v && integral(*v, -1, kMaxLayerDim)) out.worstLayer = int(v->asNumber());
    if (const Json* v = c.find("rows_checked"); v && integral(*v, 0, kMaxExactInteger))
        out.rowsChecked = int64_t(v->asNumber());
    return Status::success();
}

}  // namespace

Result<TraceMetadata> parseTraceMetadata(const Json& meta, const std::string& where,
                                         std::vector<std::string>& warnings) {
    if (!meta.isObject())
        return Status(ErrorCode::Format, where + ": header entry __metadata__ must be an object of strings");
    const MetaReader reader(meta, where);
    TraceMetadata m;
    Status st;

    const std::string* format = reader.string(key::kFormat, true, st);
    if (!format) return st;
    if (*format != traceformat::kFormat)
        return reader.error(ErrorCode::Format, key::kFormat,
                            "is '" + *format + "', expected '" + traceformat::kFormat + "' (not an attnscope trace)");
    const std::string* version = reader.string(key::kVersion, true, st);
    if (!version) return st;
    m.version = 0;
    for (int v = traceformat::kMinVersion; v <= traceformat::kMaxVersion; ++v)
        if (*version == std::to_string(v)) m.version = v;
    if (m.version == 0)
        return reader.error(ErrorCode::Unsupported, key::kVersion,
                            "is '" + *version + "'; this reader supports versions " +
                                std::to_string(traceformat::kMinVersion) + " to " +
                                std::to_string(traceformat::kMaxVersion));
    m.format = *format;

    for (auto [field, target] : {std::pair{key::kModel, &m.model}, std::pair{key::kSource, &m.source}}) {
        const std::string* s = reader.string(field, false, st);
        if (!st) return st;
        if (s)
            *target = *s;
        else
            warnings.push_back(std::string("__metadata__.") + field + " is missing");
    }
    if (const std::string* text = reader.string(key::kText, false, st)) m.text = *text;
    if (!st) return st;

    const std::string* kind = reader.string(key::kKind, true, st);
    if (!kind) return st;
    if (st = parseKind(reader, *kind, m); !st) return st;
    if (st = parseVisionGrid(reader, m); !st) return st;
    if (st = parseLists(reader, m); !st) return st;

    bool present = false;
    auto extra = reader.json(key::kExtra, false, present);
    if (!extra) return extra.status();
    if (present) {
        if (!extra->isObject()) return reader.error(ErrorCode::Format, key::kExtra, "must be a JSON object");
        m.extraJson = meta.find(key::kExtra)->asString();
    }
    if (st = parseCaptureCheck(reader, m); !st) return st;
    for (const auto& [k, v] : meta.asObject()) {
        static const char* const kKnown[] = {
            key::kFormat, key::kVersion,  key::kModel,  key::kSource,    key::kKind,  key::kPatchGrid,   key::kText,
            key::kTokens, key::kTokenIds, key::kLayers, key::kDocuments, key::kExtra, key::kCaptureCheck};
        bool known = false;
        for (const char* name : kKnown) known = known || k == name;
        if (!known)
            warnings.push_back("__metadata__." + k + " is not part of trace format v" + std::to_string(m.version) +
                               " (ignored)");
    }
    return m;
}

Json layerConfigJson(const LayerConfig& c) {
    Json l = Json::object();
    l.set(key::kHeads, c.heads);
    l.set(key::kKvHeads, c.kvHeads);
    l.set(key::kHeadDim, c.headDim);
    l.set(key::kScale, c.scale);
    l.set(key::kCausal, c.causal);
    l.set(key::kSlidingWindow, c.slidingWindow > 0 ? Json(c.slidingWindow) : Json());
    l.set(key::kSoftcap, c.softcap > 0 ? Json(c.softcap) : Json());
    l.set(key::kAlibi, c.alibi);
    if (!c.alibiSlopes.empty()) {
        Json::Array slopes;
        for (float x : c.alibiSlopes) slopes.push_back(Json(double(x)));
        l.set(key::kAlibiSlopes, Json(std::move(slopes)));
    }
    l.set(key::kPositional, c.positional);
    return l;
}

std::string TraceWriter::metadataJson(const TraceMetadata& m) {
    Json meta = Json::object();
    meta.set(key::kFormat, m.format);
    const bool v2 = std::any_of(m.layers.begin(), m.layers.end(),
                                [](const LayerConfig& c) { return c.hasSinks() || !c.alibiSlopes.empty(); });
    meta.set(key::kVersion, std::to_string(std::max(m.version, v2 ? traceformat::kSinksVersion : 1)));
    meta.set(key::kModel, m.model);
    meta.set(key::kSource, m.source);
    meta.set(key::kKind, traceKindName(m.kind));
    if (m.kind == TraceKind::Vision)
        meta.set(key::kPatchGrid, Json(Json::Array{Json(m.patchRows), Json(m.patchCols)}).dump());
    meta.set(key::kText, m.text);

    Json tokens = Json::array();
    for (const auto& t : m.tokens) tokens.push(t);
    meta.set(key::kTokens, tokens.dump());
    if (!m.tokenIds.empty()) {
        Json ids = Json::array();
        for (int64_t id : m.tokenIds) ids.push(id);
        meta.set(key::kTokenIds, ids.dump());
    }

    Json layers = Json::array();
    for (const LayerConfig& c : m.layers) layers.push(layerConfigJson(c));
    meta.set(key::kLayers, layers.dump());

    if (!m.documents.empty()) {
        Json docs = Json::array();
        for (int32_t d : m.documents) docs.push(int(d));
        meta.set(key::kDocuments, docs.dump());
    }
    if (!m.extraJson.empty()) meta.set(key::kExtra, m.extraJson);
    if (m.captureCheck.present) {
        const CaptureCheck& c = m.captureCheck;
        Json check = Json::object();
        check.set("status", c.status);
        check.set("max_abs_delta", c.maxAbsDelta);
        check.set("compared", c.compared);
        check.set("tolerance", c.tolerance);
        check.set("worst_layer", c.worstLayer);
        check.set("rows_checked", c.rowsChecked);
        meta.set(key::kCaptureCheck, check.dump());
    }
    return meta.dump();
}

}  // namespace attnscope
