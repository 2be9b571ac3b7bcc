// analyzeHead: every per-head metric in three passes (metrics: "Cost classes" 2P).
//   pass 1: row logsumexp L_i;
//   pass 2: probability tiles p_ij = exp(s_ij - L_i), each taken once by a HeadAccumulator
//           (analysis_accumulator.h) into O(T) row/column vectors, block mass matrices and the
//           candidate masks' partial outputs;
//   pass 3: the same tiles restricted to the top-k block mask (its output error).
// accumulateHead runs the passes into HeadSums (the CPU backend); finishHead turns HeadSums from
// either backend into the metrics, through each metric file's finishing function.
#include <algorithm>

#include "analysis_accumulator.h"
#include "attnscope/analysis_sums.h"

namespace attnscope {

namespace {

Status validate(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const HeadAnalysisOptions& o) {
    if (q.rows() == 0) return {ErrorCode::InvalidArgument, "analyzeHead: q has no rows, expected T ≥ 1 tokens"};
    if (k.rows() != q.rows() || v.rows() != q.rows())
        return {ErrorCode::Shape, "analyzeHead: q/k/v rows " + std::to_string(q.rows()) + "/" +
                                      std::to_string(k.rows()) + "/" + std::to_string(v.rows()) +
                                      ", expected the same T for all three"};
    if (k.cols() != q.cols())
        return {ErrorCode::Shape, "analyzeHead: head dim of q (" + std::to_string(q.cols()) + ") and k (" +
                                      std::to_string(k.cols()) + ") differ"};
    for (int64_t b : o.blockSizes)
        if (b <= 0)
            return {ErrorCode::InvalidArgument, "analyzeHead: block size " + std::to_string(b) + ", expected > 0"};
    for (double g : o.gammas)
        if (!(g > 0 && g <= 1))
            return {ErrorCode::InvalidArgument, "analyzeHead: gamma " + std::to_string(g) + ", expected (0, 1]"};
    if (o.masks.enabled && (o.masks.topKBlockSize <= 0 || o.masks.window <= 0 || o.masks.sinkWindow <= 0))
        return {ErrorCode::InvalidArgument, "analyzeHead: candidate mask window/block size must be > 0"};
    return {};
}

}  // namespace

namespace detail {

HeadAccumulator::HeadAccumulator(const MatrixRM& v, const AttentionSpec& spec, const HeadContext& context,
                                 const HeadAnalysisOptions& options, std::vector<CandidateMask> masks, int workers)
    : m_tokens(v.rows()), m_rows(v.rows(), spec.mask.causal, options.roles.recentTokens),
      m_roles(v.rows(), context, options.roles), m_profiles(v.rows(), spec.mask.causal, workers),
      m_blocks(accumulatedBlockSizes(options), v.rows(), workers),
      m_masked(v, std::move(masks), options.masks.enabled, workers) {}

void HeadAccumulator::addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    m_rows.addTile(qStart, kStart, P);
    m_roles.addTile(qStart, kStart, P);
    m_profiles.addTile(worker, qStart, kStart, P);
    m_blocks.addTile(worker, qStart, kStart, P);
    m_masked.addTile(worker, qStart, kStart, P);
}

HeadSums HeadAccumulator::merge(std::vector<float> lse) {
    HeadSums sums;
    sums.tokens = m_tokens;
    sums.lse = std::move(lse);
    m_rows.moveInto(sums);
    m_roles.moveInto(sums);
    m_profiles.merge(sums);
    m_blocks.merge(sums);
    m_masked.moveInto(sums);  // after the row mass: the error terms normalise by it
    return sums;
}

Result<HeadAnalysis> analyzeHeadKeepLse(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                        const AttentionSpec& spec, const HeadContext& context,
                                        const HeadAnalysisOptions& options, const ProgressFn& progress,
                                        std::vector<float>* lseOut) {
    auto sums = accumulateHead(q, k, v, spec, context, options, progress);
    if (!sums) return sums.status();
    auto h = finishHead(*sums, spec, context, options);
    if (!h) return h.status();
    if (progress && !progress(1.0, "analyze head")) return cancelledStatus("analyzeHead");
    if (lseOut) *lseOut = std::move(sums->lse);
    return h;
}

Result<HeadSums> accumulateHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                const HeadContext& context, const HeadAnalysisOptions& options,
                                const ProgressFn& progress) {
    if (Status s = validate(q, k, v, options); !s.ok()) return s;
    const int64_t T = q.rows();

    // Pass 1: L_i, then the candidate masks (vertical-slash from the last rows' probabilities).
    auto lse = rowLogSumExp(q, k, spec, 0, T, subProgress(progress, 0.0, 0.3));
    if (!lse) return lse.status();
    std::vector<CandidateMask> masks;
    if (options.masks.enabled) {
        auto m = buildCandidateMasks(q, k, spec, *lse, options.masks, subProgress(progress, 0.3, 0.35));
        if (!m) return m.status();
        masks = std::move(*m);
    }

    // Pass 2: every probability tile once.
    HeadAccumulator acc(v, spec, context, options, std::move(masks), workerCount());
    auto tile = [&acc](int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
        acc.addTile(worker, qStart, kStart, P);
    };
    if (Status s = forEachProbabilityTile(q, k, spec, *lse, 0, T, 0, T, tile, subProgress(progress, 0.35, 0.85));
        !s.ok())
        return s;
    HeadSums sums = acc.merge(std::move(*lse));

    // Pass 3: top-k blocks (oracle, from this head's own block mass at topKBlockSize).
    if (options.masks.enabled) {
        auto top =
            topKBlockOutput(q, k, v, spec, sums, acc.denseOutput(), options.masks, subProgress(progress, 0.85, 1.0));
        if (!top) return top.status();
        sums.masked.push_back(std::move(*top));
    }
    return sums;
}

}  // namespace detail

Result<HeadAnalysis> analyzeHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                 const HeadContext& context, const HeadAnalysisOptions& options,
                                 const ProgressFn& progress) {
    return detail::analyzeHeadKeepLse(q, k, v, spec, context, options, progress, nullptr);
}

Result<HeadAnalysis> finishHead(const HeadSums& sums, const AttentionSpec& spec, const HeadContext& context,
                                const HeadAnalysisOptions& options) {
    const int64_t T = sums.tokens;
    if (int64_t(sums.lse.size()) != T || int64_t(sums.mass.size()) != T || int64_t(sums.column.size()) != T)
        return Status{ErrorCode::Shape, "finishHead: sums hold " + std::to_string(sums.lse.size()) +
                                            " rows, expected T=" + std::to_string(T)};
    const detail::MaskCounts counts = detail::countAllowed(spec.mask, T);
    const detail::ActiveRows rows = detail::activeRows(sums.lse, counts);
    HeadAnalysis h;
    h.tokens = T;
    h.excludedKeys = spec.mask.excludedKeys;
    detail::finishStats(h, sums, rows, counts);
    detail::finishSinks(h, sums, spec, options.sinks, rows, counts);
    detail::finishProfiles(h, sums, rows, spec.mask.causal, options.roles);
    detail::finishRoles(h, sums, spec, context, options.roles, rows);
    if (Status s = detail::finishBlocks(h, sums, spec, options); !s.ok()) return s;
    if (options.masks.enabled)
        if (Status s = detail::finishCandidates(h, sums, spec, options.masks, rows, counts); !s.ok()) return s;
    h.role = classifyHead(h, options.roles);
    return h;
}

}  // namespace attnscope
