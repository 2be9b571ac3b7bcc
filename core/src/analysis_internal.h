#pragma once
// Shared helpers of the analysis engine (analysis_*.cpp): allowed-pair counts of a mask and
// progress scaling. Not part of the public API.
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/analysis.h"
#include "attnscope/analysis_sums.h"

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

/// The n highest-scoring indices (ties by index), after the forced ones.
std::vector<uint8_t> pickTop(const std::vector<double>& score, const std::vector<uint8_t>& forced, int64_t n);

/// Window, sink+window and vertical-slash masks; the vertical-slash one is estimated from the
/// probabilities of the last `estimateQueries` rows (one small pass 2 over those rows).
Result<std::vector<CandidateMask>> buildCandidateMasks(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                       const std::vector<float>& lse,
                                                       const CandidateMaskOptions& options, const ProgressFn& progress);

/// Allowed pairs (under `mask`) that the candidate keeps, summed over rows.
int64_t keptAllowedPairs(const CandidateMask& candidate, const MaskSpec& mask, int64_t tokens);
/// Same for a block list (row-major kept flags at blockSize).
int64_t keptAllowedPairs(const std::vector<uint8_t>& blocks, int64_t blockSize, const MaskSpec& mask, int64_t tokens);

/// Fills the gamma coverage of every requested gamma from `b.mass` and `b.allowed`.
void computeCoverage(BlockSparsity& b, const std::vector<double>& gammas);

/// analyzeHead that also hands back the row logsumexp (so later passes can skip pass 1).
Result<HeadAnalysis> analyzeHeadKeepLse(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                        const AttentionSpec& spec, const HeadContext& context,
                                        const HeadAnalysisOptions& options, const ProgressFn& progress,
                                        std::vector<float>* lseOut);

}  // namespace attnscope::detail
