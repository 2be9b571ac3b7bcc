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

#include <cmath>
#include <string>

namespace attnscope::synth {

namespace {

constexpr int kCodeBase = 8;
constexpr double kTwoPi = 6.283185307179586;
const double kCodeGap = 1.0 - std::cos(kTwoPi / kCodeBase);  ///< least dot-product loss of a wrong code
constexpr double kMarginNats = 8.0;   ///< designed score margin beyond log T: leaked mass < e^-8
constexpr double kSinkNats = 3.0;     ///< sink score beyond log T: p(sink) ≥ e³/(e³+1) ≈ 0.95
constexpr double kBandHalfPeriod = 32.0;  ///< first rotation frequency: cos falls to −1 at offset 32
constexpr double kFillerSigma = 0.2;  ///< small noise in unused columns (score std ≈ 0.04·√columns)

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

/// Writes the digit code of `value` (2·digits columns from `col`) times `weight`.
void writeCode(MatrixRM& m, int64_t row, int col, int64_t value, int digits, double weight) {
    for (int l = 0; l < digits; ++l) {
        const double angle = kTwoPi * double(value % kCodeBase) / kCodeBase;
        m(row, col + 2 * l) = float(weight * std::cos(angle));
        m(row, col + 2 * l + 1) = float(weight * std::sin(angle));
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

Result<HeadCodes> buildHead(SynthHead pattern, const Sequence& seq, int headDim, std::mt19937_64& rng) {
    const int64_t t = seq.tokens;
    int docCount = 1;
    for (int32_t d : seq.documents) docCount = std::max(docCount, int(d) + 1);
    const int needed = columnsNeeded(pattern, t, seq.vocabulary, docCount);
    if (needed > headDim)
        return Status(ErrorCode::InvalidArgument, std::string("synth: head ") + synthHeadName(pattern) + " needs " +
                                                      std::to_string(needed) + " of the head dim's columns at T=" +
                                                      std::to_string(t) + " but head dim is " + std::to_string(headDim));
    HeadCodes h{MatrixRM::Zero(t, headDim), MatrixRM::Zero(t, headDim)};
    const double amplitude = (logTokens(t) + kMarginNats) / kCodeGap;  // score A·D on a match
    const double w = std::sqrt(amplitude);
    const double sink = logTokens(t) + kSinkNats;
    switch (pattern) {
    case SynthHead::FirstTokenSink:
        h.q.col(0).setOnes();
        h.k(0, 0) = float(sink);
        break;
    case SynthHead::HiddenSink:
        // A first-token sink one nat weaker keeps the later sink "hidden" behind the usual one.
        h.q.col(0).setOnes();
        h.k(0, 0) = float(sink - 1.0);
        h.k(seq.hiddenSink, 0) = float(sink);
        break;
    case SynthHead::LocalBand: {
        // Score c·Σ_f cos θ_f (i − j): at offsets ≥ 32 it is at least 2c below the diagonal.
        const double c = std::sqrt((logTokens(t) + kMarginNats) / 2.0);
        for (int f = 0; f < needed / 2; ++f) {
            const double theta = M_PI / (kBandHalfPeriod * std::ldexp(1.0, f));
            for (int64_t i = 0; i < t; ++i) {
                const float cs = float(c * std::cos(theta * double(i))), sn = float(c * std::sin(theta * double(i)));
                h.q(i, 2 * f) = h.k(i, 2 * f) = cs;
                h.q(i, 2 * f + 1) = h.k(i, 2 * f + 1) = sn;
            }
        }
        break;
    }
    case SynthHead::PreviousToken: {
        const int digits = needed / 2;
        for (int64_t i = 0; i < t; ++i) {
            writeCode(h.q, i, 0, std::max<int64_t>(i - 1, 0), digits, w);
            writeCode(h.k, i, 0, i, digits, w);
        }
        break;
    }
    case SynthHead::Induction: {
        // Query i carries (tok i, tok i−1); key j carries (tok j−1, tok j−2): a full match is the
        // token after an earlier occurrence of the same bigram.
        const int digits = needed / 4;
        auto tok = [&](int64_t i) { return i >= 0 ? seq.tokenIds[size_t(i)] : seq.vocabulary; };
        for (int64_t i = 0; i < t; ++i) {
            writeCode(h.q, i, 0, tok(i), digits, w);
            writeCode(h.q, i, 2 * digits, tok(i - 1), digits, w);
            writeCode(h.k, i, 0, tok(i - 1), digits, w);
            writeCode(h.k, i, 2 * digits, tok(i - 2), digits, w);
        }
        break;
    }
    case SynthHead::Documents: {
        const int digits = needed / 2;
        for (int64_t i = 0; i < t; ++i) {
            writeCode(h.q, i, 0, seq.documents[size_t(i)], digits, w);
            writeCode(h.k, i, 0, seq.documents[size_t(i)], digits, w);
        }
        break;
    }
    case SynthHead::Noise: {
        // Unit-variance scores: q̂, k̂ entries with variance 1/√d each.
        std::normal_distribution<float> n(0.0f, float(std::pow(double(headDim), -0.25)));
        for (Eigen::Index i = 0; i < h.q.size(); ++i) h.q.data()[i] = n(rng);
        for (Eigen::Index i = 0; i < h.k.size(); ++i) h.k.data()[i] = n(rng);
        return h;
    }
    }
    std::normal_distribution<float> filler(0.0f, float(kFillerSigma));
    for (int64_t i = 0; i < t; ++i)
        for (int c = needed; c < headDim; ++c) {
            h.q(i, c) = filler(rng);
            h.k(i, c) = filler(rng);
        }
    return h;
}

}  // namespace attnscope::synth
