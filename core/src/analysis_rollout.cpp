// Attention rollout of one query row (Abnar & Zuidema 2020; metrics: "Multiscale views"):
// Â_l = rownorm(mean_h A_l + I), r ← r·Â_l from the last layer down to layer 0, starting at
// r = e_query. Each step is a vector–matrix product: per head, pass 1 (lse) and pass 2 over only
// the rows where r is non-zero, accumulating Σ_q w_q A_h[q, :] per worker.
#include <cmath>

#include "analysis_internal.h"
#include "attnscope/trace.h"

namespace attnscope {

Result<std::vector<double>> rolloutRow(const Trace& trace, int64_t query, const RolloutOptions& options,
                                       const ProgressFn& progress) {
    const int64_t T = trace.tokens();
    const int L = trace.numLayers();
    if (!trace.hasQK())
        return Status(ErrorCode::Unsupported,
                      trace.path() + ": rollout needs Q/K tensors, the trace only stores weights");
    if (query < 0 || query >= T)
        return Status(ErrorCode::InvalidArgument, "rolloutRow: query " + std::to_string(query) +
                                                      " out of range, expected [0, " + std::to_string(T) + ")");
    const int last = options.lastLayer < 0 ? L - 1 : options.lastLayer;
    if (last >= L)
        return Status(ErrorCode::InvalidArgument,
                      "rolloutRow: lastLayer " + std::to_string(last) + ", trace has " + std::to_string(L) + " layers");
    std::vector<double> r(size_t(T), 0.0);
    r[size_t(query)] = 1.0;
    const int workers = workerCount();
    for (int l = last; l >= 0; --l) {
        const LayerConfig& cfg = trace.config(l);
        const int H = cfg.heads;
        // Rows that carry weight: r is zero beyond its last non-zero entry.
        int64_t rowsEnd = 0;
        for (int64_t i = 0; i < T; ++i)
            if (r[size_t(i)] != 0) rowsEnd = i + 1;
        std::vector<MatrixRM> qs, ks;
        std::vector<AttentionSpec> specs;
        std::vector<std::vector<float>> lses;
        std::vector<double> rowSum(size_t(rowsEnd), 1.0);  // 1 for I, + 1/H per head whose row is non-empty
        for (int h = 0; h < H; ++h) {
            auto q = trace.head(l, h, Which::Q);
            if (!q) return q.status();
            auto k = trace.head(l, h, Which::K);
            if (!k) return k.status();
            AttentionSpec spec = specForLayer(cfg, h);
            const size_t idx = size_t(l * H + h);
            if (options.excludeSinks && idx < options.sinkKeys.size())
                spec = specWithoutKeys(spec, options.sinkKeys[idx]);
            auto lse = rowLogSumExp(q->m, k->m, spec, 0, rowsEnd);
            if (!lse) return lse.status();
            for (int64_t i = 0; i < rowsEnd; ++i)
                if (std::isfinite((*lse)[size_t(i)])) rowSum[size_t(i)] += 1.0 / H;
            qs.push_back(std::move(q->m));
            ks.push_back(std::move(k->m));
            specs.push_back(spec);
            lses.push_back(std::move(*lse));
        }
        // w_q = r_q / rowSum_q, then r' = w + (1/H) Σ_h wᵀ A_h.
        Eigen::RowVectorXf w(rowsEnd);
        for (int64_t i = 0; i < rowsEnd; ++i) w(i) = float(r[size_t(i)] / rowSum[size_t(i)]);
        std::vector<Eigen::VectorXd> acc(size_t(workers), Eigen::VectorXd::Zero(T));
        for (int h = 0; h < H; ++h) {
            auto tile = [&](int wk, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
                acc[size_t(wk)].segment(kStart, P.cols()) +=
                    (w.segment(qStart, P.rows()) * P).transpose().cast<double>();
            };
            if (Status s = forEachProbabilityTile(qs[size_t(h)], ks[size_t(h)], specs[size_t(h)], lses[size_t(h)], 0,
                                                  rowsEnd, 0, T, tile);
                !s.ok())
                return s;
        }
        std::vector<double> next(size_t(T), 0.0);
        for (int64_t i = 0; i < rowsEnd; ++i) next[size_t(i)] = double(w(i));
        for (int wk = 0; wk < workers; ++wk)
            for (int64_t j = 0; j < T; ++j) next[size_t(j)] += acc[size_t(wk)](j) / H;
        r = std::move(next);
        if (progress && !progress(double(last - l + 1) / double(last + 1), "rollout"))
            return detail::cancelledStatus("rolloutRow");
    }
    return r;
}

}  // namespace attnscope
