#pragma once
// Analysis engine: sinks, sparsity, head roles, head similarity, token-level rows/columns and
// attention rollout for every head of a trace. Definitions follow shared/docs/analysis-metrics.md
// (cited per field below as "metrics: <section>").
//
// Everything is two-pass (metrics: "Cost classes" 2P): pass 1 = rowLogSumExp, pass 2 =
// forEachProbabilityTile with one accumulator per worker. Nothing holds T×T: per-head results are
// O(T) vectors and block matrices of O((T/B)²).
//
// Typical use (the GUI and `attnscope-cli analyze`):
//   auto trace = Trace::open(path);
//   AnalyzeOptions opt; opt.layers = {0, 3};
//   auto model = analyzeTrace(**trace, opt, progress);
//   if (model) writeFileAtomic("a.json", toJson(*model).dump(1));
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "attnscope/analysis_limits.h"
#include "attnscope/attention.h"
#include "attnscope/json.h"
#include "attnscope/matrix.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

class Trace;

// ---------------------------------------------------------------------------------------------
// Options (defaults documented where they come from)
// ---------------------------------------------------------------------------------------------

/// metrics: "Sinks".
struct SinkOptions {
    double firstTokenEps = kSinkScoreThreshold;  ///< Gu et al.: a head "has a sink" at k when alpha_k > eps
    double hiddenThreshold = 0.1;                ///< ACT: hidden sinks beyond position 0
    /// Keys seen by fewer queries are not hidden-sink candidates: alpha_k of the last keys is a
    /// mean over a handful of queries (alpha_{T-1} is one probability), so it is noise.
    int64_t hiddenMinQueries = 32;
};

/// metrics: "Head roles". Scores are the TransformerLens "mul" score Σ(A⊙P)/ΣA.
struct RoleOptions {
    bool excludeBos = false;           ///< TransformerLens option: zero column 0 before scoring
    bool excludeCurrentToken = false;  ///< TransformerLens option: zero the diagonal before scoring
    int64_t recentTokens = 4;          ///< "attention to the last tokens": the n most recent keys
    int64_t localWidth = 16;           ///< local band: |i - j| < localWidth
    int64_t profileTop = 16;           ///< vertical/slash scores: mass in the top-n columns/offsets
    int64_t repeatContext = 3;         ///< tokens of context that must repeat (RoleScores::inductionRepeat)
    int64_t minRepeatRows = 8;         ///< fewer repeated rows: the label falls back to inductionMatched
    // Label thresholds (first match wins, in the order below; see classifyHead).
    double inductionThreshold = 0.3;   ///< on rows where the template has an entry
    double duplicateThreshold = 0.3;   ///< idem
    double positionalThreshold = 0.5;  ///< Clark et al.: previous/next token > 0.5
    double documentThreshold = 0.9;    ///< in-document mass
    double localThreshold = 0.5;       ///< mass within localWidth
    double verticalThreshold = 0.5;    ///< mass in the top-n columns beyond key 0
    double slashThreshold = 0.5;       ///< mass in the top-n offsets beyond the local band
    /// Clark et al. call a BERT-base head broad above 3.8 nats (≈ 0.6–0.7 of log T at their
    /// lengths); we threshold the length-free normalized entropy instead.
    double broadNormalizedEntropy = 0.7;
};

/// Candidate sparse masks whose recall and output error are measured (metrics: "Sparsity and
/// coverage", StreamingLLM, MInference). Budgets default to ≈ 512 keys per query so that the
/// masks are comparable with each other.
struct CandidateMaskOptions {
    bool enabled = true;
    int64_t window = 512;          ///< causal sliding window W (StreamingLLM's recent_size)
    int64_t sinkTokens = 4;        ///< StreamingLLM start_size
    int64_t sinkWindow = 512;      ///< StreamingLLM recent_size
    int64_t estimateQueries = 64;  ///< MInference: vertical-slash estimated from the last 64 queries
    int64_t verticalCount = 256;   ///< kept columns (incl. the forced ones)
    int64_t slashCount = 256;      ///< kept diagonals (incl. the forced ones)
    int64_t forcedVertical = 30;   ///< MInference always keeps the first 30 columns …
    int64_t forcedSlash = 100;     ///< … and the 100 diagonals nearest the main one
    int64_t topKBlocks = 8;        ///< top-k blocks per block-row (oracle, from the block mass)
    int64_t topKBlockSize = 64;
};

struct HeadAnalysisOptions {
    std::vector<double> gammas = {0.5, 0.9, 0.95, 0.99};  ///< metrics: "Sparsity" (FlexPrefill gamma 0.9)
    std::vector<int64_t> blockSizes = {64, 128};          ///< metrics: block mass matrix at B = 64 or 128
    SinkOptions sinks;
    RoleOptions roles;
    CandidateMaskOptions masks;
};

/// Per-token context of a head: token ids (duplicate/induction templates) and document ids
/// (in-document mass). Either may be empty.
struct HeadContext {
    std::vector<int64_t> tokenIds;
    std::vector<int32_t> documents;
};

// ---------------------------------------------------------------------------------------------
// Per-head results
// ---------------------------------------------------------------------------------------------

/// metrics: "Head roles" (entropy, mean attention distance) and "Sinks".
struct HeadStats {
    int64_t rows = 0;              ///< queries with at least one allowed key
    double entropy = 0;            ///< mean_i H_i, H_i = -Σ_j p_ij ln p_ij (nats)
    double entropyNormalized = 0;  ///< mean_i H_i / ln(#allowed keys of i), rows with ≥ 2 keys
    double meanDistance = 0;       ///< mean_i Σ_j p_ij |i - j| (ViT "mean attention distance")
    double firstTokenMass = 0;     ///< mean_i p_i0
    /// mean_i of the mass on the last `recentTokens` keys the query sees: keys (i-n, i] when
    /// causal, the final n keys of the sequence otherwise (e.g. [SEP] in encoders).
    double recentMass = 0;
};

/// metrics: "Sinks".
struct SinkInfo {
    std::vector<float> alpha;  ///< alpha_k = Σ_{i sees k} A[i,k] / #{i sees k}, per key
    double alpha0 = 0;
    bool firstTokenSink = false;       ///< alpha_0 > firstTokenEps
    std::vector<int64_t> hiddenSinks;  ///< k ≥ 1 with alpha_k > hiddenThreshold
    /// Learned sink (GPT-OSS: a per-head logit in the softmax denominator, no value): its share of
    /// the attention mass, mean over the rows with an allowed key of exp(sink − L'_i). The keys'
    /// probabilities (and alpha) sum to 1 − that share per row.
    bool learnedSink = false;
    float learnedSinkLogit = 0;
    double learnedSinkShare = 0;
    /// Every sink key (0 when firstTokenSink, then the hidden ones), sorted.
    std::vector<int64_t> keys() const;
};

/// Blocks needed to reach `gamma` of each block-row's mass (metrics: "Sparsity and coverage").
struct GammaCoverage {
    double gamma = 0;
    std::vector<int32_t> blocksPerRow;  ///< per block-row (0 for rows with no mass)
    int64_t keptBlocks = 0;
    double density = 0;  ///< kept / allowed blocks
    double recall = 0;   ///< Σ_kept M / Σ M
};

/// Block mass matrix M_IJ = Σ_{i∈I, j∈J} p_ij at one block size.
struct BlockSparsity {
    int64_t blockSize = 0;
    int64_t blockRows = 0, blockCols = 0;
    std::vector<float> mass;       ///< row-major [blockRows × blockCols]
    std::vector<uint8_t> allowed;  ///< 1 where the mask allows at least one pair of the block
    int64_t allowedBlocks = 0;
    std::vector<GammaCoverage> coverage;  ///< one per requested gamma
};

/// A candidate sparse mask measured against dense attention.
struct CandidateMaskResult {
    std::string name;         ///< "window", "sink+window", "vertical-slash", "top-k blocks"
    std::string params;       ///< e.g. "W=512"
    double recall = 0;        ///< mean over queries of Σ_{j∈mask} A[i,j] (MInference pattern recall)
    double outputError = 0;   ///< ‖O_mask - O‖_F / ‖O‖_F with V (masking = renormalising A)
    double keptFraction = 0;  ///< kept allowed pairs / allowed pairs
};

/// metrics: "Head roles". All scores in [0, 1].
struct RoleScores {
    double previousToken = 0;                      ///< TransformerLens score, P_ij = [j = i-1]
    double nextToken = 0;                          ///< mean_i p_{i,i+1} (Clark et al.; 0 for causal heads)
    double duplicateToken = 0;                     ///< TransformerLens score over all rows
    double induction = 0;                          ///< TransformerLens score over all rows
    double duplicateMatched = 0;                   ///< same numerator, over rows whose template has an entry
    double inductionMatched = 0;                   ///< idem (label uses these: robust to how much text repeats)
    int64_t duplicateRows = 0, inductionRows = 0;  ///< rows with a template entry
    /// Induction on repeated text: the induction template restricted to rows whose last
    /// `repeatContext` tokens occurred earlier, with entries only after those earlier occurrences.
    /// On a verbatim repeat this is metrics' "mean of A[i, i − n + 1] over the second copy", found
    /// without being told where the copy is; natural one-token repeats no longer dilute it.
    double inductionRepeat = 0;
    int64_t repeatRows = 0;
    double localMass = 0;        ///< mean_i Σ_{|i-j|<localWidth} p_ij
    double documentMass = -1;    ///< mean_i Σ_{doc j = doc i} p_ij; -1 without document ids
    double documentSpread = -1;  ///< mean distance / that of uniform in-document attention
    double verticalScore = 0;    ///< share of mass in the top-n columns, key 0 excluded
    double slashScore = 0;       ///< share of mass in the top-n offsets with |o| ≥ localWidth
};

/// Vertical (column) and slash (diagonal) profiles (metrics: MInference vertical/slash).
struct HeadProfiles {
    std::vector<float> columnMass;  ///< Σ_i p_ij / rows, per key (sums to 1)
    std::vector<float> offsetMass;  ///< Σ_i p_{i,i-o} / rows, per offset o (sums to 1)
    int64_t offsetOrigin = 0;       ///< index of offset 0 in offsetMass (0 for causal heads)
};

struct HeadRole {
    std::string label;     ///< induction, duplicate-token, previous-token, next-token, document,
                           ///< local, sink, hidden-sink, vertical, slash, broad, mixed
    std::string evidence;  ///< the scores behind it, e.g. "prev=0.93 alpha0=0.02"
};

struct HeadAnalysis {
    int layer = -1, head = -1;
    int64_t tokens = 0;
    HeadStats stats;
    SinkInfo sinks;                     ///< from the dense map (even when sinks were excluded)
    std::vector<int64_t> excludedKeys;  ///< keys masked out for every other metric ("exclude sinks")
    std::vector<BlockSparsity> blocks;  ///< one per block size
    std::vector<CandidateMaskResult> masks;
    RoleScores roles;
    HeadProfiles profiles;
    HeadRole role;

    /// The coverage entry for (blockSize, gamma), or nullptr.
    const GammaCoverage* coverage(int64_t blockSize, double gamma) const;
};

// ---------------------------------------------------------------------------------------------
// Per-head API
// ---------------------------------------------------------------------------------------------

/// Every per-head metric of one head in three passes (lse, probability tiles, top-k blocks).
///   auto h = analyzeHead(q, k, v, specForLayer(cfg, head), {ids, {}}, {}, progress);
/// q, k: [T, d]; v: [T, dv]. The role label is filled by classifyHead.
Result<HeadAnalysis> analyzeHead(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v, const AttentionSpec& spec,
                                 const HeadContext& context = {}, const HeadAnalysisOptions& options = {},
                                 const ProgressFn& progress = {});

/// "Exclude sinks and renormalize" (ACT with beta = 0, metrics: "Hidden sinks"): zeroing sink
/// columns and renormalising rows equals masking the keys out, so this returns `spec` with the
/// sink keys merged into MaskSpec::excludedKeys. Every map and metric can then use it.
AttentionSpec specWithoutSinks(const AttentionSpec& spec, const SinkInfo& sinks);
/// Same, from an explicit key list (merged, sorted, unique).
AttentionSpec specWithoutKeys(const AttentionSpec& spec, const std::vector<int64_t>& keys);

/// The role label with its evidence (thresholds in RoleOptions; first match wins in the order
/// induction, duplicate-token, previous-token, next-token, document, local, sink / hidden-sink
/// (whichever sink has the larger alpha), vertical, slash, then broad or mixed).
HeadRole classifyHead(const HeadAnalysis& head, const RoleOptions& options = {});

/// Block-sparse masks from a block mass matrix, as MaskSpec::blocks (row-major, 1 = kept):
/// the top-k allowed blocks of each block-row / the fewest blocks reaching gamma per block-row.
std::vector<uint8_t> topKBlockMask(const BlockSparsity& blocks, int64_t k);
std::vector<uint8_t> gammaBlockMask(const BlockSparsity& blocks, double gamma);

// ---------------------------------------------------------------------------------------------
// Head similarity (metrics: "Head similarity")
// ---------------------------------------------------------------------------------------------

/// One head's inputs for joint passes. `lse` may be empty (computed).
struct HeadInput {
    const MatrixRM* q = nullptr;
    const MatrixRM* k = nullptr;
    AttentionSpec spec;
    std::vector<float> lse;
};

/// Jensen–Shannon comparison of heads (Clark et al. head_distances) with smoothing
/// p' = 0.999 p + 0.001/T. Within a layer only: across L layers the cost grows with (L·H)²·T²
/// and the grid view orders the heads of one layer.
struct HeadSimilarity {
    int layer = -1;
    int heads = 0;
    std::vector<double> divergence;  ///< [H×H] mean_i JS(p'_{h,i}, p'_{g,i}), nats, ≤ ln 2
    std::vector<double> distance;    ///< [H×H] sqrt(divergence / ln 2) in [0, 1]
    std::vector<double> similarity;  ///< [H×H] 1 - distance
    std::vector<int> order;          ///< leaf order of average-linkage clustering on distance
    /// Dendrogram: merge m joins clusters a and b (ids < H are heads, H + m' is merge m') at
    /// average distance height.
    struct Merge {
        int a = 0, b = 0;
        double height = 0;
    };
    std::vector<Merge> merges;
};

/// JS divergence between every pair of `heads` (all with the same T), then the clustering.
Result<HeadSimilarity> headSimilarity(std::vector<HeadInput> heads, const ProgressFn& progress = {});

/// Average-linkage (UPGMA) agglomerative clustering of an n×n distance matrix; returns the
/// dendrogram's leaf order (ties broken by index, so the order is reproducible).
std::vector<int> averageLinkageOrder(const std::vector<double>& distance, int n,
                                     std::vector<HeadSimilarity::Merge>* merges = nullptr);

// ---------------------------------------------------------------------------------------------
// Token level
// ---------------------------------------------------------------------------------------------

struct AttentionRow {
    int64_t query = 0;
    std::vector<float> probabilities;            ///< [T], A[query, :]
    std::vector<std::pair<int64_t, float>> top;  ///< top-k keys, largest first
};

/// The full attention row of one query with its top-k keys (pass 1 + 2 for a single row: O(T·d)).
Result<AttentionRow> attentionRow(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t query,
                                  int topK = 10);

struct AttentionColumn {
    int64_t key = 0;
    std::vector<float> probabilities;            ///< [T], A[:, key]
    std::vector<std::pair<int64_t, float>> top;  ///< queries attending most, largest first
    double alpha = 0;                            ///< normalized column mean (sink score)
};

/// Who attends to `key`: the column A[:, key]. Needs every row's lse (pass it to skip pass 1).
Result<AttentionColumn> attentionColumn(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t key,
                                        int topK = 10, const std::vector<float>* lse = nullptr,
                                        const ProgressFn& progress = {});

/// Attention rollout of one query row (Abnar & Zuidema 2020, metrics: "Multiscale views"):
/// Â_l = rownorm(mean_h A_l + I), r = e_query · Â_L · … · Â_0, two passes per head and layer
/// over only the rows r touches. Returns r over the T input tokens (sums to 1).
struct RolloutOptions {
    int lastLayer = -1;                          ///< -1: the last layer of the trace
    bool excludeSinks = false;                   ///< needs `sinkKeys` per layer×head (see specWithoutKeys)
    std::vector<std::vector<int64_t>> sinkKeys;  ///< [layer·H + head]
};
Result<std::vector<double>> rolloutRow(const Trace& trace, int64_t query, const RolloutOptions& options = {},
                                       const ProgressFn& progress = {});

// ---------------------------------------------------------------------------------------------
// Model level
// ---------------------------------------------------------------------------------------------

class GpuEngine;
struct LayerDone;

struct AnalyzeOptions {
    std::vector<int> layers;  ///< empty: every layer
    /// The backend the caller picked: a GPU engine runs every layer it can (GpuEngine::
    /// analyzeLayerSums, the tensor-core passes) and the CPU the rest; null = the CPU only.
    GpuEngine* gpu = nullptr;
    /// Engines of the other visible GPUs (createGpuEngines): layers are dealt to all of them in
    /// turn, one thread per GPU. Ignored without `gpu`.
    std::vector<GpuEngine*> moreGpus;
    /// On the GPU path head similarity (H² joint passes per layer, on the CPU) runs up to this T;
    /// above it the result says it was skipped.
    int64_t gpuSimilarityMaxTokens = 8192;
    HeadAnalysisOptions head;
    bool excludeSinks = false;  ///< detect sinks densely, then measure everything without them
    bool similarity = true;     ///< per-layer head similarity (one more pass per head)
    double summaryGamma = 0.9;  ///< density reported in the layer summary (FlexPrefill)
    int64_t summaryBlockSize = 128;
    /// Called on the calling thread as each layer is finished, in layer order, so a viewer can
    /// show layers before the whole model is done (the GUI's head grid fills in). Cancel through
    /// the progress callback. Not kept in ModelAnalysis::options.
    std::function<void(const LayerDone&)> onLayer;
};

struct LayerSummary {
    int layer = 0;
    int heads = 0;
    double sinkRate = 0;       ///< % of heads with a first-token sink (metrics: "Sinks")
    int hiddenSinkHeads = 0;   ///< heads with at least one hidden sink
    double medianEntropy = 0;  ///< median over heads of the mean entropy, nats
    double medianEntropyNormalized = 0;
    double density = 0;                ///< mean over heads of density at summaryGamma / summaryBlockSize
    std::map<std::string, int> roles;  ///< label -> number of heads
};

struct ModelAnalysis {
    std::string tracePath;
    std::string model;
    int64_t tokens = 0;
    AnalyzeOptions options;
    std::vector<HeadAnalysis> heads;  ///< layer-major
    std::vector<LayerSummary> layers;
    std::vector<HeadSimilarity> similarity;  ///< one per analysed layer (when enabled)
    double sinkRate = 0;                     ///< % over every analysed head
    std::string backend = "CPU";             ///< "GPU <name> (tensor cores)", "CPU", or both with layer counts
    std::vector<std::string> notes;          ///< fallbacks and skipped parts, one sentence each
    /// Per analysed layer: milliseconds reading the trace and uploading (overlapping the previous
    /// layer on the GPU path), computing the passes, and finishing the metrics on the CPU.
    struct LayerTiming {
        int layer = 0;
        bool gpu = false;
        double readMs = 0, uploadMs = 0, computeMs = 0, finishMs = 0;
        std::vector<std::pair<std::string, double>> passes;  ///< GPU: kernel ms per pass, then host time
    };
    std::vector<LayerTiming> timings;
};

/// A layer analyzeTrace has just finished (AnalyzeOptions::onLayer). It points into the result
/// being built: valid during the call only, copy what you keep.
struct LayerDone {
    int layer = 0;
    std::span<const HeadAnalysis> heads;  ///< the layer's heads, in head order
    const LayerSummary* summary = nullptr;
    const HeadSimilarity* similarity = nullptr;  ///< null when not computed (or skipped)
};

/// Analyses the chosen layers of a trace: every head (analyzeHead with the layer's native spec,
/// GQA-mapped K/V, the trace's token and document ids), the role labels, per-layer summaries
/// and head similarity. Progress covers the whole run; cancelling returns ErrorCode::Cancelled.
Result<ModelAnalysis> analyzeTrace(const Trace& trace, const AnalyzeOptions& options = {},
                                   const ProgressFn& progress = {});

/// JSON of everything (schema "attnscope.analysis" v1): options, per-layer summaries, per-head
/// results (vectors and block matrices included), similarity.
Json toJson(const ModelAnalysis& analysis);
Json toJson(const HeadAnalysis& head);

}  // namespace attnscope
