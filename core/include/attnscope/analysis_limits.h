#pragma once
// Numeric policies shared by the CPU analysis and the GPU passes (kernels/ includes this header
// from CUDA code, so it has no dependencies).

namespace attnscope {

/// A candidate mask that keeps less than this much of a row's attention mass outputs zero for
/// that row: its renormalised output would divide by a mass at the edge of float32's range (the
/// CPU's float exp and the GPU's exp2 underflow differently there), so it is not a number to
/// report. The output error then counts the whole row as lost.
inline constexpr double kMinMaskedMass = 1e-30;

/// A key is a sink when its sink score alpha_k (analysis-metrics.md "Sinks") exceeds this
/// (Gu et al.'s eps): the first-token sink flag, `map --exclude-sinks` and the GUI's "exclude
/// sinks" all use it.
inline constexpr double kSinkScoreThreshold = 0.3;

}  // namespace attnscope
