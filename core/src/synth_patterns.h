#pragma once
// Internal: constructs Q/K for one planted pattern. Every pattern is written in "logit space":
// q̂_i·k̂_j is the designed score s_ij, and the caller stores q = q̂·d^¼ and k = k̂·d^¼ so that
// scale·q·k = s_ij with scale = 1/√d (balanced magnitudes keep F16/BF16 rounding small).
#include <cstdint>
#include <random>
#include <vector>

#include "attnscope/matrix.h"
#include "attnscope/status.h"
#include "attnscope/synth.h"

namespace attnscope::synth {

/// What a head's construction needs to know about the sequence.
struct Sequence {
    int64_t tokens = 0;
    std::vector<int64_t> tokenIds;
    int64_t vocabulary = 0;      ///< ids are < vocabulary; vocabulary itself codes "no token"
    std::vector<int32_t> documents;
    int64_t hiddenSink = 0;
};

/// q̂ and k̂ of one kv head, [T, d] each, in logit space.
struct HeadCodes {
    MatrixRM q, k;
};

/// Builds the planted pattern; fails with InvalidArgument when d is too small for T.
Result<HeadCodes> buildHead(SynthHead pattern, const Sequence& seq, int headDim, std::mt19937_64& rng);

/// Columns a pattern needs at sequence length T and vocabulary size V (for the d check).
int columnsNeeded(SynthHead pattern, int64_t tokens, int64_t vocabulary, int documents);

}  // namespace attnscope::synth
