// Block sparsity (metrics: "Sparsity and coverage"): blocks needed per block-row to reach a
// mass gamma, density = kept / allowed blocks, recall = Σ_kept M / Σ M, and block masks built
// from the block mass (top-k per block-row, gamma coverage).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "analysis_internal.h"

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

namespace detail {

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
