#pragma once
// The per-head analysis split in two: accumulating pass-2 sums (on the CPU inside analyzeHead, or
// on a GPU backend behind GpuEngine::analyzeLayerSums) and finishing them into a HeadAnalysis
// (always here, so both backends report through the same code). HeadSums is the contract between them:
// every field is a plain sum over probabilities p_ij = exp(s_ij - L_i) of one head.
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/analysis.h"

namespace attnscope {

/// A token-level candidate mask (metrics: StreamingLLM sink+window, MInference vertical-slash).
/// Membership of (i, j) is a closed form or a per-key / per-offset flag, so no mask is ever T×T.
struct CandidateMask {
    enum class Kind { Window, SinkWindow, VerticalSlash };
    Kind kind = Kind::Window;
    std::string name, params;
    int64_t window = 0;                 ///< |i - j| < window
    int64_t sinks = 0;                  ///< keys < sinks (SinkWindow)
    std::vector<uint8_t> vertical;      ///< per key (VerticalSlash)
    std::vector<uint8_t> slash;         ///< per offset index (i - j) + origin (VerticalSlash)
    std::vector<int64_t> slashOffsets;  ///< the kept offsets i - j
    int64_t origin = 0;

    bool contains(int64_t i, int64_t j) const;
    /// Column ranges [c0, c1) of a tile (at most two: the sink columns and the window).
    struct Ranges {
        std::pair<int64_t, int64_t> r[2] = {{0, 0}, {0, 0}};
        int count = 0;
    };
    /// Copies P's entries inside the mask into `out` (resized to P, zero elsewhere) and returns
    /// the column ranges holding them, so products with V skip the empty columns in between.
    Ranges fill(int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P, MatrixRM& out) const;
};

/// The window and sink+window masks of `options`, then vertical-slash from the column sums and
/// offset sums (index i - j + origin) of the last `estimateQueries` rows' probabilities.
std::vector<CandidateMask> candidateMasks(const std::vector<double>& estimateColumns,
                                          const std::vector<double>& estimateOffsets, int64_t tokens, bool causal,
                                          const CandidateMaskOptions& options);

/// Repeated-context ids for RoleScores::inductionRepeat: positions p and i share an id ≥ 0 when
/// the `context` tokens ending at p equal those ending at i; -1 where fewer than `context`
/// tokens precede (or without token ids). Row i's entries are then the keys j = p + 1 with
/// p < i and ngram[p] == ngram[i].
std::vector<int64_t> ngramIds(const std::vector<int64_t>& tokenIds, int64_t context);

/// Pass-2 sums of one head. Row vectors are [T]; rows with no allowed key hold 0.
struct HeadSums {
    int64_t tokens = 0;
    std::vector<float> lse;  ///< pass 1: L_i (natural log, -inf for rows with no allowed key)
    /// Σ_j p_ij, Σ p ln p, Σ p |i-j|, p_i0, p_ii, recent keys, p_{i,i-1}, p_{i,i+1}, and the
    /// duplicate / induction / repeated-context / same-document template numerators.
    std::vector<double> mass, plogp, distance, first, self, recent, prev, next, duplicate, induction, repeat, document;
    std::vector<double> column;  ///< Σ_i p_ij per key
    std::vector<double> offset;  ///< Σ p_ij per offset index i - j + origin (origin = 0 causal, else T-1)
    /// Block mass at each accumulated block size (the requested ones, then the top-k mask's).
    std::vector<int64_t> blockSizes;
    std::vector<std::vector<double>> blocks;  ///< [nb × nb] row-major per block size
    /// One per candidate mask, in the order window, sink+window, vertical-slash, top-k blocks:
    /// the mask, Σ_{j∈mask} p_ij per row, and Σ_i ‖O_mask,i − O_i‖² and Σ_i ‖O_i‖².
    struct Masked {
        CandidateMask mask;               ///< unused for top-k blocks
        std::vector<uint8_t> keptBlocks;  ///< top-k blocks only (at the top-k block size)
        std::vector<double> mass;
        double errorDiff2 = 0, errorRef2 = 0;
    };
    std::vector<Masked> masked;
};

/// Block sizes HeadSums accumulates for `options`: the requested ones, then the top-k mask's
/// when candidate masks are enabled and it is not among them.
std::vector<int64_t> accumulatedBlockSizes(const HeadAnalysisOptions& options);

/// 1 where block (I, J) of size `blockSize` holds at least one pair the mask allows, row-major
/// [ceil(T/B) × ceil(T/B)] (the top-k mask's candidates).
std::vector<uint8_t> allowedBlockFlags(const MaskSpec& mask, int64_t tokens, int64_t blockSize);

/// Every per-head metric and the role label from the sums (both backends).
Result<HeadAnalysis> finishHead(const HeadSums& sums, const AttentionSpec& spec, const HeadContext& context,
                                const HeadAnalysisOptions& options);

}  // namespace attnscope
