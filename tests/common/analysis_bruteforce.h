#pragma once
// Float64 brute force over the dense T×T map for the analysis tests (tests only: T is small).
// Definitions mirror shared/docs/analysis-metrics.md literally, without the engine's tiling.
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attnscope/analysis.h"

namespace attnscope::test {

/// Dense A (row-major T×T, double) with rows softmaxed over the allowed keys.
struct Dense {
    int64_t T = 0;
    std::vector<double> A;
    std::vector<uint8_t> allowed;
    std::vector<double> sinkShare;  ///< per row: a learned sink's share exp(sink − L'), 0 without one
    double at(int64_t i, int64_t j) const { return A[size_t(i * T + j)]; }
    bool ok(int64_t i, int64_t j) const { return allowed[size_t(i * T + j)] != 0; }
    int64_t rowAllowed(int64_t i) const {
        int64_t n = 0;
        for (int64_t j = 0; j < T; ++j) n += ok(i, j);
        return n;
    }
};

inline Dense denseAttention(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec) {
    Dense d;
    d.T = q.rows();
    const int64_t T = d.T;
    d.A.assign(size_t(T * T), 0.0);
    d.allowed.assign(size_t(T * T), 0);
    d.sinkShare.assign(size_t(T), 0.0);
    for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(size_t(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
            if (!spec.mask.allows(i, j)) continue;
            d.allowed[size_t(i * T + j)] = 1;
            double dot = 0;
            for (int64_t x = 0; x < q.cols(); ++x) dot += double(q(i, x)) * double(k(j, x));
            s[size_t(j)] = spec.score(float(dot), i, j);
            mx = std::max(mx, s[size_t(j)]);
        }
        if (!std::isfinite(mx)) continue;
        double z = 0;
        for (int64_t j = 0; j < T; ++j) z += std::isfinite(s[size_t(j)]) ? std::exp(s[size_t(j)] - mx) : 0.0;
        // A learned sink is one more term of the denominator, with no value and no column.
        if (spec.hasSink()) {
            const double sink = std::exp(double(spec.sinkLogit) - mx);
            z += sink;
            d.sinkShare[size_t(i)] = sink / z;
        }
        for (int64_t j = 0; j < T; ++j)
            if (std::isfinite(s[size_t(j)])) d.A[size_t(i * T + j)] = std::exp(s[size_t(j)] - mx) / z;
    }
    return d;
}

/// Rows of A·V, with A masked to `keep` and renormalised (zero rows stay zero).
template <typename Keep>
std::vector<double> maskedOutput(const Dense& d, const MatrixRM& v, Keep keep) {
    const int64_t T = d.T, dv = v.cols();
    std::vector<double> out(size_t(T * dv), 0.0);
    for (int64_t i = 0; i < T; ++i) {
        double m = 0;
        for (int64_t j = 0; j < T; ++j)
            if (keep(i, j)) m += d.at(i, j);
        if (m <= 0) continue;
        for (int64_t j = 0; j < T; ++j) {
            if (!keep(i, j) || d.at(i, j) == 0) continue;
            for (int64_t x = 0; x < dv; ++x) out[size_t(i * dv + x)] += d.at(i, j) / m * double(v(j, x));
        }
    }
    return out;
}

inline double relativeError(const std::vector<double>& a, const std::vector<double>& ref) {
    double num = 0, den = 0;
    for (size_t x = 0; x < a.size(); ++x) num += (a[x] - ref[x]) * (a[x] - ref[x]), den += ref[x] * ref[x];
    return den > 0 ? std::sqrt(num / den) : 0.0;
}

inline MatrixRM randomMatrix(int64_t rows, int64_t cols, std::mt19937_64& rng, float sigma) {
    std::normal_distribution<float> n(0.0f, sigma);
    MatrixRM m(rows, cols);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) m(i, j) = n(rng);
    return m;
}

/// |actual - expected| ≤ tol · max(1, |expected|).
inline bool close(double actual, double expected, double tol) {
    return std::abs(actual - expected) <= tol * std::max(1.0, std::abs(expected));
}

}  // namespace attnscope::test

namespace attnscope::test {

/// Mask families the analysis tests sweep over.
enum class MaskCase { Causal, Window, Full, Documents, Excluded, FullWindow };

struct HeadCase {
    MatrixRM q, k, v;
    AttentionSpec spec;
    HeadContext context;
};

/// Random head of T tokens: small vocabulary (so duplicates and induction entries exist),
/// three contiguous documents, and the chosen mask.
inline HeadCase makeHeadCase(int64_t T, MaskCase mask, uint64_t seed, int64_t d = 16) {
    std::mt19937_64 rng(seed);
    HeadCase c;
    c.q = randomMatrix(T, d, rng, 1.5f);
    c.k = randomMatrix(T, d, rng, 1.5f);
    c.v = randomMatrix(T, d, rng, 1.0f);
    c.spec.scale = 1.0f / std::sqrt(float(d));
    std::uniform_int_distribution<int64_t> tok(0, 9);
    for (int64_t i = 0; i < T; ++i) c.context.tokenIds.push_back(tok(rng));
    for (int64_t i = 0; i < T; ++i) c.context.documents.push_back(int32_t(3 * i / T));
    c.spec.mask.causal = mask != MaskCase::Full && mask != MaskCase::FullWindow;
    if (mask == MaskCase::Window || mask == MaskCase::FullWindow) c.spec.mask.window = 24;
    if (mask == MaskCase::Documents) c.spec.mask.documents = c.context.documents;
    if (mask == MaskCase::Excluded) c.spec.mask.excludedKeys = {0, 5, T / 2};
    return c;
}

/// Small candidate-mask and block settings so that short test sequences have several blocks.
inline HeadAnalysisOptions smallOptions() {
    HeadAnalysisOptions o;
    o.blockSizes = {16, 64};
    o.masks.window = 16;
    o.masks.sinkWindow = 12;
    o.masks.sinkTokens = 3;
    o.masks.estimateQueries = 16;
    o.masks.verticalCount = 12;
    o.masks.slashCount = 10;
    o.masks.forcedVertical = 3;
    o.masks.forcedSlash = 4;
    o.masks.topKBlocks = 3;
    o.masks.topKBlockSize = 16;
    o.sinks.hiddenMinQueries = 4;
    o.roles.localWidth = 4;
    o.roles.profileTop = 5;
    return o;
}

}  // namespace attnscope::test

#include "attnscope/trace.h"

namespace attnscope::test {

/// Writes a random F32 trace (GQA when kvHeads < heads) and returns its path's status.
inline Status writeRandomTrace(const std::string& path, int64_t T, int layers, int heads, int kvHeads, int d,
                               uint64_t seed, bool causal = true) {
    std::mt19937_64 rng(seed);
    TraceMetadata meta;
    meta.model = "random";
    meta.source = "tst_analysis";
    std::uniform_int_distribution<int64_t> tok(0, 9);
    for (int64_t i = 0; i < T; ++i) {
        meta.tokenIds.push_back(tok(rng));
        meta.tokens.push_back("t" + std::to_string(meta.tokenIds.back()));
    }
    for (int l = 0; l < layers; ++l) {
        LayerConfig c;
        c.heads = heads;
        c.kvHeads = kvHeads;
        c.headDim = d;
        c.scale = 1.0 / std::sqrt(double(d));
        c.causal = causal;
        meta.layers.push_back(c);
    }
    TraceWriter w(meta);
    for (int l = 0; l < layers; ++l) {
        std::vector<MatrixRM> q, k, v;
        for (int h = 0; h < heads; ++h) q.push_back(randomMatrix(T, d, rng, 1.5f));
        for (int h = 0; h < kvHeads; ++h)
            k.push_back(randomMatrix(T, d, rng, 1.5f)), v.push_back(randomMatrix(T, d, rng, 1.0f));
        w.addLayer(l, DType::F32, q, k, v);
    }
    return w.write(path);
}

}  // namespace attnscope::test
