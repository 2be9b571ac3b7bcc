// Block sparsity (metrics: "Sparsity and coverage"): the block mass of pass 2, blocks needed per
// block-row to reach a mass gamma, density = kept / allowed blocks, recall = Σ_kept M / Σ M, and
// block masks built from the block mass (top-k per block-row, gamma coverage).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis_accumulator.h"

namespace attnscope {

namespace {

/// Allowed blocks of block-row I, largest mass first (ties by column, so results are stable).
std::vector<int64_t> sortedRow(const BlockSparsity& b, int64_t I) {
    std::vector<int64_t> cols;
    for (int64_t J = 0; J < b.blockCols; ++J)
        if (b.allowed.empty() || b.allowed[size_t(I * b.blockCols + J)]) cols.push_back(J);
    const float* m = b.mass.data() + I * b.blockCols;
    // Same order as a stable sort by mass: ties broken by column (std::sort needs no buffer).
    std::sort(cols.begin(), cols.end(), [m](int64_t x, int64_t y) { return m[x] > m[y] || (m[x] == m[y] && x < y); });
    return cols;
}

/// Number of leading blocks of `cols` whose cumulative mass reaches gamma of the row's mass.
int64_t blocksForGamma(const float* m, const std::vector<int64_t>& cols, double gamma) {
    double total = 0;
    for (int64_t J : cols) total += m[J];
    if (total <= 0) return 0;
    // Relative slack: float sums of a row that should reach gamma exactly must not need one more block.
    constexpr double kSlack = 1e-9;
    double cum = 0;
    for (size_t n = 0; n < cols.size(); ++n) {
        cum += m[cols[n]];
        if (cum >= gamma * total * (1 - kSlack)) return int64_t(n + 1);
    }
    return int64_t(cols.size());
}

}  // namespace

std::vector<int64_t> accumulatedBlockSizes(const HeadAnalysisOptions& options) {
    std::vector<int64_t> sizes = options.blockSizes;
    if (options.masks.enabled && std::find(sizes.begin(), sizes.end(), options.masks.topKBlockSize) == sizes.end())
        sizes.push_back(options.masks.topKBlockSize);
    return sizes;
}

namespace detail {

BlockMassSums::BlockMassSums(std::vector<int64_t> blockSizes, int64_t tokens, int workers)
    : sizes(std::move(blockSizes)), mass(size_t(workers)) {
    for (int64_t b : sizes) counts.push_back((tokens + b - 1) / b);
    for (auto& w : mass)
        for (int64_t nb : counts) w.emplace_back(size_t(nb * nb), 0.0);
}

void BlockMassSums::addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P) {
    const int64_t kEnd = kStart + P.cols();
    for (size_t bs = 0; bs < sizes.size(); ++bs) {
        const int64_t B = sizes[bs], nb = counts[bs];
        for (int64_t a = 0; a < P.rows(); ++a) {
            const auto row = P.row(a);
            double* brow = mass[size_t(worker)][bs].data() + ((qStart + a) / B) * nb;
            for (int64_t j0 = kStart; j0 < kEnd;) {
                const int64_t j1 = std::min(kEnd, (j0 / B + 1) * B);
                brow[j0 / B] += row.segment(j0 - kStart, j1 - j0).sum();
                j0 = j1;
            }
        }
    }
}

void BlockMassSums::merge(HeadSums& out) {
    for (size_t w = 1; w < mass.size(); ++w)
        for (size_t bs = 0; bs < sizes.size(); ++bs)
            for (size_t x = 0; x < mass[0][bs].size(); ++x) mass[0][bs][x] += mass[w][bs][x];
    out.blockSizes = sizes;
    out.blocks = std::move(mass[0]);
}

Status finishBlocks(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec,
                    const HeadAnalysisOptions& options) {
    const int64_t T = sums.tokens;
    for (size_t bs = 0; bs < options.blockSizes.size(); ++bs) {
        const int64_t B = options.blockSizes[bs], nb = (T + B - 1) / B;
        if (bs >= sums.blocks.size() || sums.blockSizes[bs] != B || int64_t(sums.blocks[bs].size()) != nb * nb)
            return Status{ErrorCode::Shape, "finishHead: no block mass at block size " + std::to_string(B) +
                                                " in the sums (expected accumulatedBlockSizes order)"};
        BlockSparsity b;
        b.blockSize = B;
        b.blockRows = b.blockCols = nb;
        b.mass.assign(sums.blocks[bs].begin(), sums.blocks[bs].end());
        b.allowed = allowedBlocks(spec.mask, T, b.blockSize);
        b.allowedBlocks = std::accumulate(b.allowed.begin(), b.allowed.end(), int64_t(0));
        computeCoverage(b, options.gammas);
        h.blocks.push_back(std::move(b));
    }
    return {};
}

void computeCoverage(BlockSparsity& b, const std::vector<double>& gammas) {
    b.coverage.clear();
    std::vector<std::vector<int64_t>> sorted(size_t(b.blockRows));
    for (int64_t I = 0; I < b.blockRows; ++I) sorted[size_t(I)] = sortedRow(b, I);
    const double total = std::accumulate(b.mass.begin(), b.mass.end(), 0.0);
    for (double g : gammas) {
        GammaCoverage c;
        c.gamma = g;
        c.blocksPerRow.assign(size_t(b.blockRows), 0);
        double kept = 0;
        for (int64_t I = 0; I < b.blockRows; ++I) {
            const float* m = b.mass.data() + I * b.blockCols;
            const int64_t n = blocksForGamma(m, sorted[size_t(I)], g);
            c.blocksPerRow[size_t(I)] = int32_t(n);
            c.keptBlocks += n;
            for (int64_t x = 0; x < n; ++x) kept += m[sorted[size_t(I)][size_t(x)]];
        }
        c.density = b.allowedBlocks > 0 ? double(c.keptBlocks) / double(b.allowedBlocks) : 0;
        c.recall = total > 0 ? kept / total : 0;
        b.coverage.push_back(std::move(c));
    }
}

}  // namespace detail

std::vector<uint8_t> topKBlockMask(const BlockSparsity& b, int64_t k) {
    std::vector<uint8_t> out(size_t(b.blockRows * b.blockCols), 0);
    for (int64_t I = 0; I < b.blockRows; ++I) {
        const auto cols = sortedRow(b, I);
        for (size_t n = 0; n < cols.size() && int64_t(n) < k; ++n) out[size_t(I * b.blockCols + cols[n])] = 1;
    }
    return out;
}

std::vector<uint8_t> gammaBlockMask(const BlockSparsity& b, double gamma) {
    std::vector<uint8_t> out(size_t(b.blockRows * b.blockCols), 0);
    for (int64_t I = 0; I < b.blockRows; ++I) {
        const auto cols = sortedRow(b, I);
        const int64_t n = blocksForGamma(b.mass.data() + I * b.blockCols, cols, gamma);
        for (int64_t x = 0; x < n; ++x) out[size_t(I * b.blockCols + cols[size_t(x)])] = 1;
    }
    return out;
}

const GammaCoverage* HeadAnalysis::coverage(int64_t blockSize, double gamma) const {
    constexpr double kGammaTolerance = 1e-9;
    for (const auto& b : blocks)
        if (b.blockSize == blockSize)
            for (const auto& c : b.coverage)
                if (std::abs(c.gamma - gamma) < kGammaTolerance) return &c;
    return nullptr;
}

}  // namespace attnscope
