// analyzeHead: every per-head metric in three passes (metrics: "Cost classes" 2P).
//   pass 1: row logsumexp L_i;
//   pass 2: probability tiles p_ij = exp(s_ij - L_i), accumulated into O(T) row/column vectors,
//           block mass matrices and the candidate masks' partial outputs;
//   pass 3: the same tiles restricted to the top-k block mask (its output error).
// accumulateHead runs the passes into HeadSums (the CPU backend); finishHead turns HeadSums from
// either backend into the metrics.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "analysis_internal.h"
#include "attnscope/analysis_limits.h"
#include "attnscope/analysis_sums.h"

namespace attnscope {

namespace {

using detail::TokenMask;

/// Per-worker sums over keys, offsets and blocks.
struct WorkerSums {
    std::vector<double> column, offset;
    std::vector<std::vector<double>> blocks;  ///< one per accumulated block size
    MatrixRM scratch;                         ///< masked copy of a tile
};

/// Masked numerators Σ p v and masses Σ p of one candidate mask (rows of O_mask before division).
struct MaskedOutput {
    MatrixRM numerator;
    std::vector<double> mass;
};

/// Token id template lookups (TransformerLens duplicate / induction patterns).
struct TokenTemplates {
    bool enabled = false;
    std::vector<const std::vector<int64_t>*> positions;  ///< per row: sorted positions of its token id
    std::vector<std::vector<int64_t>> storage;
};

TokenTemplates buildTemplates(const std::vector<int64_t>& ids, int64_t tokens) {
    TokenTemplates t;
    if (int64_t(ids.size()) != tokens) return t;
    t.enabled = true;
    std::unordered_map<int64_t, size_t> slot;
    for (int64_t i = 0; i < tokens; ++i) {
        auto [it, inserted] = slot.emplace(ids[size_t(i)], t.storage.size());
        if (inserted) t.storage.emplace_back();
        t.storage[it->second].push_back(i);
    }
    t.positions.resize(size_t(tokens));
    for (int64_t i = 0; i < tokens; ++i) t.positions[size_t(i)] = &t.storage[slot[ids[size_t(i)]]];
    return t;
}

/// Induction entries on repeated text: for row i, keys j = p + 1 where the `context` tokens
/// ending at p < i equal those ending at i (CSR, entries ascending per row).
struct RepeatEntries {
    std::vector<int64_t> rowStart;  ///< [T + 1]
    std::vector<int64_t> keys;
};

RepeatEntries buildRepeats(const std::vector<int64_t>& ids, int64_t tokens, int64_t context) {
    RepeatEntries r;
    r.rowStart.assign(size_t(tokens + 1), 0);
    if (int64_t(ids.size()) != tokens || context < 1) return r;
    const std::vector<int64_t> ngram = ngramIds(ids, context);
    std::unordered_map<int64_t, std::vector<int64_t>> seen;  // n-gram id -> positions so far
    for (int64_t i = 0; i < tokens; ++i) {
        if (ngram[size_t(i)] >= 0) {
            auto& list = seen[ngram[size_t(i)]];
            for (int64_t p : list) r.keys.push_back(p + 1);
            list.push_back(i);
        }
        r.rowStart[size_t(i + 1)] = int64_t(r.keys.size());
    }
    return r;
}

/// Document ranges when every document is one contiguous run (the common, fast case).
struct DocumentRuns {
    bool enabled = false;
    std::vector<int64_t> start, end;  ///< per token: [start, end) of its run
};

DocumentRuns buildRuns(const std::vector<int32_t>& docs, int64_t tokens) {
    DocumentRuns r;
    if (int64_t(docs.size()) != tokens || tokens == 0) return r;
    r.enabled = true;
    r.start.resize(size_t(tokens));
    r.end.resize(size_t(tokens));
    int64_t s = 0;
    for (int64_t i = 1; i <= tokens; ++i) {
        if (i == tokens || docs[size_t(i)] != docs[size_t(i - 1)]) {
            for (int64_t j = s; j < i; ++j) r.start[size_t(j)] = s, r.end[size_t(j)] = i;
            s = i;
        }
    }
    return r;
}

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
        if (b <= 0) return {ErrorCode::InvalidArgument, "analyzeHead: block size " + std::to_string(b) + ", expected > 0"};
    for (double g : o.gammas)
        if (!(g > 0 && g <= 1)) return {ErrorCode::InvalidArgument, "analyzeHead: gamma " + std::to_string(g) + ", expected (0, 1]"};
    if (o.masks.enabled && (o.masks.topKBlockSize <= 0 || o.masks.window <= 0 || o.masks.sinkWindow <= 0))
        return {ErrorCode::InvalidArgument, "analyzeHead: candidate mask window/block size must be > 0"};
    return {};
}

double meanOver(const std::vector<double>& v, const std::vector<uint8_t>& rowOk, int64_t rows) {
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i)
        if (rowOk[i]) s += v[i];
    return rows > 0 ? s / double(rows) : 0.0;
}


/// Σ_i ‖O_mask,i − O_i‖² and Σ_i ‖O_i‖² (rows normalised by their masses).
void errorTerms(const MaskedOutput& m, const MatrixRM& dense, const std::vector<double>& denseMass, double& diff,
                double& ref) {
    diff = 0, ref = 0;
    for (int64_t i = 0; i < dense.rows(); ++i) {
        if (denseMass[size_t(i)] <= 0) continue;
        const Eigen::RowVectorXd o = dense.row(i).cast<double>() / denseMass[size_t(i)];
        Eigen::RowVectorXd om = Eigen::RowVectorXd::Zero(o.size());
        if (m.mass[size_t(i)] > kMinMaskedMass) om = m.numerator.row(i).cast<double>() / m.mass[size_t(i)];
        diff += (om - o).squaredNorm();
        ref += o.squaredNorm();
    }
}

}  // namespace

std::vector<uint8_t> allowedBlockFlags(const MaskSpec& mask, int64_t tokens, int64_t blockSize) {
    return detail::allowedBlocks(mask, tokens, blockSize);
}

std::vector<int64_t> accumulatedBlockSizes(const HeadAnalysisOptions& options) {
    std::vector<int64_t> sizes = options.blockSizes;
    if (options.masks.enabled && std::find(sizes.begin(), sizes.end(), options.masks.topKBlockSize) == sizes.end())
        sizes.push_back(options.masks.topKBlockSize);
    return sizes;
}

std::vector<int64_t> ngramIds(const std::vector<int64_t>& ids, int64_t context) {
    const int64_t T = int64_t(ids.size());
    std::vector<int64_t> out(size_t(T), -1);
    if (context < 1) return out;
    // Polynomial hash of the n-gram ending at i, verified on lookup (collisions cost only time).
    constexpr uint64_t kHashBase = 1000003;
    std::unordered_map<uint64_t, std::vector<int64_t>> seen;  // hash -> first position of each distinct n-gram
    auto same = [&](int64_t a, int64_t b) {
        for (int64_t x = 0; x < context; ++x)
            if (ids[size_t(a - x)] != ids[size_t(b - x)]) return false;
        return true;
    };
    int64_t next = 0;
    for (int64_t i = context - 1; i < T; ++i) {
        uint64_t h = 0;
        for (int64_t x = context - 1; x >= 0; --x) h = h * kHashBase + uint64_t(ids[size_t(i - x)]);
        auto& firsts = seen[h];
        for (int64_t p : firsts)
            if (same(p, i)) {
                out[size_t(i)] = out[size_t(p)];
                break;
            }
        if (out[size_t(i)] < 0) {
            out[size_t(i)] = next++;
            firsts.push_back(i);
        }
    }
    return out;
}

Result<HeadAnalysis> analyzeHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                 const HeadContext& context, const HeadAnalysisOptions& options,
                                 const ProgressFn& progress) {
    return detail::analyzeHeadKeepLse(q, k, v, spec, context, options, progress, nullptr);
}

Result<HeadAnalysis> detail::analyzeHeadKeepLse(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                                const AttentionSpec& spec, const HeadContext& context,
                                                const HeadAnalysisOptions& options, const ProgressFn& progress,
                                                std::vector<float>* lseOut) {
    auto sums = accumulateHead(q, k, v, spec, context, options, progress);
    if (!sums) return sums.status();
    auto h = finishHead(*sums, spec, context, options);
    if (!h) return h.status();
    if (progress && !progress(1.0, "analyze head")) return detail::cancelledStatus("analyzeHead");
    if (lseOut) *lseOut = std::move(sums->lse);
    return h;
}

Result<HeadSums> accumulateHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                const HeadContext& context, const HeadAnalysisOptions& options,
                                const ProgressFn& progress) {
    if (Status s = validate(q, k, v, options); !s.ok()) return s;
    const int64_t T = q.rows();
    const RoleOptions& ro = options.roles;

    // Pass 1: L_i.
    auto lseR = rowLogSumExp(q, k, spec, 0, T, detail::subProgress(progress, 0.0, 0.3));
    if (!lseR) return lseR.status();
    const std::vector<float>& lse = *lseR;

    std::vector<TokenMask> tokenMasks;
    if (options.masks.enabled) {
        auto m = detail::buildTokenMasks(q, k, spec, lse, options.masks, detail::subProgress(progress, 0.3, 0.35));
        if (!m) return m.status();
        tokenMasks = std::move(*m);
    }

    // Block sizes to accumulate: the requested ones plus the top-k mask's.
    const std::vector<int64_t> blockSizes = accumulatedBlockSizes(options);
    std::vector<int64_t> blockCounts;
    for (int64_t b : blockSizes) blockCounts.push_back((T + b - 1) / b);

    const int64_t origin = spec.mask.causal ? 0 : T - 1;  // offsets i - j ≥ 0 when causal
    const int workers = workerCount();
    std::vector<WorkerSums> ws(static_cast<size_t>(workers));
    for (auto& w : ws) {
        w.column.assign(size_t(T), 0);
        w.offset.assign(size_t(origin + T), 0);
        for (int64_t nb : blockCounts) w.blocks.emplace_back(size_t(nb * nb), 0.0);
    }
    HeadSums rows;
    rows.tokens = T;
    for (auto* vec : {&rows.mass, &rows.plogp, &rows.distance, &rows.first, &rows.self, &rows.recent, &rows.prev,
                      &rows.next, &rows.duplicate, &rows.induction, &rows.repeat, &rows.document})
        vec->assign(size_t(T), 0.0);
    const int64_t dv = v.cols();
    MatrixRM dense = MatrixRM::Zero(T, dv);
    std::vector<MaskedOutput> masked(tokenMasks.size());
    for (auto& m : masked) m.numerator = MatrixRM::Zero(T, dv), m.mass.assign(size_t(T), 0);

    const TokenTemplates templ = buildTemplates(context.tokenIds, T);
    const DocumentRuns runs = buildRuns(context.documents, T);
    const RepeatEntries repeats = buildRepeats(context.tokenIds, T, ro.repeatContext);
    const bool haveDocs = int64_t(context.documents.size()) == T;
    const int64_t recentN = std::max<int64_t>(1, ro.recentTokens);
    auto tile = [&](int worker, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
        WorkerSums& w = ws[size_t(worker)];
        const int64_t r = P.rows(), c = P.cols(), kEnd = kStart + c;
        // Σ p ln p per row (entropy), vectorised; p = 0 contributes 0.
        const Eigen::ArrayXXf plogp = (P.array() > 0.0f).select(P.array() * P.array().max(1e-30f).log(), 0.0f);
        const Eigen::RowVectorXf keyIndex = Eigen::RowVectorXf::LinSpaced(c, float(kStart), float(kEnd - 1));
        for (int64_t a = 0; a < r; ++a) {
            const int64_t i = qStart + a;
            const auto row = P.row(a);
            const size_t si = size_t(i);
            rows.mass[si] += row.sum();
            rows.plogp[si] += plogp.row(a).sum();
            rows.distance[si] += (row.array() * (keyIndex.array() - float(i)).abs()).sum();
            if (kStart == 0) rows.first[si] += row(0);
            if (i >= kStart && i < kEnd) rows.self[si] += row(i - kStart);
            if (i - 1 >= kStart && i - 1 < kEnd) rows.prev[si] += row(i - 1 - kStart);
            if (i + 1 >= kStart && i + 1 < kEnd) rows.next[si] += row(i + 1 - kStart);
            // Recent keys: (i - n, i] when causal, the final n keys otherwise.
            const int64_t rLo = std::max(kStart, spec.mask.causal ? i - recentN + 1 : T - recentN);
            const int64_t rHi = std::min(kEnd, spec.mask.causal ? i + 1 : T);
            if (rHi > rLo) rows.recent[si] += row.segment(rLo - kStart, rHi - rLo).sum();
            // Slash: offset index o = i - j + origin runs downwards along the row; columns with
            // o < 0 (beyond the diagonal of a causal head) hold no mass.
            const int64_t sHi = std::min(kEnd, i + origin + 1);
            if (sHi > kStart) {
                Eigen::Map<Eigen::ArrayXd> off(w.offset.data() + (i - (sHi - 1) + origin), sHi - kStart);
                off += row.head(sHi - kStart).reverse().transpose().cast<double>().array();
            }
            if (templ.enabled) {
                const std::vector<int64_t>& pos = *templ.positions[si];
                // Duplicate: tok_j == tok_i, j < i (TransformerLens tril with zero diagonal).
                const int64_t dLo = std::max<int64_t>(kStart, ro.excludeBos ? 1 : 0), dHi = std::min(kEnd, i);
                for (auto it = std::lower_bound(pos.begin(), pos.end(), dLo); it != pos.end() && *it < dHi; ++it)
                    rows.duplicate[si] += row(*it - kStart);
                // Induction: tok_{j-1} == tok_i with j - 1 < i, i.e. j = p + 1 ≤ i.
                const int64_t jHi = std::min(kEnd, i + 1);
                for (auto it = std::lower_bound(pos.begin(), pos.end(), kStart - 1); it != pos.end() && *it + 1 < jHi;
                     ++it) {
                    const int64_t j = *it + 1;
                    if (j < kStart || (ro.excludeCurrentToken && j == i)) continue;
                    rows.induction[si] += row(j - kStart);
                }
            }
            if (!repeats.keys.empty()) {
                const auto b0 = repeats.keys.begin() + repeats.rowStart[si], b1 = repeats.keys.begin() + repeats.rowStart[si + 1];
                for (auto it = std::lower_bound(b0, b1, kStart); it != b1 && *it < kEnd; ++it)
                    if (!(ro.excludeCurrentToken && *it == i)) rows.repeat[si] += row(*it - kStart);
            }
            if (haveDocs) {
                if (runs.enabled) {
                    const int64_t lo = std::max(kStart, runs.start[si]), hi = std::min(kEnd, runs.end[si]);
                    if (hi > lo) rows.document[si] += row.segment(lo - kStart, hi - lo).sum();
                } else {
                    for (int64_t b = 0; b < c; ++b)
                        if (context.documents[size_t(kStart + b)] == context.documents[si]) rows.document[si] += row(b);
                }
            }
            for (size_t bs = 0; bs < blockSizes.size(); ++bs) {
                const int64_t B = blockSizes[bs], nb = blockCounts[bs];
                double* brow = w.blocks[bs].data() + (i / B) * nb;
                for (int64_t j0 = kStart; j0 < kEnd;) {
                    const int64_t j1 = std::min(kEnd, (j0 / B + 1) * B);
                    brow[j0 / B] += row.segment(j0 - kStart, j1 - j0).sum();
                    j0 = j1;
                }
            }
        }
        Eigen::Map<Eigen::VectorXd>(w.column.data() + kStart, c) += P.colwise().sum().transpose().cast<double>();
        dense.middleRows(qStart, r).noalias() += P * v.middleRows(kStart, c);
        for (size_t m = 0; m < tokenMasks.size(); ++m) {
            const TokenMask::Ranges ranges = tokenMasks[m].fill(qStart, kStart, P, w.scratch);
            for (int x = 0; x < ranges.count; ++x) {
                const auto [c0, c1] = ranges.r[x];
                const auto part = w.scratch.block(0, c0, r, c1 - c0);
                masked[m].numerator.middleRows(qStart, r).noalias() += part * v.middleRows(kStart + c0, c1 - c0);
                for (int64_t a = 0; a < r; ++a) masked[m].mass[size_t(qStart + a)] += part.row(a).sum();
            }
        }
    };
    if (Status s = forEachProbabilityTile(q, k, spec, lse, 0, T, 0, T, tile, detail::subProgress(progress, 0.35, 0.85));
        !s.ok())
        return s;

    // Merge worker sums.
    for (int w = 1; w < workers; ++w) {
        for (int64_t j = 0; j < T; ++j) ws[0].column[size_t(j)] += ws[size_t(w)].column[size_t(j)];
        for (size_t o = 0; o < ws[0].offset.size(); ++o) ws[0].offset[o] += ws[size_t(w)].offset[o];
        for (size_t bs = 0; bs < blockSizes.size(); ++bs)
            for (size_t x = 0; x < ws[0].blocks[bs].size(); ++x) ws[0].blocks[bs][x] += ws[size_t(w)].blocks[bs][x];
    }

    rows.lse = lse;
    rows.column = std::move(ws[0].column);
    rows.offset = std::move(ws[0].offset);
    rows.blockSizes = blockSizes;
    rows.blocks = std::move(ws[0].blocks);
    if (options.masks.enabled) {
        for (size_t m = 0; m < tokenMasks.size(); ++m) {
            HeadSums::Masked out;
            out.mask = tokenMasks[m];
            errorTerms(masked[m], dense, rows.mass, out.errorDiff2, out.errorRef2);
            out.mass = std::move(masked[m].mass);
            rows.masked.push_back(std::move(out));
        }
        // Pass 3: top-k blocks (oracle, from this head's own block mass at topKBlockSize).
        const size_t bs = size_t(std::find(blockSizes.begin(), blockSizes.end(), options.masks.topKBlockSize) -
                                 blockSizes.begin());
        BlockSparsity tb;
        tb.blockSize = blockSizes[bs];
        tb.blockRows = tb.blockCols = blockCounts[bs];
        tb.mass.assign(rows.blocks[bs].begin(), rows.blocks[bs].end());
        tb.allowed = detail::allowedBlocks(spec.mask, T, tb.blockSize);
        auto kept = std::make_shared<const std::vector<uint8_t>>(topKBlockMask(tb, options.masks.topKBlocks));
        AttentionSpec sparse = spec;
        sparse.mask.blocks = kept;
        sparse.mask.blockSize = tb.blockSize;
        sparse.mask.blockCols = tb.blockCols;
        MaskedOutput top;
        top.numerator = MatrixRM::Zero(T, dv);
        top.mass.assign(size_t(T), 0);
        auto topTile = [&](int, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
            top.numerator.middleRows(qStart, P.rows()).noalias() += P * v.middleRows(kStart, P.cols());
            for (int64_t a = 0; a < P.rows(); ++a) top.mass[size_t(qStart + a)] += P.row(a).sum();
        };
        if (Status s = forEachProbabilityTile(q, k, sparse, lse, 0, T, 0, T, topTile,
                                              detail::subProgress(progress, 0.85, 1.0));
            !s.ok())
            return s;
        HeadSums::Masked out;
        out.keptBlocks = *kept;
        errorTerms(top, dense, rows.mass, out.errorDiff2, out.errorRef2);
        out.mass = std::move(top.mass);
        rows.masked.push_back(std::move(out));
    }
    return rows;
}

Result<HeadAnalysis> finishHead(const HeadSums& sum, const AttentionSpec& spec, const HeadContext& context,
                                const HeadAnalysisOptions& options) {
    const int64_t T = sum.tokens;
    const RoleOptions& ro = options.roles;
    const std::vector<float>& lse = sum.lse;
    if (int64_t(lse.size()) != T || int64_t(sum.mass.size()) != T || int64_t(sum.column.size()) != T)
        return Status{ErrorCode::Shape, "finishHead: sums hold " + std::to_string(lse.size()) + " rows, expected T=" +
                                            std::to_string(T)};
    const detail::MaskCounts counts = detail::countAllowed(spec.mask, T);
    const TokenTemplates templ = buildTemplates(context.tokenIds, T);
    const DocumentRuns runs = buildRuns(context.documents, T);
    const std::vector<int64_t> ngram = int64_t(context.tokenIds.size()) == T ? ngramIds(context.tokenIds, ro.repeatContext)
                                                                            : std::vector<int64_t>();
    const bool haveDocs = int64_t(context.documents.size()) == T;
    const HeadSums& rows = sum;
    const int64_t origin = spec.mask.causal ? 0 : T - 1;
    std::vector<int64_t> firstOfNgram;  // first position of each n-gram id: rows after it have entries
    for (int64_t i = 0; i < int64_t(ngram.size()); ++i)
        if (ngram[size_t(i)] >= 0 && ngram[size_t(i)] >= int64_t(firstOfNgram.size())) firstOfNgram.push_back(i);
    HeadAnalysis h;
    h.tokens = T;
    h.excludedKeys = spec.mask.excludedKeys;

    // Rows that take part: those with at least one allowed key (finite lse).
    std::vector<uint8_t> rowOk(size_t(T), 0);
    int64_t nRows = 0, nNorm = 0;
    double entropyNorm = 0;
    for (int64_t i = 0; i < T; ++i) {
        if (!std::isfinite(lse[size_t(i)]) || counts.rowAllowed[size_t(i)] == 0) continue;
        rowOk[size_t(i)] = 1;
        ++nRows;
        const int64_t n = counts.rowAllowed[size_t(i)];
        if (n >= 2) {
            entropyNorm += -rows.plogp[size_t(i)] / std::log(double(n));
            ++nNorm;
        }
    }
    HeadStats& st = h.stats;
    st.rows = nRows;
    st.entropy = -meanOver(rows.plogp, rowOk, nRows);
    st.entropyNormalized = nNorm > 0 ? entropyNorm / double(nNorm) : 0.0;
    st.meanDistance = meanOver(rows.distance, rowOk, nRows);
    st.firstTokenMass = meanOver(rows.first, rowOk, nRows);
    st.recentMass = meanOver(rows.recent, rowOk, nRows);

    // Sinks: alpha_k = column sum / number of queries that see k (metrics: "Sinks").
    std::vector<float> alpha(size_t(T), 0.0f);
    for (int64_t j = 0; j < T; ++j)
        if (counts.colAllowed[size_t(j)] > 0)
            alpha[size_t(j)] = float(sum.column[size_t(j)] / double(counts.colAllowed[size_t(j)]));
    h.sinks = detail::findSinks(std::move(alpha), options.sinks, counts.colAllowed);
    if (spec.hasSink()) {
        double share = 0;
        for (int64_t i = 0; i < T; ++i)
            if (rowOk[size_t(i)]) share += sinkShareOfRow(lse[size_t(i)], spec.sinkLogit);
        h.sinks.learnedSink = true;
        h.sinks.learnedSinkLogit = spec.sinkLogit;
        h.sinks.learnedSinkShare = nRows > 0 ? share / double(nRows) : 0.0;
    }

    // Profiles (vertical = columns, slash = offsets), normalised by the number of rows.
    const double invRows = nRows > 0 ? 1.0 / double(nRows) : 0.0;
    h.profiles.columnMass.resize(size_t(T));
    for (int64_t j = 0; j < T; ++j) h.profiles.columnMass[size_t(j)] = float(sum.column[size_t(j)] * invRows);
    h.profiles.offsetOrigin = origin;
    h.profiles.offsetMass.resize(sum.offset.size());
    for (size_t o = 0; o < sum.offset.size(); ++o) h.profiles.offsetMass[o] = float(sum.offset[o] * invRows);

    // Role scores. TransformerLens "mul": Σ(A'⊙P)/ΣA' where A' has column 0 (exclude_bos) and
    // the diagonal (exclude_current_token) zeroed.
    RoleScores& rs = h.roles;
    double denom = 0, dupRowsMass = 0, indRowsMass = 0, prevNum = 0, dupNum = 0, indNum = 0, docDist = 0;
    double repNum = 0, repRowsMass = 0;
    for (int64_t i = 0; i < T; ++i) {
        const size_t si = size_t(i);
        if (!rowOk[si]) continue;
        double rowMass = rows.mass[si];
        if (ro.excludeBos) rowMass -= rows.first[si];
        if (ro.excludeCurrentToken) rowMass -= rows.self[si];
        if (ro.excludeBos && ro.excludeCurrentToken && i == 0) rowMass += rows.self[si];
        denom += rowMass;
        prevNum += (ro.excludeBos && i == 1) ? 0.0 : rows.prev[si];
        dupNum += rows.duplicate[si];
        indNum += rows.induction[si];
        if (templ.enabled) {
            const std::vector<int64_t>& pos = *templ.positions[si];
            const auto firstPos = std::lower_bound(pos.begin(), pos.end(), ro.excludeBos ? 1 : 0);
            if (firstPos != pos.end() && *firstPos < i) dupRowsMass += rowMass, ++rs.duplicateRows;
            // Induction entry j = p + 1 ≤ i (≠ i when the current token is excluded).
            const int64_t jMax = ro.excludeCurrentToken ? i - 1 : i;
            if (!pos.empty() && pos.front() + 1 <= jMax) indRowsMass += rowMass, ++rs.inductionRows;
        }
        if (!ngram.empty() && ngram[si] >= 0 && firstOfNgram[size_t(ngram[si])] < i) {
            repNum += rows.repeat[si];
            repRowsMass += rowMass;
            ++rs.repeatRows;
        }
        if (runs.enabled) {
            // Mean |i - j| of uniform attention over the row's document keys [s, e].
            const double s = double(runs.start[si]), e = spec.mask.causal ? double(i) : double(runs.end[si] - 1);
            const double left = double(i) - s, right = e - double(i);
            docDist += (left * (left + 1) / 2 + right * (right + 1) / 2) / (e - s + 1);
        }
    }
    rs.previousToken = denom > 0 ? prevNum / denom : 0;
    rs.nextToken = meanOver(rows.next, rowOk, nRows);
    rs.duplicateToken = denom > 0 ? dupNum / denom : 0;
    rs.induction = denom > 0 ? indNum / denom : 0;
    rs.duplicateMatched = dupRowsMass > 0 ? dupNum / dupRowsMass : 0;
    rs.inductionMatched = indRowsMass > 0 ? indNum / indRowsMass : 0;
    rs.inductionRepeat = repRowsMass > 0 ? repNum / repRowsMass : 0;
    if (haveDocs) rs.documentMass = meanOver(rows.document, rowOk, nRows);
    if (runs.enabled && nRows > 0) {
        const double uniform = docDist / double(nRows);
        rs.documentSpread = uniform > 0 ? st.meanDistance / uniform : 0;
    }
    detail::finishProfiles(h, ro);

    // Sparsity per requested block size.
    for (size_t bs = 0; bs < options.blockSizes.size(); ++bs) {
        const int64_t B = options.blockSizes[bs], nb = (T + B - 1) / B;
        if (bs >= sum.blocks.size() || sum.blockSizes[bs] != B || int64_t(sum.blocks[bs].size()) != nb * nb)
            return Status{ErrorCode::Shape, "finishHead: no block mass at block size " + std::to_string(B) +
                                                " in the sums (expected accumulatedBlockSizes order)"};
        BlockSparsity b;
        b.blockSize = B;
        b.blockRows = b.blockCols = nb;
        b.mass.assign(sum.blocks[bs].begin(), sum.blocks[bs].end());
        b.allowed = detail::allowedBlocks(spec.mask, T, b.blockSize);
        b.allowedBlocks = std::accumulate(b.allowed.begin(), b.allowed.end(), int64_t(0));
        detail::computeCoverage(b, options.gammas);
        h.blocks.push_back(std::move(b));
    }

    // Candidate masks: recall and output error against the dense output.
    if (options.masks.enabled) {
        const double allowedPairs =
            double(std::accumulate(counts.rowAllowed.begin(), counts.rowAllowed.end(), int64_t(0)));
        const int64_t topB = options.masks.topKBlockSize;
        for (const HeadSums::Masked& m : sum.masked) {
            if (int64_t(m.mass.size()) != T)
                return Status{ErrorCode::Shape, "finishHead: a candidate mask's mass holds " + std::to_string(m.mass.size()) +
                                                    " rows, expected T=" + std::to_string(T)};
            CandidateMaskResult c;
            const bool topK = !m.keptBlocks.empty();
            c.name = topK ? "top-k blocks" : m.mask.name;
            c.params = topK ? "k=" + std::to_string(options.masks.topKBlocks) + " B=" + std::to_string(topB) : m.mask.params;
            c.recall = meanOver(m.mass, rowOk, nRows);
            c.outputError = m.errorRef2 > 0 ? std::sqrt(m.errorDiff2 / m.errorRef2) : 0.0;
            const int64_t kept = topK ? detail::keptAllowedPairs(m.keptBlocks, topB, spec.mask, T)
                                      : detail::keptAllowedPairs(m.mask, spec.mask, T);
            c.keptFraction = allowedPairs > 0 ? double(kept) / allowedPairs : 0;
            h.masks.push_back(std::move(c));
        }
    }
    h.role = classifyHead(h, ro);
    return h;
}

}  // namespace attnscope
