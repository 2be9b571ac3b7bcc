// Attention variants on the CPU: parsing, the mask_mod (variantAllows), block density, the CPU
// reference spec of each softmax variant and the linear-attention reference.
#include "attnscope/variants.h"

#include "variant_custom.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

namespace attnscope {

const char* variantKindName(VariantKind k) {
    switch (k) {
    case VariantKind::Full: return "full";
    case VariantKind::Causal: return "causal";
    case VariantKind::Sliding: return "sliding";
    case VariantKind::PrefixLM: return "prefix";
    case VariantKind::Document: return "document";
    case VariantKind::DilatedSliding: return "dilated";
    case VariantKind::Alibi: return "alibi";
    case VariantKind::Softcap: return "softcap";
    case VariantKind::RelativeBias: return "relbias";
    case VariantKind::BlockSparse: return "blocksparse";
    case VariantKind::LinearAttention: return "linear";
    case VariantKind::Decode: return "decode";
    case VariantKind::Custom: return "custom";
    }
    return "?";
}

namespace {

Status badToken(const std::string& text, const std::string& what) {
    return {ErrorCode::InvalidArgument, "variant \"" + text + "\": " + what};
}

/// Parses a positive integer parameter ("sliding:1024"); the error names the variant and field.
Result<int64_t> parsePositive(const std::string& token, const std::string& field, const std::string& value) {
    char* end = nullptr;
    long long v = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v <= 0)
        return badToken(token, field + " must be a positive integer, got \"" + value + "\"");
    return static_cast<int64_t>(v);
}

Result<double> parseNumber(const std::string& token, const std::string& field, const std::string& value) {
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(v))
        return badToken(token, field + " must be a number, got \"" + value + "\"");
    return v;
}

std::vector<std::string> splitParts(const std::string& text, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        size_t pos = text.find(sep, start);
        parts.push_back(text.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
        if (pos == std::string::npos) break;
        start = pos + 1;
    }
    return parts;
}

/// One variant token without composition operators.
Result<VariantSpec> parseSingle(const std::string& token) {
    std::vector<std::string> p = splitParts(token, ':');
    const std::string& name = p[0];
    VariantSpec v;
    v.label = token;
    auto needArgs = [&](size_t lo, size_t hi) -> Status {
        if (p.size() - 1 >= lo && p.size() - 1 <= hi) return {};
        // Appended piece by piece: GCC 12's -Wrestrict misfires on "-" + std::to_string(hi)
        // (a known false positive in its inlined string insert).
        std::string range = std::to_string(lo);
        if (hi > lo) {
            range += '-';
            range += std::to_string(hi);
        }
        return badToken(token, "\"" + name + "\" takes " + range + " parameter(s)");
    };
#define ATTNSCOPE_TRY(expr) \
    do {                    \
        Status s_ = (expr); \
        if (!s_) return s_; \
    } while (0)
#define ATTNSCOPE_TRY_ASSIGN(dst, expr) \
    do {                                \
        auto r_ = (expr);               \
        if (!r_) return r_.status();    \
        dst = *r_;                      \
    } while (0)
    if (name == "full") {
        ATTNSCOPE_TRY(needArgs(0, 0));
        v.kind = VariantKind::Full;
    } else if (name == "causal") {
        ATTNSCOPE_TRY(needArgs(0, 0));
        v.kind = VariantKind::Causal;
    } else if (name == "sliding") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::Sliding;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(v.window, parsePositive(token, "window", p[1]));
    } else if (name == "prefix") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::PrefixLM;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(v.prefix, parsePositive(token, "prefix", p[1]));
    } else if (name == "document") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::Document;
        int64_t n = v.documents;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(n, parsePositive(token, "documents", p[1]));
        v.documents = static_cast<int>(std::min<int64_t>(n, 1 << 30));
    } else if (name == "dilated") {
        ATTNSCOPE_TRY(needArgs(0, 2));
        v.kind = VariantKind::DilatedSliding;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(v.window, parsePositive(token, "window", p[1]));
        if (p.size() > 2) ATTNSCOPE_TRY_ASSIGN(v.dilation, parsePositive(token, "dilation", p[2]));
    } else if (name == "alibi") {
        ATTNSCOPE_TRY(needArgs(0, 0));
        v.kind = VariantKind::Alibi;
    } else if (name == "softcap") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::Softcap;
        double c = v.softcap;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(c, parseNumber(token, "softcap", p[1]));
        if (c <= 0) return badToken(token, "softcap must be > 0");
        v.softcap = static_cast<float>(c);
    } else if (name == "relbias") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::RelativeBias;
        double b = v.bias;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(b, parseNumber(token, "bias", p[1]));
        v.bias = static_cast<float>(b);
    } else if (name == "topk" || name == "gamma" || name == "vslash" || name == "blocks") {
        ATTNSCOPE_TRY(needArgs(name == "topk" || name == "gamma" ? 1 : 0, 1));
        v.kind = VariantKind::BlockSparse;
        if (name == "topk") {
            auto k = parsePositive(token, "k", p[1]);
            if (!k) return k.status();
        } else if (name == "gamma") {
            double g = 0;
            ATTNSCOPE_TRY_ASSIGN(g, parseNumber(token, "gamma", p[1]));
            if (g <= 0 || g > 1) return badToken(token, "gamma must be in (0, 1]");
        }
        v.blockSource = token;
    } else if (name == "linear") {
        ATTNSCOPE_TRY(needArgs(0, 1));
        v.kind = VariantKind::LinearAttention;
        double d = 0;
        if (p.size() > 1) ATTNSCOPE_TRY_ASSIGN(d, parseNumber(token, "decay", p[1]));
        if (d < 0) return badToken(token, "decay must be >= 0");
        v.decay = static_cast<float>(d);
    } else if (name == "decode") {
        ATTNSCOPE_TRY(needArgs(0, 0));
        v.kind = VariantKind::Decode;
    } else {
        return badToken(token, "unknown variant \"" + name +
                                   "\" (expected full, causal, sliding:W, prefix:P, document:N, dilated:W:D, alibi, "
                                   "softcap:C, relbias:B, topk:K, gamma:G, vslash, linear[:decay], decode)");
    }
#undef ATTNSCOPE_TRY
#undef ATTNSCOPE_TRY_ASSIGN
    return v;
}

bool isMaskVariant(VariantKind k) { return k != VariantKind::LinearAttention && k != VariantKind::Decode; }

/// Document of token t: explicit ids when given, else `documents` contiguous equal parts.
int32_t documentOf(const VariantSpec& v, int64_t T, int64_t t) {
    if (!v.documentIds.empty())
        return t < static_cast<int64_t>(v.documentIds.size()) ? v.documentIds[static_cast<size_t>(t)] : -1;
    int64_t docs = std::max<int64_t>(1, v.documents);
    return static_cast<int32_t>(t * docs / std::max<int64_t>(1, T));
}

/// The base mask of one variant (no composition).
bool baseAllows(const VariantSpec& v, int64_t T, int64_t q, int64_t k) {
    const int64_t d = q - k;
    switch (v.kind) {
    case VariantKind::Full:
    case VariantKind::Decode: return true;
    case VariantKind::Custom: return false;  // variantAllows evaluates the program before this
    case VariantKind::Causal:
    case VariantKind::Alibi:
    case VariantKind::Softcap:
    case VariantKind::RelativeBias:
    case VariantKind::LinearAttention: return d >= 0;
    case VariantKind::Sliding: return d >= 0 && d < v.window;
    case VariantKind::PrefixLM: return k < v.prefix || d >= 0;
    case VariantKind::Document: return d >= 0 && documentOf(v, T, q) == documentOf(v, T, k);
    case VariantKind::DilatedSliding:
        return d >= 0 && d < v.window * v.dilation && d % std::max<int64_t>(1, v.dilation) == 0;
    case VariantKind::BlockSparse: {
        if (d < 0 || !v.blocks) return false;
        const int64_t bs = std::max<int64_t>(1, v.blockSize);
        const int64_t nb = (T + bs - 1) / bs;
        const size_t idx = static_cast<size_t>((q / bs) * nb + k / bs);
        return idx < v.blocks->size() && (*v.blocks)[idx] != 0;
    }
    }
    return false;
}

/// A superset [lo, hi] of the keys row q may see (used to classify blocks quickly).
std::pair<int64_t, int64_t> rowHull(const VariantSpec& v, int64_t T, int64_t q) {
    std::pair<int64_t, int64_t> h{0, T - 1};
    switch (v.kind) {
    case VariantKind::Full:
    case VariantKind::Decode: break;
    case VariantKind::PrefixLM: h = {0, std::max(q, std::min(T, v.prefix) - 1)}; break;
    case VariantKind::Sliding: h = {q - v.window + 1, q}; break;
    case VariantKind::DilatedSliding: h = {q - v.window * v.dilation + 1, q}; break;
    case VariantKind::Document:
        if (v.documentIds.empty()) {
            // Even split: the first token of q's document.
            const int64_t docs = std::max<int64_t>(1, v.documents);
            const int64_t doc = q * docs / std::max<int64_t>(1, T);
            h = {(doc * T + docs - 1) / docs, q};
        } else {
            h = {0, q};
        }
        break;
    default: h = {0, q}; break;
    }
    if (v.other && v.combine != MaskCombine::None) {
        auto o = rowHull(*v.other, T, q);
        if (v.combine == MaskCombine::And)
            h = {std::max(h.first, o.first), std::min(h.second, o.second)};
        else
            h = {std::min(h.first, o.first), std::max(h.second, o.second)};
    }
    return {std::max<int64_t>(h.first, 0), std::min(h.second, T - 1)};
}

/// True when no pair of the block [q0, q1) × [k0, k1) can be allowed, decided from block-level
/// data alone: a block list whose overlapping blocks are all dropped, or explicit document ids
/// whose value ranges on the rows and on the columns do not meet. Without it an empty block of
/// such a mask costs one mask_mod call per pair (128² per block, 10⁹ at 128k tokens).
bool certainlyEmpty(const VariantSpec& v, int64_t T, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    bool empty = false;
    if (v.kind == VariantKind::BlockSparse) {
        if (!v.blocks) return true;  // baseAllows allows nothing without a list
        const int64_t bs = std::max<int64_t>(1, v.blockSize);
        const int64_t nb = (T + bs - 1) / bs;
        empty = true;
        for (int64_t br = q0 / bs; br <= (q1 - 1) / bs && empty; ++br)
            for (int64_t bc = k0 / bs; bc <= (k1 - 1) / bs && empty; ++bc) {
                const size_t idx = static_cast<size_t>(br * nb + bc);
                empty = !(idx < v.blocks->size() && (*v.blocks)[idx] != 0);
            }
    } else if (v.kind == VariantKind::Document && !v.documentIds.empty()) {
        auto range = [&](int64_t a, int64_t b) {
            std::pair<int32_t, int32_t> r{documentOf(v, T, a), documentOf(v, T, a)};
            for (int64_t t = a + 1; t < b; ++t) {
                const int32_t d = documentOf(v, T, t);
                r = {std::min(r.first, d), std::max(r.second, d)};
            }
            return r;
        };
        const auto rows = range(q0, q1), cols = range(k0, k1);
        empty = rows.second < cols.first || cols.second < rows.first;
    }
    if (!v.other || v.combine == MaskCombine::None) return empty;
    const bool otherEmpty = certainlyEmpty(*v.other, T, q0, q1, k0, k1);
    return v.combine == MaskCombine::And ? (empty || otherEmpty) : (empty && otherEmpty);
}

/// Merges mask `b` into `a` for an AND composition; fails when both set the same condition.
Status mergeAnd(MaskSpec& a, const MaskSpec& b) {
    auto conflict = [](const char* field) {
        return Status{ErrorCode::Unsupported,
                      std::string("variant composition: both masks set MaskSpec.") + field +
                          "; this AND has no single reference MaskSpec (variantAllows still evaluates it)"};
    };
    a.causal = a.causal || b.causal;
    if (b.window > 0) {
        if (a.window > 0) return conflict("window");
        a.window = b.window;
        a.dilation = b.dilation;
    }
    if (b.prefix > 0) return conflict("prefix");
    if (a.prefix > 0 && (b.window > 0 || !b.documents.empty() || b.blocks)) return conflict("prefix");
    if (!b.documents.empty()) {
        if (!a.documents.empty()) return conflict("documents");
        a.documents = b.documents;
    }
    if (b.blocks) {
        if (a.blocks) return conflict("blocks");
        a.blocks = b.blocks;
        a.blockSize = b.blockSize;
        a.blockCols = b.blockCols;
    }
    return {};
}

}  // namespace

Result<VariantSpec> parseVendorVariant(const std::string& text);  // variant_vendor.cpp

Result<VariantSpec> parseVariant(const std::string& text) {
    if (text.empty()) return badToken(text, "empty variant name");
    if (text.rfind("cudnn:", 0) == 0) return parseVendorVariant(text);
    if (isCustomVariantToken(text)) return parseCustomVariant(text);
    // Compositions nest to the right: "A&B|C" = A & (B | C).
    size_t op = text.find_first_of("&|");
    if (op == std::string::npos) return parseSingle(text);
    if (op == 0 || op + 1 == text.size()) return badToken(text, "composition needs a variant on each side of & or |");
    auto lhs = parseSingle(text.substr(0, op));
    if (!lhs) return lhs.status();
    auto rhs = parseVariant(text.substr(op + 1));
    if (!rhs) return rhs.status();
    if (!isMaskVariant(lhs->kind) || !isMaskVariant(rhs->kind))
        return badToken(text, "only mask variants compose (not linear or decode)");
    if (rhs->kind == VariantKind::Custom)
        return badToken(text, "custom: and expr: programs do not compose (write the composition in the program)");
    VariantSpec v = *lhs;
    v.label = text;
    v.combine = text[op] == '&' ? MaskCombine::And : MaskCombine::Or;
    v.other = std::make_shared<const VariantSpec>(std::move(*rhs));
    return v;
}

std::vector<int32_t> variantDocumentIds(const VariantSpec& v, int64_t T) {
    std::vector<int32_t> ids(static_cast<size_t>(std::max<int64_t>(T, 0)));
    for (int64_t t = 0; t < T; ++t) ids[static_cast<size_t>(t)] = documentOf(v, T, t);
    return ids;
}

bool variantAllows(const VariantSpec& v, int64_t T, int64_t q, int64_t k, int head, int heads, int batch) {
    if (q < 0 || k < 0 || k >= T) return false;
    if (v.kind == VariantKind::Custom) return customAllows(v, T, q, k, head, heads, batch);
    bool a = baseAllows(v, T, q, k);
    if (!v.other || v.combine == MaskCombine::None) return a;
    bool b = variantAllows(*v.other, T, q, k);
    return v.combine == MaskCombine::And ? (a && b) : (a || b);
}

BlockState variantBlockState(const VariantSpec& v, int64_t T, int64_t qBlock, int64_t kBlock, int64_t blockSize,
                             bool distinguishFull) {
    const int64_t q0 = qBlock * blockSize, k0 = kBlock * blockSize;
    return variantRectState(v, T, q0, std::min(T, q0 + blockSize), k0, std::min(T, k0 + blockSize), distinguishFull);
}

BlockState variantRectState(const VariantSpec& v, int64_t T, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                            bool distinguishFull) {
    q0 = std::max<int64_t>(q0, 0), k0 = std::max<int64_t>(k0, 0);
    q1 = std::min(q1, T), k1 = std::min(k1, T);
    if (q0 >= q1 || k0 >= k1) return BlockState::Empty;
    if (v.kind == VariantKind::Custom) return customBlockState(v, T, q0, q1, k0, k1, distinguishFull);
    // Row hulls grow with q for every mask here, so the block's hull is [lo(q0), hi(q1-1)].
    if (rowHull(v, T, q0).first >= k1 || rowHull(v, T, q1 - 1).second < k0) return BlockState::Empty;
    if (certainlyEmpty(v, T, q0, q1, k0, k1)) return BlockState::Empty;
    bool any = false, all = distinguishFull;
    for (int64_t q = q0; q < q1 && (all || !any); ++q) {
        auto [lo, hi] = rowHull(v, T, q);
        const int64_t a = std::max(lo, k0), b = std::min(hi, k1 - 1);
        if (a > k0 || b < k1 - 1) all = false;
        for (int64_t k = a; k <= b; ++k) {
            if (variantAllows(v, T, q, k)) {
                any = true;
                if (!all) break;  // only existence is still in question
            } else if (all) {
                all = false;
                if (any) break;
            }
        }
    }
    if (!any) return BlockState::Empty;
    return all ? BlockState::Full : BlockState::Partial;
}

double blockDensity(const VariantSpec& v, int64_t T) {
    if (T <= 0) return 0.0;
    if (v.kind == VariantKind::Decode || (v.kind == VariantKind::Full && !v.other)) return 1.0;
    const int64_t bs = 128;
    const int64_t nb = (T + bs - 1) / bs;
    int64_t computed = 0;
    for (int64_t qb = 0; qb < nb; ++qb)
        for (int64_t kb = 0; kb < nb; ++kb)
            if (variantBlockState(v, T, qb, kb, bs, false) != BlockState::Empty) ++computed;
    return static_cast<double>(computed) / static_cast<double>(nb * nb);
}

Result<AttentionSpec> referenceSpec(const VariantSpec& v, int64_t T, int head, int heads, float scale) {
    if (!isMaskVariant(v.kind))
        return Status{ErrorCode::Unsupported, std::string("referenceSpec: variant \"") + variantKindName(v.kind) +
                                                  "\" is not a softmax attention (use linearAttentionReference or "
                                                  "referenceAttention with qOffset for decode)"};
    if (!(scale > 0) || !std::isfinite(scale))
        return Status{ErrorCode::InvalidArgument, "referenceSpec: scale must be a positive number (1/sqrt(d))"};
    if (heads <= 0 || head < 0 || head >= heads)
        return Status{ErrorCode::InvalidArgument,
                      "referenceSpec: head " + std::to_string(head) + " not in [0, " + std::to_string(heads) + ")"};
    AttentionSpec s;
    s.scale = scale;
    MaskSpec& m = s.mask;
    if (v.kind == VariantKind::Custom) {
        m.expr = bindCustomVariant(v, T, head, heads, 0);
        return s;
    }
    switch (v.kind) {
    case VariantKind::Full: break;
    case VariantKind::Causal: m.causal = true; break;
    case VariantKind::Sliding:
        m.causal = true;
        m.window = v.window;
        break;
    case VariantKind::PrefixLM:
        m.causal = true;
        m.prefix = v.prefix;
        break;
    case VariantKind::Document:
        m.causal = true;
        m.documents = variantDocumentIds(v, T);
        break;
    case VariantKind::DilatedSliding:
        m.causal = true;
        m.window = v.window * v.dilation;
        m.dilation = v.dilation;
        break;
    case VariantKind::Alibi:
        m.causal = true;
        s.alibiSlope = alibiSlope(head, heads);
        break;
    case VariantKind::Softcap:
        m.causal = true;
        s.softcap = v.softcap;
        break;
    case VariantKind::RelativeBias:
        m.causal = true;
        s.relativeBias = v.bias;
        break;
    case VariantKind::BlockSparse: {
        const int64_t bs = std::max<int64_t>(1, v.blockSize);
        const int64_t nb = (T + bs - 1) / bs;
        if (!v.blocks || static_cast<int64_t>(v.blocks->size()) != nb * nb)
            return Status{ErrorCode::InvalidArgument, "referenceSpec: VariantSpec.blocks of \"" + v.label +
                                                          "\" must hold " + std::to_string(nb * nb) +
                                                          " flags (ceil(T/" + std::to_string(bs) + ")^2), got " +
                                                          std::to_string(v.blocks ? v.blocks->size() : 0)};
        m.causal = true;
        m.blocks = v.blocks;
        m.blockSize = bs;
        m.blockCols = nb;
        break;
    }
    default: break;
    }
    if (v.other && v.combine != MaskCombine::None) {
        if (v.combine == MaskCombine::Or)
            return Status{ErrorCode::Unsupported, "referenceSpec: OR composition \"" + v.label +
                                                      "\" has no MaskSpec form (variantAllows evaluates it)"};
        auto o = referenceSpec(*v.other, T, head, heads, scale);
        if (!o) return o.status();
        Status st = mergeAnd(m, o->mask);
        if (!st) return st;
        if (s.softcap == 0) s.softcap = o->softcap;
        if (s.alibiSlope == 0) s.alibiSlope = o->alibiSlope;
        if (s.relativeBias == 0) s.relativeBias = o->relativeBias;
    }
    return s;
}

Result<MatrixRM> linearAttentionReference(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, float decay) {
    if (q.rows() != k.rows() || k.rows() != v.rows() || q.cols() != k.cols())
        return Status{ErrorCode::Shape, "linearAttentionReference: q [" + std::to_string(q.rows()) + "x" +
                                            std::to_string(q.cols()) + "], k [" + std::to_string(k.rows()) + "x" +
                                            std::to_string(k.cols()) + "], v [" + std::to_string(v.rows()) + "x" +
                                            std::to_string(v.cols()) +
                                            "]: expected equal token counts and q/k of equal width"};
    if (!(decay >= 0) || !std::isfinite(decay))
        return Status{ErrorCode::InvalidArgument, "linearAttentionReference: decay must be >= 0"};
    // Recurrence S_i = λ S_{i-1} + k_iᵀ v_i, o_i = q_i S_i: exact and O(T·d·dv), in double.
    const double lambda = std::exp(-static_cast<double>(decay));
    MatrixRMd state = MatrixRMd::Zero(k.cols(), v.cols());
    MatrixRM out(q.rows(), v.cols());
    for (Eigen::Index i = 0; i < q.rows(); ++i) {
        state *= lambda;
        state.noalias() += k.row(i).cast<double>().transpose() * v.row(i).cast<double>();
        out.row(i) = (q.row(i).cast<double>() * state).cast<float>();
    }
    return out;
}

}  // namespace attnscope
