#pragma once
// Float64 reference of the GPU analysis passes: the pooled map and block mass by brute force
// (the attention references live in core: variantReferenceAttention).
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/variants.h"

namespace attnscope {

struct MapReference {
    std::vector<double> mean, max, allowed, blockMass;
};
/// Brute-force map (cells as attention.h defines them) and block mass of one head.
MapReference mapReference(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect, int width,
                          int height, int64_t blockSize);

/// max |a - b| / max |b| (NaN in a gives +inf).
template <typename A>
double maxRelativeError(const std::vector<A>& a, const std::vector<double>& b);

}  // namespace attnscope
