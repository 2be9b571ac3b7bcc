// Candidate sparse masks (metrics: "Sinks" StreamingLLM, "Sparsity and coverage" MInference):
// causal sliding window, sink + window, and vertical-slash estimated from the last queries; their
// outputs accumulated in pass 2 (the top-k block mask's in pass 3), and recall, output error and
// kept fraction against the dense output.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis_accumulator.h"
#include "attnscope/analysis_limits.h"

namespace attnscope::detail {

/// The n highest-scoring indices (ties by index), after the forced ones.
std::vector<uint8_t> pickTop(const std::vector<double>& score, const std::vector<uint8_t>& forced, int64_t n) {
    std::vector<uint8_t> keep = forced;
    const int64_t count = std::accumulate(forced.begin(), forced.end(), int64_t(0));
    if (count >= n) return keep;
    // The (n - count) highest positive scores among the rest, ties by index: the same set as a
    // stable sort by score, found by selection (O(T) instead of a sort of all T).
    std::vector<int64_t> candidates;
    for (size_t x = 0; x < score.size(); ++x)
        if (!keep[x] && score[x] > 0) candidates.push_back(int64_t(x));
    const size_t take = std::min(candidates.size(), size_t(n - count));
    auto before = [&](int64_t a, int64_t b) {
        return score[size_t(a)] > score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
    };
    if (take < candidates.size())
        std::nth_element(candidates.begin(), candidates.begin() + std::ptrdiff_t(take), candidates.end(), before);
    for (size_t x = 0; x < take; ++x) keep[size_t(candidates[x])] = 1;
    return keep;
}

}  // namespace attnscope::detail

namespace attnscope {

bool CandidateMask::contains(int64_t i, int64_t j) const {
    const int64_t d = i - j;
    switch (kind) {
    case Kind::Window: return d < window && -d < window;
    case Kind::SinkWindow: return j < sinks || (d < window && -d < window);
    case Kind::VerticalSlash: {
        const int64_t o = d + origin;
        return vertical[size_t(j)] || (o >= 0 && o < int64_t(slash.size()) && slash[size_t(o)]);
    }
    }
    return false;
}

CandidateMask::Ranges CandidateMask::fill(int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P,
                                          MatrixRM& out) const {
    const int64_t r = P.rows(), c = P.cols(), kEnd = kStart + c;
    out.setZero(r, c);
    // Two column ranges: [0] the sink columns, [1] everything else (window / vertical-slash).
    int64_t lo[2] = {c, c}, hi[2] = {0, 0};
    auto copy = [&](int slot, int64_t a, int64_t from, int64_t to) {  // keys [from, to)
        from = std::max(from, kStart);
        to = std::min(to, kEnd);
        if (to <= from) return;
        out.row(a).segment(from - kStart, to - from) = P.row(a).segment(from - kStart, to - from);
        lo[slot] = std::min(lo[slot], from - kStart);
        hi[slot] = std::max(hi[slot], to - kStart);
    };
    for (int64_t a = 0; a < r; ++a) {
        const int64_t i = qStart + a;
        if (kind == Kind::VerticalSlash) {
            // Column b is kept if its key is vertical or its offset i - j is a kept slash; along the
            // row the offset index runs backwards through `slash`.
            const uint8_t* vrow = vertical.data() + kStart;
            const int64_t sTop = i - kStart + origin;  // offset index of column 0
            const int64_t sCols = std::min(c, sTop + 1);
            const uint8_t* srow = slash.data() + sTop;
            for (int64_t b = 0; b < c; ++b) {
                const bool keep = vrow[b] || (b < sCols && srow[-b]);
                if (!keep) continue;
                out(a, b) = P(a, b);
                lo[1] = std::min(lo[1], b);
                hi[1] = std::max(hi[1], b + 1);
            }
            continue;
        }
        const int64_t wLo = i - window + 1, wHi = i + window;  // |i - j| < window
        if (kind == Kind::SinkWindow) {
            copy(0, a, 0, std::min(sinks, wLo));
            if (sinks > wHi) copy(0, a, wHi, sinks);
        }
        copy(1, a, wLo, wHi);
    }
    Ranges out2;
    for (int s = 0; s < 2; ++s)
        if (hi[s] > lo[s]) out2.r[out2.count++] = {lo[s], hi[s]};
    // Overlapping ranges would add a product twice: merge them.
    if (out2.count == 2 && out2.r[0].second > out2.r[1].first && out2.r[1].second > out2.r[0].first) {
        out2.r[0] = {std::min(out2.r[0].first, out2.r[1].first), std::max(out2.r[0].second, out2.r[1].second)};
        out2.count = 1;
    }
    return out2;
}

}  // namespace attnscope

namespace attnscope::detail {

Result<std::vector<CandidateMask>> buildCandidateMasks(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                       const std::vector<float>& lse, const CandidateMaskOptions& o,
                                                       const ProgressFn& progress) {
    const int64_t T = q.rows();
    // MInference vertical-slash: column sums and diagonal sums of the last n queries' attention.
    const int64_t n = std::min(T, std::max<int64_t>(1, o.estimateQueries));
    const int64_t origin = spec.mask.causal ? 0 : T - 1;
    const int workers = workerCount();
    std::vector<std::vector<double>> vSum(size_t(workers), std::vector<double>(size_t(T), 0.0));
    std::vector<std::vector<double>> sSum(size_t(workers), std::vector<double>(size_t(origin + T), 0.0));
    const std::vector<float> lseTail(lse.end() - n, lse.end());
    auto tile = [&](int wk, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
        auto& vs = vSum[size_t(wk)];
        auto& ss = sSum[size_t(wk)];
        for (int64_t a = 0; a < P.rows(); ++a)
            for (int64_t b = 0; b < P.cols(); ++b) {
                const float p = P(a, b);
                if (p == 0) continue;
                const int64_t i = qStart + a, j = kStart + b;
                vs[size_t(j)] += p;
                ss[size_t(i - j + origin)] += p;
            }
    };
    if (Status s = forEachProbabilityTile(q, k, spec, lseTail, T - n, T, 0, T, tile, progress); !s.ok()) return s;
    for (int wk = 1; wk < workers; ++wk) {
        for (size_t j = 0; j < vSum[0].size(); ++j) vSum[0][j] += vSum[size_t(wk)][j];
        for (size_t x = 0; x < sSum[0].size(); ++x) sSum[0][x] += sSum[size_t(wk)][x];
    }
    return candidateMasks(vSum[0], sSum[0], T, spec.mask.causal, o);
}

}  // namespace attnscope::detail

namespace attnscope {

std::vector<CandidateMask> candidateMasks(const std::vector<double>& vSum, const std::vector<double>& sSum, int64_t T,
                                          bool causal, const CandidateMaskOptions& o) {
    std::vector<CandidateMask> out;
    CandidateMask w;
    w.kind = CandidateMask::Kind::Window;
    w.name = "window";
    w.window = o.window;
    w.params = "W=" + std::to_string(o.window);
    out.push_back(w);
    CandidateMask sw;
    sw.kind = CandidateMask::Kind::SinkWindow;
    sw.name = "sink+window";
    sw.window = o.sinkWindow;
    sw.sinks = o.sinkTokens;
    sw.params = "sinks=" + std::to_string(o.sinkTokens) + " W=" + std::to_string(o.sinkWindow);
    out.push_back(sw);
    const int64_t n = std::min(T, std::max<int64_t>(1, o.estimateQueries));
    const int64_t origin = causal ? 0 : T - 1;
    CandidateMask vsm;
    vsm.kind = CandidateMask::Kind::VerticalSlash;
    vsm.name = "vertical-slash";
    vsm.origin = origin;
    std::vector<uint8_t> forcedV(size_t(T), 0), forcedS(size_t(origin + T), 0);
    for (int64_t j = 0; j < std::min(T, o.forcedVertical); ++j) forcedV[size_t(j)] = 1;
    for (int64_t d = 0; d < std::min(T, o.forcedSlash); ++d) {
        forcedS[size_t(origin + d)] = 1;
        if (origin - d >= 0) forcedS[size_t(origin - d)] = 1;  // non-causal: both sides of the diagonal
    }
    vsm.vertical = detail::pickTop(vSum, forcedV, o.verticalCount);
    vsm.slash = detail::pickTop(sSum, forcedS, o.slashCount);
    for (size_t x = 0; x < vsm.slash.size(); ++x)
        if (vsm.slash[x]) vsm.slashOffsets.push_back(int64_t(x) - origin);
    vsm.params =
        "last=" + std::to_string(n) + " v=" + std::to_string(o.verticalCount) + " s=" + std::to_string(o.slashCount);
    out.push_back(std::move(vsm));
    return out;
}

}  // namespace attnscope

namespace attnscope::detail {

int64_t keptAllowedPairs(const CandidateMask& cand, const MaskSpec& mask, int64_t T) {
    int64_t kept = 0;
    if (!isSimpleMask(mask)) {
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j) kept += (mask.allows(i, j) && cand.contains(i, j)) ? 1 : 0;
        return kept;
    }
    const auto& ex = mask.excludedKeys;
    std::vector<int64_t> vPrefix;
    if (cand.kind == CandidateMask::Kind::VerticalSlash) {
        vPrefix.assign(size_t(T + 1), 0);
        for (int64_t j = 0; j < T; ++j) vPrefix[size_t(j + 1)] = vPrefix[size_t(j)] + cand.vertical[size_t(j)];
    }
    if (cand.kind == CandidateMask::Kind::VerticalSlash) {
        // A simple mask allows (i, i - o) by the offset alone (causal: o >= 0; window: |o| < W),
        // for every i with both ends in [0, T): each kept offset adds its rows' non-vertical keys.
        for (int64_t o : cand.slashOffsets) {
            if ((mask.causal && o < 0) || (mask.window > 0 && (o >= mask.window || -o >= mask.window))) continue;
            const int64_t jLo = std::max<int64_t>(0, -o), jHi = T - 1 - std::max<int64_t>(0, o);  // keys j = i - o
            if (jHi < jLo) continue;
            kept += (jHi - jLo + 1) - (vPrefix[size_t(jHi + 1)] - vPrefix[size_t(jLo)]);
        }
    }
    for (int64_t i = 0; i < T; ++i) {
        int64_t lo = 0, hi = 0;
        allowedInterval(mask, T, i, lo, hi);
        if (lo > hi) continue;
        int64_t n = 0;
        if (cand.kind == CandidateMask::Kind::VerticalSlash) {
            n = vPrefix[size_t(hi + 1)] - vPrefix[size_t(lo)];  // the slash keys are counted per offset above
        } else {
            const int64_t wLo = std::max(lo, i - cand.window + 1), wHi = std::min(hi, i + cand.window - 1);
            const int64_t wN = std::max<int64_t>(0, wHi - wLo + 1);
            n = wN;
            if (cand.kind == CandidateMask::Kind::SinkWindow) {
                const int64_t sHi = std::min(hi, cand.sinks - 1);
                const int64_t sN = std::max<int64_t>(0, sHi - lo + 1);
                const int64_t both = std::max<int64_t>(0, std::min(sHi, wHi) - std::max(lo, wLo) + 1);
                n = wN + sN - both;
            }
        }
        for (int64_t e : ex)
            if (e >= lo && e <= hi && cand.contains(i, e)) --n;
        kept += n;
    }
    return kept;
}

int64_t keptAllowedPairs(const std::vector<uint8_t>& blocks, int64_t B, const MaskSpec& mask, int64_t T) {
    const int64_t nb = (T + B - 1) / B;
    int64_t kept = 0;
    if (!isSimpleMask(mask)) {
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j) kept += (mask.allows(i, j) && blocks[size_t((i / B) * nb + j / B)]) ? 1 : 0;
        return kept;
    }
    // Kept blocks per block-row, listed once (top-k keeps a few of each row).
    std::vector<std::vector<int64_t>> keptCols(static_cast<size_t>(nb));
    for (int64_t I = 0; I < nb; ++I)
        for (int64_t J = 0; J < nb; ++J)
            if (blocks[size_t(I * nb + J)]) keptCols[size_t(I)].push_back(J);
    for (int64_t i = 0; i < T; ++i) {
        int64_t lo = 0, hi = 0;
        allowedInterval(mask, T, i, lo, hi);
        for (int64_t J : keptCols[size_t(i / B)]) {
            if (lo > hi || J < lo / B || J > hi / B) continue;
            const int64_t a = std::max(lo, J * B), b = std::min(hi, J * B + B - 1);
            kept += (b - a + 1) - excludedIn(mask.excludedKeys, a, b);
        }
    }
    return kept;
}

}  // namespace attnscope::detail

namespace attnscope::detail {

namespace {

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

MaskedOutput::MaskedOutput(int64_t tokens, int64_t dv)
    : numerator(MatrixRM::Zero(tokens, dv)), mass(size_t(tokens), 0.0) {}

MaskedOutputs::MaskedOutputs(const MatrixRM& v, std::vector<CandidateMask> candidates, bool enabled, int workers)
    : v(v), enabled(enabled), masks(std::move(candidates)), scratch(size_t(workers)) {
    if (!enabled) return;
    dense = MatrixRM::Zero(v.rows(), v.cols());
    for (size_t m = 0; m < masks.size(); ++m) outputs.emplace_back(v.rows(), v.cols());
}

void MaskedOutputs::addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    if (!enabled) return;
    const int64_t r = P.rows();
    dense.middleRows(qStart, r).noalias() += P * v.middleRows(kStart, P.cols());
    MatrixRM& part = scratch[size_t(worker)];
    for (size_t m = 0; m < masks.size(); ++m) {
        const CandidateMask::Ranges ranges = masks[m].fill(qStart, kStart, P, part);
        for (int x = 0; x < ranges.count; ++x) {
            const auto [c0, c1] = ranges.r[x];
            const auto cols = part.block(0, c0, r, c1 - c0);
            outputs[m].numerator.middleRows(qStart, r).noalias() += cols * v.middleRows(kStart + c0, c1 - c0);
            for (int64_t a = 0; a < r; ++a) outputs[m].mass[size_t(qStart + a)] += cols.row(a).sum();
        }
    }
}

void MaskedOutputs::moveInto(HeadSums& out) {
    for (size_t m = 0; m < masks.size(); ++m) {
        HeadSums::Masked r;
        r.mask = std::move(masks[m]);
        errorTerms(outputs[m], dense, out.mass, r.errorDiff2, r.errorRef2);
        r.mass = std::move(outputs[m].mass);
        out.masked.push_back(std::move(r));
    }
}

Result<HeadSums::Masked> topKBlockOutput(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                         const AttentionSpec& spec, const HeadSums& sums, const MatrixRM& dense,
                                         const CandidateMaskOptions& options, const ProgressFn& progress) {
    const int64_t T = sums.tokens;
    const size_t bs = size_t(std::find(sums.blockSizes.begin(), sums.blockSizes.end(), options.topKBlockSize) -
                             sums.blockSizes.begin());
    BlockSparsity tb;
    tb.blockSize = sums.blockSizes[bs];
    tb.blockRows = tb.blockCols = (T + tb.blockSize - 1) / tb.blockSize;
    tb.mass.assign(sums.blocks[bs].begin(), sums.blocks[bs].end());
    tb.allowed = allowedBlocks(spec.mask, T, tb.blockSize);
    auto kept = std::make_shared<const std::vector<uint8_t>>(topKBlockMask(tb, options.topKBlocks));
    AttentionSpec sparse = spec;
    sparse.mask.blocks = kept;
    sparse.mask.blockSize = tb.blockSize;
    sparse.mask.blockCols = tb.blockCols;
    MaskedOutput top(T, v.cols());
    auto tile = [&](int, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
        top.numerator.middleRows(qStart, P.rows()).noalias() += P * v.middleRows(kStart, P.cols());
        for (int64_t a = 0; a < P.rows(); ++a) top.mass[size_t(qStart + a)] += P.row(a).sum();
    };
    if (Status s = forEachProbabilityTile(q, k, sparse, sums.lse, 0, T, 0, T, tile, progress); !s.ok()) return s;
    HeadSums::Masked out;
    out.keptBlocks = *kept;
    errorTerms(top, dense, sums.mass, out.errorDiff2, out.errorRef2);
    out.mass = std::move(top.mass);
    return out;
}

Status finishCandidates(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec,
                        const CandidateMaskOptions& options, const ActiveRows& rows, const MaskCounts& counts) {
    const int64_t T = sums.tokens;
    const double allowedPairs = double(std::accumulate(counts.rowAllowed.begin(), counts.rowAllowed.end(), int64_t(0)));
    const int64_t topB = options.topKBlockSize;
    for (const HeadSums::Masked& m : sums.masked) {
        if (int64_t(m.mass.size()) != T)
            return Status{ErrorCode::Shape, "finishHead: a candidate mask's mass holds " +
                                                std::to_string(m.mass.size()) +
                                                " rows, expected T=" + std::to_string(T)};
        CandidateMaskResult c;
        const bool topK = !m.keptBlocks.empty();
        c.name = topK ? "top-k blocks" : m.mask.name;
        c.params = topK ? "k=" + std::to_string(options.topKBlocks) + " B=" + std::to_string(topB) : m.mask.params;
        c.recall = rows.mean(m.mass);
        c.outputError = m.errorRef2 > 0 ? std::sqrt(m.errorDiff2 / m.errorRef2) : 0.0;
        const int64_t kept =
            topK ? keptAllowedPairs(m.keptBlocks, topB, spec.mask, T) : keptAllowedPairs(m.mask, spec.mask, T);
        c.keptFraction = allowedPairs > 0 ? double(kept) / allowedPairs : 0;
        h.masks.push_back(std::move(c));
    }
    return {};
}

}  // namespace attnscope::detail
