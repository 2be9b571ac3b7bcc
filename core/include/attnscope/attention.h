#pragma once
// CPU reference attention and the two-pass machinery every analysis builds on. Nothing here
// holds T×T: pass 1 computes the row logsumexp L_i tile by tile, pass 2 recomputes score tiles
// and turns them into probabilities p_ij = exp(s_ij - L_i) for the caller to accumulate.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include "attnscope/matrix.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

struct LayerConfig;
struct BoundVariantExpr;

/// Which (query, key) pairs may attend. All conditions are AND-ed.
struct MaskSpec {
    bool causal = false;
    int64_t window = 0;              ///< > 0: |q - k| < window (with causal: 0 <= q - k < window)
    int64_t prefix = 0;              ///< prefix-LM: keys < prefix are visible to every query, even when causal
    int64_t dilation = 1;            ///< dilated sliding window: additionally (q - k) % dilation == 0
    std::vector<int32_t> documents;  ///< empty, or one id per token: doc[q] == doc[k] required
    /// "Exclude sinks and renormalize" (ACT with beta = 0, analysis-metrics.md "Hidden sinks"):
    /// zeroing a key column and renormalising each row is the same as masking the key out of
    /// the softmax, so exclusion is a mask. Sorted ascending.
    std::vector<int64_t> excludedKeys;
    /// Block-sparse mask from a block list (top-k, gamma coverage, vertical-slash): when set,
    /// pair (q, k) is allowed only if block (q / blockSize, k / blockSize) is kept.
    /// Row-major [ceil(Tq/blockSize) × ceil(Tk/blockSize)], 1 = kept.
    std::shared_ptr<const std::vector<uint8_t>> blocks;
    int64_t blockSize = 128;
    int64_t blockCols = 0;
    /// A user program (variant_expr.h) bound to this head: its mask is AND-ed with the rest and
    /// its score mod runs after the built-in ones (AttentionSpec::score).
    std::shared_ptr<const BoundVariantExpr> expr;

    bool allows(int64_t q, int64_t k) const;
};

/// Scores s = scale·q·k, then softcap, then ALiBi / relative bias (FlexAttention order: the
/// score_mods compose on the capped score); mask applied last.
struct AttentionSpec {
    float scale = 1.0f;
    float softcap = 0.0f;       ///< 0 = off; else s <- c·tanh(s/c)
    float alibiSlope = 0.0f;    ///< 0 = off; else s <- s + slope·(k - q)
    float relativeBias = 0.0f;  ///< 0 = off; else s <- s + relativeBias·(q - k) (attention-gym rel. bias)
    /// Learned sink (GPT-OSS): a per-head logit that joins every row's softmax denominator and
    /// takes mass but has no value. One rule everywhere: p(q,k) = exp(s - L') with
    /// L' = logaddexp(L over the allowed keys, sinkLogit), so rows sum to 1 - exp(sink - L').
    /// Folded into the row logsumexp wherever it is computed; -inf = no sink.
    float sinkLogit = -std::numeric_limits<float>::infinity();
    MaskSpec mask;

    float score(float dot, int64_t q, int64_t k) const;
    bool hasSink() const { return sinkLogit > -std::numeric_limits<float>::infinity(); }
};

/// L' = logaddexp(lse, sinkLogit): the row logsumexp with a learned sink in the denominator
/// (lse unchanged when sinkLogit is -inf; sinkLogit when the row has no allowed key).
float foldSinkIntoLse(float lse, float sinkLogit);
/// The learned sink's share of row mass, exp(sinkLogit - L') for a row logsumexp L' that already
/// holds the sink (0 without a sink).
double sinkShareOfRow(float lseWithSink, float sinkLogit);
/// Rescales the rows of an output computed without a learned sink (a forward kernel whose lse L
/// has none) to O' = O·exp(L − L'), L' = foldSinkIntoLse(L, sinkLogit); `lse` holds out.rows().
void applySinkToOutput(MatrixRM& out, const float* lse, float sinkLogit);

/// The spec a layer's head natively uses (scale, causal, window, softcap, ALiBi slope, learned
/// sink logit).
AttentionSpec specForLayer(const LayerConfig& layer, int head);
/// Standard ALiBi slope of head h of H: 2^(-8(h+1)/H).
float alibiSlope(int head, int heads);

/// Output and row logsumexp of one head. Rows with no allowed key get O = 0 and lse = -inf (the
/// sink logit with a learned sink). With a sink, lse is L' and O = Σ exp(s - L')·v.
struct AttentionOutput {
    MatrixRM out;            ///< [Tq, dv]
    std::vector<float> lse;  ///< [Tq], natural log
};

/// Reference attention for one head, tile by tile (flash-style online softmax), multi-threaded.
///   auto r = referenceAttention(q, k, v, spec); if (r) use(r->out);
/// q: [Tq, d], k: [Tk, d], v: [Tk, dv]. Query i sits at position i + qOffset (decode: a short Q
/// against a long KV uses qOffset = Tk - Tq).
Result<AttentionOutput> referenceAttention(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                           const AttentionSpec& spec, const ProgressFn& progress = {},
                                           int64_t qOffset = 0);

/// Pass 1 only: the row logsumexp of rows [q0, q1) (natural log; -inf for empty rows), the
/// learned sink folded in (L').
Result<std::vector<float>> rowLogSumExp(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t q0,
                                        int64_t q1, const ProgressFn& progress = {});

/// Callback for pass 2. `P` holds probabilities for rows [qStart, qStart+P.rows()) and keys
/// [kStart, kStart+P.cols()); masked entries are 0. `worker` is in [0, workerCount) and is
/// stable for a whole row tile, so callers can keep one accumulator per worker.
using ProbabilityTileFn =
    std::function<void(int worker, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P)>;

struct TileOptions {
    int64_t tileQ = 128;
    int64_t tileK = 256;
    bool skipEmptyTiles = true;  ///< skip tiles the mask rules out entirely (causal upper part)
};

/// Pass 2: visits probability tiles of the rectangle [q0,q1)×[k0,k1). `lse` covers rows [q0,q1)
/// (lse[i - q0]). Row tiles run in parallel, one worker each; see workerCount().
Status forEachProbabilityTile(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                              const std::vector<float>& lse, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                              const ProbabilityTileFn& fn, const ProgressFn& progress = {},
                              const TileOptions& options = {});

/// Number of worker threads the engine uses (hardware threads, at least 1).
int workerCount();

/// A rectangle of the T×T map: queries [q0,q1) × keys [k0,k1).
struct MapRect {
    int64_t q0 = 0, q1 = 0, k0 = 0, k1 = 0;
};

/// Pooled probabilities of a rectangle at a given output size. Cell (y, x) covers queries
/// [q0 + y·Hq/height, q0 + (y+1)·Hq/height) and likewise keys; values are row-major
/// [height × width]. `mean` averages over every (q, k) in the cell (masked pairs count as 0);
/// `max` is the largest probability in it. width/height are clamped to the rectangle.
struct AttentionMap {
    MapRect rect;
    int width = 0, height = 0;
    std::vector<float> mean;
    std::vector<float> max;
    std::vector<float> allowed;  ///< fraction of the cell's pairs that the mask allows
};

/// Multiscale map, two passes from Q/K, never T×T. Exact against brute force.
///   auto m = attentionMap(q, k, spec, {0, T, 0, T}, 512, 512);
/// `lse` (optional) is the full row logsumexp [T] from an earlier call, to skip pass 1.
Result<AttentionMap> attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect,
                                  int width, int height, const ProgressFn& progress = {},
                                  const std::vector<float>* lse = nullptr);

/// Keys whose sink score alpha_k (analysis-metrics.md "Sinks": the column sum of probabilities
/// divided by the number of queries that can see k, T − k when causal, else T) exceeds
/// `threshold`; two passes over tiles. Ascending. Used by `map --exclude-sinks` (threshold 0.3).
///   auto sinks = sinkColumns(q, k, spec, 0.3); if (sinks) spec.mask.excludedKeys = *sinks;
Result<std::vector<int64_t>> sinkColumns(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                         double threshold, const ProgressFn& progress = {});

}  // namespace attnscope
