#pragma once
// The CPU backend's pass 2 (accumulateHead, analysis_head.cpp). A HeadAccumulator takes every
// probability tile p_ij = exp(s_ij - L_i) once, from whichever worker computed it, and hands it to
// one part per metric family; merge() folds the workers' copies together into HeadSums. Each
// part's tile code sits next to the function that finishes its sums into metrics (finishHead runs
// those on the CPU's sums and the GPU's alike):
//   RowStatistics  analysis_stats.cpp       Σp, Σp ln p, Σp|i-j|, first/self/recent/prev/next → HeadStats
//   TokenRoleSums  analysis_roles.cpp       duplicate / induction / repeat / document → RoleScores
//   ProfileSums    analysis_roles.cpp       column and offset sums → sinks (analysis_sinks.cpp), profiles
//   BlockMassSums  analysis_sparsity.cpp    block mass per block size → BlockSparsity
//   MaskedOutputs  analysis_candidates.cpp  dense and candidate-mask outputs → CandidateMaskResult
// A row's tiles all come from one worker, so row sums (and output rows) are written in place;
// column, offset and block sums are kept per worker.
#include <cstdint>
#include <vector>

#include "analysis_internal.h"
#include "attnscope/analysis_sums.h"

namespace attnscope::detail {

using ProbabilityTile = Eigen::Ref<const MatrixRM>;

/// Rows that take part in the means: those with at least one allowed key (finite L_i).
struct ActiveRows {
    std::vector<uint8_t> ok;
    int64_t count = 0;
    /// Σ v_i over the active rows / their count (0 without any).
    double mean(const std::vector<double>& v) const;
};
ActiveRows activeRows(const std::vector<float>& lse, const MaskCounts& counts);

// ---- Row statistics (analysis_stats.cpp) ----

struct RowStatistics {
    RowStatistics(int64_t tokens, bool causal, int64_t recentTokens);
    void addTile(int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    void moveInto(HeadSums& out);

    int64_t tokens;
    bool causal;
    int64_t recent;  ///< keys (i - recent, i] when causal, the final `recent` keys otherwise
    std::vector<double> mass, plogp, distance, first, self, recentMass, prev, next;
};

/// HeadStats (entropy, distance, first-token and recent mass) from the row sums.
void finishStats(HeadAnalysis& h, const HeadSums& sums, const ActiveRows& rows, const MaskCounts& counts);

// ---- Token roles and profiles (analysis_roles.cpp) ----

/// Token id template lookups (TransformerLens duplicate / induction patterns).
struct TokenTemplates {
    bool enabled = false;
    std::vector<const std::vector<int64_t>*> positions;  ///< per row: sorted positions of its token id
    std::vector<std::vector<int64_t>> storage;
};
TokenTemplates buildTemplates(const std::vector<int64_t>& ids, int64_t tokens);

/// Document ranges when every document is one contiguous run (the common, fast case).
struct DocumentRuns {
    bool enabled = false;
    std::vector<int64_t> start, end;  ///< per token: [start, end) of its run
};
DocumentRuns buildRuns(const std::vector<int32_t>& docs, int64_t tokens);

/// Induction entries on repeated text: for row i, keys j = p + 1 where the `context` tokens
/// ending at p < i equal those ending at i (CSR, entries ascending per row).
struct RepeatEntries {
    std::vector<int64_t> rowStart;  ///< [T + 1]
    std::vector<int64_t> keys;
};
RepeatEntries buildRepeats(const std::vector<int64_t>& ids, int64_t tokens, int64_t context);

struct TokenRoleSums {
    TokenRoleSums(int64_t tokens, const HeadContext& context, const RoleOptions& options);
    void addTile(int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    void moveInto(HeadSums& out);

    const HeadContext& context;
    RoleOptions options;
    TokenTemplates templates;
    RepeatEntries repeats;
    DocumentRuns runs;
    bool haveDocs;
    std::vector<double> duplicate, induction, repeat, document;
};

/// Column sums Σ_i p_ij and offset sums Σ p_ij per i - j + origin, one copy per worker.
struct ProfileSums {
    ProfileSums(int64_t tokens, bool causal, int workers);
    void addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    void merge(HeadSums& out);

    int64_t origin;  ///< 0 when causal (offsets i - j ≥ 0), else T - 1
    std::vector<std::vector<double>> column, offset;
};

/// The profiles (column and offset mass per row) and their local / vertical / slash scores.
void finishProfiles(HeadAnalysis& h, const HeadSums& sums, const ActiveRows& rows, bool causal,
                    const RoleOptions& options);
/// RoleScores' token-template and document scores (needs h.stats.meanDistance).
void finishRoles(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec, const HeadContext& context,
                 const RoleOptions& options, const ActiveRows& rows);

// ---- Sinks (analysis_sinks.cpp) ----

/// First-token and hidden sinks from the column sums, and the learned sink's share.
void finishSinks(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec, const SinkOptions& options,
                 const ActiveRows& rows, const MaskCounts& counts);

// ---- Block mass (analysis_sparsity.cpp) ----

struct BlockMassSums {
    BlockMassSums(std::vector<int64_t> sizes, int64_t tokens, int workers);
    void addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    void merge(HeadSums& out);

    std::vector<int64_t> sizes, counts;                  ///< block size, blocks per side
    std::vector<std::vector<std::vector<double>>> mass;  ///< [worker][size][nb × nb]
};

/// One BlockSparsity per requested block size (error when the sums lack one).
Status finishBlocks(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec,
                    const HeadAnalysisOptions& options);

// ---- Candidate masks (analysis_candidates.cpp) ----

/// Masked numerators Σ p v and masses Σ p of one mask (rows of O_mask before division).
struct MaskedOutput {
    MatrixRM numerator;
    std::vector<double> mass;
    MaskedOutput(int64_t tokens, int64_t dv);
};

/// The dense output and the candidate masks' outputs (nothing when there are no masks).
struct MaskedOutputs {
    /// `enabled`: candidate masks are measured (the dense output is kept for pass 3 even when
    /// `masks` is empty).
    MaskedOutputs(const MatrixRM& v, std::vector<CandidateMask> masks, bool enabled, int workers);
    void addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    /// One HeadSums::Masked per mask with its error terms (needs out.mass).
    void moveInto(HeadSums& out);

    const MatrixRM& v;
    bool enabled;
    std::vector<CandidateMask> masks;
    MatrixRM dense;  ///< Σ_j p_ij v_j (unnormalised O)
    std::vector<MaskedOutput> outputs;
    std::vector<MatrixRM> scratch;  ///< per worker: a tile's masked copy
};

/// Pass 3: the top-k block mask (from the head's own block mass at the top-k block size) and its
/// recall and output error against `dense`.
Result<HeadSums::Masked> topKBlockOutput(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                         const AttentionSpec& spec, const HeadSums& sums, const MatrixRM& dense,
                                         const CandidateMaskOptions& options, const ProgressFn& progress);

/// Recall, output error and kept fraction of every mask in the sums.
Status finishCandidates(HeadAnalysis& h, const HeadSums& sums, const AttentionSpec& spec,
                        const CandidateMaskOptions& options, const ActiveRows& rows, const MaskCounts& counts);

// ---- The whole head (analysis_head.cpp) ----

/// Pass 1 + pass 2 (+ the top-k pass) of one head on the CPU: analyzeHead is
/// finishHead(accumulateHead(...)) (tests/core/tst_analysis_sums checks every field).
Result<HeadSums> accumulateHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                const HeadContext& context, const HeadAnalysisOptions& options,
                                const ProgressFn& progress = {});

class HeadAccumulator {
public:
    HeadAccumulator(const MatrixRM& v, const AttentionSpec& spec, const HeadContext& context,
                    const HeadAnalysisOptions& options, std::vector<CandidateMask> masks, int workers);
    /// Adds one probability tile (rows [qStart, +P.rows()), keys [kStart, +P.cols())).
    void addTile(int worker, int64_t qStart, int64_t kStart, const ProbabilityTile& P);
    /// The workers' sums folded together, with `lse` as pass 1; call once, after the last tile.
    HeadSums merge(std::vector<float> lse);
    /// Σ_j p_ij v_j, for pass 3's output error (after merge; empty without candidate masks).
    const MatrixRM& denseOutput() const { return m_masked.dense; }

private:
    int64_t m_tokens;
    RowStatistics m_rows;
    TokenRoleSums m_roles;
    ProfileSums m_profiles;
    BlockMassSums m_blocks;
    MaskedOutputs m_masked;
};

}  // namespace attnscope::detail
