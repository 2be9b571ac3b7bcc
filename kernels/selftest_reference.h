#pragma once
// Float64 reference of the GPU analysis passes: the pooled map and block mass by brute force
// (the attention references live in core: variantReferenceAttention), and the self-tests'
// random inputs.
#include <random>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/gpu.h"
#include "attnscope/variants.h"

namespace attnscope {

struct MapReference {
    std::vector<double> mean, max, allowed, blockMass;
};
/// Brute-force map (cells as attention.h defines them) and block mass of one head.
MapReference mapReference(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect, int width,
                          int height, int64_t blockSize);

/// Standard deviation of the self-tests' random Q, K and V: scores ~ N(0, 2.25), peaky enough to matter.
inline constexpr float kSelfTestInputSigma = 1.5f;
/// `n` values from N(0, kSelfTestInputSigma²), each rounded to `t`, so that the float64 reference
/// sees exactly the inputs the GPU holds.
std::vector<float> randomRounded(size_t n, GpuDType t, std::mt19937_64& rng);

/// max |a - b| / max |b| (NaN in a gives +inf).
template <typename A>
double maxRelativeError(const std::vector<A>& a, const std::vector<double>& b);

}  // namespace attnscope
