#pragma once
// Shared helpers of the analysis engine (analysis_*.cpp): allowed-pair counts of a mask and
// progress scaling. Not part of the public API.
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/analysis.h"

namespace attnscope::detail {

/// How many pairs a mask allows, per query row and per key column, without T×T memory.
/// Causal / window masks without documents, block lists, dilation or prefix use closed forms;
/// other masks are counted by one sweep over MaskSpec::allows (O(T²) time, O(T) memory).
struct MaskCounts {
    std::vector<int64_t> rowAllowed;  ///< #{k : allows(i, k)}
    std::vector<int64_t> colAllowed;  ///< #{i : allows(i, k)}
};
MaskCounts countAllowed(const MaskSpec& mask, int64_t tokens);

/// 1 where block (I, J) of size `blockSize` holds at least one allowed pair; row-major
/// [ceil(T/B) × ceil(T/B)].
std::vector<uint8_t> allowedBlocks(const MaskSpec& mask, int64_t tokens, int64_t blockSize);

/// Whether the mask only uses causal/window terms (closed forms apply).
bool isSimpleMask(const MaskSpec& mask);
/// For a simple mask: keys [lo, hi] that query i may see before exclusions (lo > hi: none).
void allowedInterval(const MaskSpec& mask, int64_t tokens, int64_t query, int64_t& lo, int64_t& hi);
/// Number of excluded keys in [lo, hi].
int64_t excludedIn(const std::vector<int64_t>& excluded, int64_t lo, int64_t hi);

/// A progress callback covering [from, to) of `parent`'s range (empty when parent is empty).
ProgressFn subProgress(const ProgressFn& parent, double from, double to);

/// True when `fn` asked to cancel (the Status then carries ErrorCode::Cancelled).
inline bool isCancelled(const Status& s) { return s.code() == ErrorCode::Cancelled; }

Status cancelledStatus(const std::string& what);

/// Median of a copy of `values` (0 for none).
double median(std::vector<double> values);

}  // namespace attnscope::detail

namespace attnscope::detail {

/// A token-level candidate mask (metrics: StreamingLLM, MInference vertical-slash). Membership
/// of (i, j) is tested per tile row, so no mask is ever materialised at T×T.
struct TokenMask {
    enum class Kind { Window, SinkWindow, VerticalSlash };
    Kind kind = Kind::Window;
    std::string name, params;
    int64_t window = 0;                ///< |i - j| < window
    int64_t sinks = 0;                 ///< keys < sinks (SinkWindow)
    std::vector<uint8_t> vertical;     ///< per key (VerticalSlash)
    std::vector<uint8_t> slash;        ///< per offset index (i - j) + origin (VerticalSlash)
    std::vector<int64_t> slashOffsets; ///< the kept offsets i - j
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

/// Window, sink+window and vertical-slash masks; the vertical-slash one is estimated from the
/// probabilities of the last `estimateQueries` rows (one small pass 2 over those rows).
Result<std::vector<TokenMask>> buildTokenMasks(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                               const std::vector<float>& lse, const CandidateMaskOptions& options,
                                               const ProgressFn& progress);

/// Allowed pairs (under `mask`) that the candidate keeps, summed over rows.
int64_t keptAllowedPairs(const TokenMask& candidate, const MaskSpec& mask, int64_t tokens);
/// Same for a block list (row-major kept flags at blockSize).
int64_t keptAllowedPairs(const std::vector<uint8_t>& blocks, int64_t blockSize, const MaskSpec& mask, int64_t tokens);

/// Fills the gamma coverage of every requested gamma from `b.mass` and `b.allowed`.
void computeCoverage(BlockSparsity& b, const std::vector<double>& gammas);

/// Final role scores and profiles from the accumulated sums (analysis_roles.cpp).
void finishProfiles(HeadAnalysis& h, const RoleOptions& options);

/// analyzeHead that also hands back the row logsumexp (so later passes can skip pass 1).
Result<HeadAnalysis> analyzeHeadKeepLse(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                        const AttentionSpec& spec, const HeadContext& context,
                                        const HeadAnalysisOptions& options, const ProgressFn& progress,
                                        std::vector<float>* lseOut);

/// Sinks from the normalized column means (analysis_sinks.cpp).
SinkInfo findSinks(std::vector<float> alpha, const SinkOptions& options, const std::vector<int64_t>& colAllowed);

}  // namespace attnscope::detail
