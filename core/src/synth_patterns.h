#pragma once
// Internal: constructs Q/K for one planted pattern. Every pattern is written in "logit space":
// q̂_i·k̂_j is the designed score s_ij, and the caller stores q = q̂·d^¼ and k = k̂·d^¼ so that
// scale·q·k = s_ij with scale = 1/√d (balanced magnitudes keep F16/BF16 rounding small).
#include <cstdint>
#include <random>
#include <vector>

#include "attnscope/status.h"
#include "attnscope/synth.h"

namespace attnscope::synth {

/// What a head's construction needs to know about the sequence.
struct Sequence {
    int64_t tokens = 0;
    std::vector<int64_t> tokenIds;
    int64_t vocabulary = 0;  ///< ids are < vocabulary; vocabulary itself codes "no token"
    std::vector<int32_t> documents;
    int documentCount = 1;  ///< 1 + the largest id in `documents`
    int64_t hiddenSink = 0;
};

/// q̂ and k̂ of one kv head, produced a block of rows at a time so that no [T, d] matrix is ever
/// held (T reaches millions at real model sizes). The random draws happen in one fixed order
/// whatever the block sizes: for noise heads all of q̂ then all of k̂ (a second engine, advanced
/// past q̂'s draws at start, serves k̂), otherwise row by row the q̂ and k̂ filler columns in turn.
class HeadCodeStream {
public:
    /// Starts at row 0 with a copy of `rng`; fails with InvalidArgument when d is too small for T.
    /// `seq` must outlive the stream.
    static Result<HeadCodeStream> start(SynthHead pattern, const Sequence& seq, int headDim,
                                        const std::mt19937_64& rng);

    /// The next `rows` rows of q̂ and k̂ into `q` and `k` (row-major, rows × d each).
    void next(int64_t rows, float* q, float* k);
    int64_t row() const { return m_row; }
    /// The engine once every row was produced: where the head's random stream continues.
    const std::mt19937_64& engine() const { return m_pattern == SynthHead::Noise ? m_kEngine : m_engine; }

private:
    HeadCodeStream(SynthHead pattern, const Sequence& seq, int headDim, int needed, const std::mt19937_64& rng);
    void codeRow(int64_t i, float* q, float* k) const;

    SynthHead m_pattern;
    const Sequence* m_seq;
    int m_dim;
    int m_needed;             ///< pattern columns; the rest are filler
    double m_weight = 0;      ///< digit-code weight √A
    double m_sink = 0;        ///< sink key score
    double m_bandWeight = 0;  ///< local band amplitude c
    int64_t m_row = 0;
    std::mt19937_64 m_engine;                ///< q̂ (noise) or both (filler)
    std::normal_distribution<float> m_dist;  ///< noise (σ = d^-¼) or filler
    std::mt19937_64 m_kEngine;               ///< noise only: k̂, starting after q̂'s draws
    std::normal_distribution<float> m_kDist;
};

/// Fails with InvalidArgument, naming the pattern, when d is too small for it at this T.
Status checkHeadDim(SynthHead pattern, const Sequence& seq, int headDim);

/// Columns a pattern needs at sequence length T and vocabulary size V (for the d check).
int columnsNeeded(SynthHead pattern, int64_t tokens, int64_t vocabulary, int documents);

}  // namespace attnscope::synth
