#pragma once
// Shared pieces of the profiler implementation (not public API).
#include <cstdint>
#include <vector>

#include "attnscope/profiler.h"

namespace attnscope::profiler_detail {

/// The CPU attention spec of softmax variant `v` for query head h (decode maps to causal).
Result<AttentionSpec> cpuSpec(const VariantSpec& v, const ProfileInputs& in, int h);

/// CPU output rows [q0, q1) of head (b, h) under `v`, float32 (decode: the single query row
/// T-1; q0/q1 are ignored). Linear attention is computed over all rows, then sliced.
Result<MatrixRM> referenceRows(const VariantSpec& v, const ProfileInputs& in, int b, int h, int64_t q0, int64_t q1);

/// Block mass of head (b, h) on the CPU (two passes): mass[qb·nb + kb] is the mean over the
/// query block's rows of the probability inside key block kb.
Result<std::vector<double>> cpuBlockMass(const ProfileInputs& in, int b, int h, const AttentionSpec& spec,
                                         int64_t blockSize);

/// Fills `v.blocks` of a block-list variant (topk:K, gamma:G, vslash) from a causal block-mass
/// matrix [nb × nb]. The diagonal block is always kept so every query row sees a key.
Status deriveBlockList(VariantSpec& v, const std::vector<double>& mass, int64_t nb);

/// Row ranges used for accuracy: all rows when T ≤ maxRows, else evenly spaced chunks.
std::vector<std::pair<int64_t, int64_t>> accuracyRowRanges(int64_t T, int64_t maxRows);

/// Fills relError and recall of every result (b = 0, heads [0, accuracyHeads), the rows of
/// accuracyRowRanges) against the dense float32 CPU reference. Variants with an error are skipped.
Status scoreAccuracy(ProfilerBackend& backend, const ProfileInputs& in, const VariantSpec& dense,
                     const std::vector<VariantSpec>& specs, std::vector<VariantResult>& results,
                     const ProfileRequest& request);

/// Microseconds on a steady clock (the CPU backend's timeline).
double steadyMicros();

}  // namespace attnscope::profiler_detail
