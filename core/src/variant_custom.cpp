// User programs as variants: parsing the "custom:" / "expr:" tokens, binding a program to a head
// (its doc[] / pos[] arrays), the mask pair by pair and the block classification.
#include "variant_custom.h"

#include "attnscope/split.h"

#include <algorithm>
#include <cstring>
#include <mutex>

namespace attnscope {
namespace {

constexpr const char* kFilePrefix = "custom:";
constexpr const char* kInlinePrefix = "expr:";

bool startsWith(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

/// doc / pos arrays per document layout: the layouts in use are few (one per trace or split), so
/// a short list, matched by content, saves rebuilding O(T) arrays per pair.
class TokenCache {
public:
    std::shared_ptr<const ExprTokens> get(const VariantSpec& v, int64_t T) {
        std::lock_guard lock(m_mutex);
        for (const auto& e : m_entries)
            if (e.tokens == T && e.documents == v.documents && e.ids == v.documentIds) return e.arrays;
        auto arrays = std::make_shared<const ExprTokens>(exprTokensFromDocuments(variantDocumentIds(v, T)));
        if (m_entries.size() >= kEntries) m_entries.erase(m_entries.begin());
        m_entries.push_back({T, v.documents, v.documentIds, arrays});
        return arrays;
    }

private:
    static constexpr size_t kEntries = 4;
    struct Entry {
        int64_t tokens;
        int documents;
        std::vector<int32_t> ids;
        std::shared_ptr<const ExprTokens> arrays;
    };
    std::mutex m_mutex;
    std::vector<Entry> m_entries;
};

TokenCache& tokenCache() {
    static TokenCache cache;
    return cache;
}

ExprBinding bindingOf(const VariantSpec& v, int64_t T, int head, int heads, int batch,
                      std::shared_ptr<const ExprTokens>* keep) {
    ExprBinding b;
    b.tokens = T, b.heads = heads, b.head = head, b.batch = batch;
    const uint8_t deps = v.expr->maskDeps() | v.expr->scoreDeps();
    if (deps & kDepArrays) {
        *keep = tokenCache().get(v, T);
        b.doc = (*keep)->doc.data();
        b.pos = (*keep)->pos.data();
    }
    return b;
}

}  // namespace

bool isCustomVariantToken(const std::string& text) {
    return startsWith(text, kFilePrefix) || startsWith(text, kInlinePrefix);
}

Result<VariantSpec> parseCustomVariant(const std::string& text) {
    const bool file = startsWith(text, kFilePrefix);
    const std::string body = text.substr(std::strlen(file ? kFilePrefix : kInlinePrefix));
    if (body.empty())
        return Status{ErrorCode::InvalidArgument, std::string("variant \"") + text + "\": expected " +
                                                      (file ? "a program file after custom: (custom:FILE.attnvar)"
                                                            : "a program after expr: (expr:mask: k <= q)")};
    auto parsed = file ? loadVariantExpr(body) : parseVariantExpr(body, "expr");
    if (!parsed) return parsed.status();
    VariantSpec v;
    v.kind = VariantKind::Custom;
    v.expr = *parsed;
    v.label = v.expr->canonical;
    if (v.expr->documents > 0) v.documents = v.expr->documents;
    return v;
}

std::vector<std::string> splitVariantList(const std::string& text) { return splitList(text, ','); }

std::shared_ptr<const BoundVariantExpr> bindCustomVariant(const VariantSpec& v, int64_t T, int head, int heads,
                                                          int batch) {
    auto bound = std::make_shared<BoundVariantExpr>();
    bound->expr = v.expr;
    bound->binding = bindingOf(v, T, head, heads, batch, &bound->tokens);
    return bound;
}

bool customAllows(const VariantSpec& v, int64_t T, int64_t q, int64_t k, int head, int heads, int batch) {
    if (!v.expr) return false;
    std::shared_ptr<const ExprTokens> keep;
    return evalMaskPair(*v.expr, bindingOf(v, T, head, heads, batch, &keep), q, k);
}

BlockState customBlockState(const VariantSpec& v, int64_t T, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                            bool distinguishFull) {
    if (!v.expr) return BlockState::Empty;
    std::shared_ptr<const ExprTokens> keep;
    const ExprBinding at = bindingOf(v, T, 0, 1, 0, &keep);
    switch (maskOverRect(*v.expr, at, q0, q1, k0, k1)) {
    case ExprTruth::False: return BlockState::Empty;
    case ExprTruth::True: return distinguishFull ? BlockState::Full : BlockState::Partial;
    case ExprTruth::Unknown: break;
    }
    std::vector<uint8_t> row(size_t(k1 - k0));
    bool any = false, all = true;
    for (int64_t q = q0; q < q1 && !(any && (!all || !distinguishFull)); ++q) {
        evalMaskRow(*v.expr, at, q, k0, k1 - k0, row.data());
        for (uint8_t r : row) {
            any = any || r;
            all = all && r;
        }
    }
    if (!any) return BlockState::Empty;
    return all && distinguishFull ? BlockState::Full : BlockState::Partial;
}

}  // namespace attnscope
