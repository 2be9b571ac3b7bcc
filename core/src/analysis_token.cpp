// Token level: one query's full attention row, and one key's column (who attends to it).
#include <algorithm>
#include <numeric>

#include "analysis_internal.h"

namespace attnscope {

namespace {

std::vector<std::pair<int64_t, float>> topOf(const std::vector<float>& p, int topK) {
    std::vector<int64_t> idx(p.size());
    std::iota(idx.begin(), idx.end(), 0);
    const size_t n = std::min(idx.size(), size_t(std::max(0, topK)));
    std::partial_sort(idx.begin(), idx.begin() + long(n), idx.end(), [&](int64_t a, int64_t b) {
        return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b);
    });
    std::vector<std::pair<int64_t, float>> out;
    for (size_t x = 0; x < n; ++x) out.emplace_back(idx[x], p[size_t(idx[x])]);
    return out;
}

Status checkQK(const MatrixRM& q, const MatrixRM& k, const char* fn) {
    if (q.rows() == 0 || q.rows() != k.rows() || q.cols() != k.cols())
        return {ErrorCode::Shape, std::string(fn) + ": q is [" + std::to_string(q.rows()) + "×" +
                                      std::to_string(q.cols()) + "] and k [" + std::to_string(k.rows()) + "×" +
                                      std::to_string(k.cols()) + "], expected the same non-empty shape"};
    return {};
}

}  // namespace

Result<AttentionRow> attentionRow(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t query,
                                  int topK) {
    if (Status s = checkQK(q, k, "attentionRow"); !s.ok()) return s;
    const int64_t T = q.rows();
    if (query < 0 || query >= T)
        return Status(ErrorCode::InvalidArgument, "attentionRow: query " + std::to_string(query) +
                                                      " out of range, expected [0, " + std::to_string(T) + ")");
    auto lse = rowLogSumExp(q, k, spec, query, query + 1);
    if (!lse) return lse.status();
    AttentionRow row;
    row.query = query;
    row.probabilities.assign(size_t(T), 0.0f);
    auto tile = [&](int, int64_t, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
        for (int64_t b = 0; b < P.cols(); ++b) row.probabilities[size_t(kStart + b)] = P(0, b);
    };
    if (Status s = forEachProbabilityTile(q, k, spec, *lse, query, query + 1, 0, T, tile); !s.ok()) return s;
    row.top = topOf(row.probabilities, topK);
    return row;
}

Result<AttentionColumn> attentionColumn(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t key,
                                        int topK, const std::vector<float>* lse, const ProgressFn& progress) {
    if (Status s = checkQK(q, k, "attentionColumn"); !s.ok()) return s;
    const int64_t T = q.rows();
    if (key < 0 || key >= T)
        return Status(ErrorCode::InvalidArgument, "attentionColumn: key " + std::to_string(key) +
                                                      " out of range, expected [0, " + std::to_string(T) + ")");
    std::vector<float> own;
    if (!lse || int64_t(lse->size()) != T) {
        auto l = rowLogSumExp(q, k, spec, 0, T, detail::subProgress(progress, 0.0, 0.9));
        if (!l) return l.status();
        own = std::move(*l);
        lse = &own;
    }
    AttentionColumn col;
    col.key = key;
    col.probabilities.assign(size_t(T), 0.0f);
    auto tile = [&](int, int64_t qStart, int64_t, const Eigen::Ref<const MatrixRM>& P) {
        for (int64_t a = 0; a < P.rows(); ++a) col.probabilities[size_t(qStart + a)] = P(a, 0);
    };
    // A one-key-wide rectangle: pass 2 costs O(T·d).
    if (Status s =
            forEachProbabilityTile(q, k, spec, *lse, 0, T, key, key + 1, tile, detail::subProgress(progress, 0.9, 1.0));
        !s.ok())
        return s;
    int64_t viewers = 0;
    double sum = 0;
    for (int64_t i = 0; i < T; ++i)
        if (spec.mask.allows(i, key)) ++viewers, sum += col.probabilities[size_t(i)];
    col.alpha = viewers > 0 ? sum / double(viewers) : 0.0;  // metrics: "Sinks" alpha_k
    col.top = topOf(col.probabilities, topK);
    return col;
}

}  // namespace attnscope
