// Planted attention patterns built from exact codes, so each holds at any T up to 128k.
//
// Digit code: a value written in base 8, each digit as a point on the unit circle
// (cos 2πd/8, sin 2πd/8). Two codes' dot product is the digit count D when the values are equal
// and at most D − (1 − cos 2π/8) otherwise, so a weight A gives the match a margin of 0.29·A over
// every other key, however many there are.
// Rotation code: (cos θ_f·i, sin θ_f·i) over octave frequencies; dot products depend on i − j
// only and fall smoothly over the first ~10 offsets (a local band) while the octaves rule out
// aliasing up to twice the sequence length.
#include "synth_patterns.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace attnscope::synth {

namespace {

constexpr int kCodeBase = 8;
constexpr double kTwoPi = 6.283185307179586;
const double kCodeGap = 1.0 - std::cos(kTwoPi / kCodeBase);  ///< least dot-product loss of a wrong code
constexpr double kMarginNats = 8.0;                          ///< designed score margin beyond log T: leaked mass < e^-8
constexpr double kSinkNats = 3.0;         ///< sink score beyond log T: p(sink) ≥ e³/(e³+1) ≈ 0.95
constexpr double kBandHalfPeriod = 32.0;  ///< first rotation frequency: cos falls to −1 at offset 32
constexpr double kFillerSigma = 0.2;      ///< small noise in unused columns (score std ≈ 0.04·√columns)

int digitsFor(int64_t values) {
    int digits = 1;
    for (int64_t span = kCodeBase; span < values; span *= kCodeBase) ++digits;
    return digits;
}

int bandFrequencies(int64_t tokens) {
    int f = 1;
    while (kBandHalfPeriod * std::ldexp(1.0, f - 1) < 2.0 * double(tokens)) ++f;
    return f;
}

/// Writes the digit code of `value` (2·digits columns from `row`) times `weight`.
void writeCode(float* row, int64_t value, int digits, double weight) {
    for (int l = 0; l < digits; ++l) {
        const double angle = kTwoPi * double(value % kCodeBase) / kCodeBase;
        row[2 * l] = float(weight * std::cos(angle));
        row[2 * l + 1] = float(weight * std::sin(angle));
        value /= kCodeBase;
    }
}

double logTokens(int64_t tokens) { return std::log(double(std::max<int64_t>(tokens, 2))); }

}  // namespace

int columnsNeeded(SynthHead pattern, int64_t tokens, int64_t vocabulary, int documents) {
    switch (pattern) {
    case SynthHead::FirstTokenSink:
    case SynthHead::HiddenSink: return 1;
    case SynthHead::LocalBand: return 2 * bandFrequencies(tokens);
    case SynthHead::PreviousToken: return 2 * digitsFor(tokens);
    case SynthHead::Induction: return 4 * digitsFor(vocabulary + 1);
    case SynthHead::Documents: return 2 * digitsFor(std::max(documents, 2));
    case SynthHead::Noise: return 0;
    }
    return 0;
}

Status checkHeadDim(SynthHead pattern, const Sequence& seq, int headDim) {
    const int needed = columnsNeeded(pattern, seq.tokens, seq.vocabulary, seq.documentCount);
    if (needed > headDim)
        return Status(ErrorCode::InvalidArgument, std::string("synth: head ") + synthHeadName(pattern) + " needs " +
                                                      std::to_string(needed) +
                                                      " of the head dim's columns at T=" + std::to_string(seq.tokens) +
                                                      " but head dim is " + std::to_string(headDim));
    return Status::success();
}

Result<HeadCodeStream> HeadCodeStream::start(SynthHead pattern, const Sequence& seq, int headDim,
                                             const std::mt19937_64& rng) {
    if (Status s = checkHeadDim(pattern, seq, headDim); !s) return s;
    return HeadCodeStream(pattern, seq, headDim, columnsNeeded(pattern, seq.tokens, seq.vocabulary, seq.documentCount),
                          rng);
}

HeadCodeStream::HeadCodeStream(SynthHead pattern, const Sequence& seq, int headDim, int needed,
                               const std::mt19937_64& rng)
    : m_pattern(pattern), m_seq(&seq), m_dim(headDim), m_needed(needed), m_engine(rng) {
    const int64_t t = seq.tokens;
    const double amplitude = (logTokens(t) + kMarginNats) / kCodeGap;  // score A·D on a match
    m_weight = std::sqrt(amplitude);
    m_sink = logTokens(t) + kSinkNats;
    // Score c·Σ_f cos θ_f (i − j): at offsets ≥ 32 it is at least 2c below the diagonal.
    m_bandWeight = std::sqrt((logTokens(t) + kMarginNats) / 2.0);
    if (pattern == SynthHead::Noise) {
        // Unit-variance scores: q̂, k̂ entries with variance 1/√d each. k̂'s draws follow all of q̂'s.
        m_dist = std::normal_distribution<float>(0.0f, float(std::pow(double(headDim), -0.25)));
        m_kEngine = m_engine;
        m_kDist = m_dist;
        for (int64_t i = 0, n = t * headDim; i < n; ++i) (void)m_kDist(m_kEngine);
    } else {
        m_dist = std::normal_distribution<float>(0.0f, float(kFillerSigma));
    }
}

void HeadCodeStream::codeRow(int64_t i, float* q, float* k) const {
    const Sequence& seq = *m_seq;
    switch (m_pattern) {
    case SynthHead::FirstTokenSink:
        q[0] = 1.0f;
        if (i == 0) k[0] = float(m_sink);
        break;
    case SynthHead::HiddenSink:
        // A first-token sink one nat weaker keeps the later sink "hidden" behind the usual one.
        q[0] = 1.0f;
        if (i == 0) k[0] = float(m_sink - 1.0);
        if (i == seq.hiddenSink) k[0] = float(m_sink);
        break;
    case SynthHead::LocalBand:
        for (int f = 0; f < m_needed / 2; ++f) {
            const double theta = M_PI / (kBandHalfPeriod * std::ldexp(1.0, f));
            const float cs = float(m_bandWeight * std::cos(theta * double(i)));
            const float sn = float(m_bandWeight * std::sin(theta * double(i)));
            q[2 * f] = k[2 * f] = cs;
            q[2 * f + 1] = k[2 * f + 1] = sn;
        }
        break;
    case SynthHead::PreviousToken:
        writeCode(q, std::max<int64_t>(i - 1, 0), m_needed / 2, m_weight);
        writeCode(k, i, m_needed / 2, m_weight);
        break;
    case SynthHead::Induction: {
        // Query i carries (tok i, tok i−1); key j carries (tok j−1, tok j−2): a full match is the
        // token after an earlier occurrence of the same bigram.
        const int digits = m_needed / 4;
        auto tok = [&](int64_t j) { return j >= 0 ? seq.tokenIds[size_t(j)] : seq.vocabulary; };
        writeCode(q, tok(i), digits, m_weight);
        writeCode(q + 2 * digits, tok(i - 1), digits, m_weight);
        writeCode(k, tok(i - 1), digits, m_weight);
        writeCode(k + 2 * digits, tok(i - 2), digits, m_weight);
        break;
    }
    case SynthHead::Documents:
        writeCode(q, seq.documents[size_t(i)], m_needed / 2, m_weight);
        writeCode(k, seq.documents[size_t(i)], m_needed / 2, m_weight);
        break;
    case SynthHead::Noise: break;
    }
}

void HeadCodeStream::next(int64_t rows, float* q, float* k) {
    const int64_t n = rows * m_dim;
    if (m_pattern == SynthHead::Noise) {
        for (int64_t e = 0; e < n; ++e) q[e] = m_dist(m_engine);
        for (int64_t e = 0; e < n; ++e) k[e] = m_kDist(m_kEngine);
        m_row += rows;
        return;
    }
    std::fill(q, q + n, 0.0f);
    std::fill(k, k + n, 0.0f);
    for (int64_t r = 0; r < rows; ++r, ++m_row) {
        float* qRow = q + r * m_dim;
        float* kRow = k + r * m_dim;
        codeRow(m_row, qRow, kRow);
        for (int c = m_needed; c < m_dim; ++c) {
            qRow[c] = m_dist(m_engine);
            kRow[c] = m_dist(m_engine);
        }
    }
}

}  // namespace attnscope::synth
