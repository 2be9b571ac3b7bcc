#pragma once
// Float64 brute-force attention over the dense T×T matrix: the ground truth the tiled engine is
// checked against (small T only).
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attnscope/attention.h"

namespace attnscope::testing {

/// A fresh seed per run (random inputs differ every time); ATTNSCOPE_TEST_SEED=N replays the seed
/// a failure message printed.
inline uint64_t freshSeed() {
    if (const char* env = std::getenv("ATTNSCOPE_TEST_SEED")) return std::strtoull(env, nullptr, 10);
    return uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
}

/// Dense probabilities [Tq, Tk] (rows with no allowed key are all 0) and the row logsumexp.
struct BruteAttention {
    MatrixRMd p;
    std::vector<double> lse;
};

inline BruteAttention bruteAttention(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                     int64_t qOffset = 0) {
    const int64_t tq = q.rows(), tk = k.rows();
    const double ninf = -std::numeric_limits<double>::infinity();
    BruteAttention b;
    b.p = MatrixRMd::Zero(tq, tk);
    b.lse.assign(size_t(tq), ninf);
    const MatrixRMd qd = q.cast<double>(), kd = k.cast<double>();
    for (int64_t i = 0; i < tq; ++i) {
        const int64_t pos = i + qOffset;
        std::vector<double> s(size_t(tk), ninf);
        double mx = ninf;
        for (int64_t j = 0; j < tk; ++j) {
            if (!spec.mask.allows(pos, j)) continue;
            double x = double(spec.scale) * qd.row(i).dot(kd.row(j));
            if (spec.softcap > 0) x = spec.softcap * std::tanh(x / spec.softcap);
            x += double(spec.alibiSlope) * double(j - pos) + double(spec.relativeBias) * double(pos - j);
            s[size_t(j)] = x;
            mx = std::max(mx, x);
        }
        // A learned sink joins the denominator only: L' = logaddexp(L, sink); no key, L' = sink.
        if (mx == ninf) {
            if (spec.hasSink()) b.lse[size_t(i)] = spec.sinkLogit;
            continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < tk; ++j) sum += std::exp(s[size_t(j)] - mx);
        if (spec.hasSink()) sum += std::exp(double(spec.sinkLogit) - mx);
        b.lse[size_t(i)] = mx + std::log(sum);
        for (int64_t j = 0; j < tk; ++j) b.p(i, j) = std::exp(s[size_t(j)] - b.lse[size_t(i)]);
    }
    return b;
}

/// Pooled float64 reference of a map (attentionMap's cells: floor partition of the rectangle).
struct BruteMap {
    MatrixRMd mean, max, allowed;
};

inline BruteMap bruteMap(const BruteAttention& b, const AttentionSpec& spec, MapRect r, int width, int height) {
    const int64_t hq = r.q1 - r.q0, hk = r.k1 - r.k0;
    width = int(std::min<int64_t>(width, hk));
    height = int(std::min<int64_t>(height, hq));
    BruteMap m{MatrixRMd::Zero(height, width), MatrixRMd::Zero(height, width), MatrixRMd::Zero(height, width)};
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const int64_t ya = r.q0 + y * hq / height, yb = r.q0 + (y + 1) * hq / height;
            const int64_t xa = r.k0 + x * hk / width, xb = r.k0 + (x + 1) * hk / width;
            double sum = 0, mx = 0, allowed = 0;
            for (int64_t i = ya; i < yb; ++i)
                for (int64_t j = xa; j < xb; ++j) {
                    sum += b.p(i, j);
                    mx = std::max(mx, b.p(i, j));
                    allowed += spec.mask.allows(i, j) ? 1 : 0;
                }
            const double area = double((yb - ya) * (xb - xa));
            m.mean(y, x) = sum / area;
            m.max(y, x) = mx;
            m.allowed(y, x) = allowed / area;
        }
    return m;
}

inline MatrixRMd asMatrix(const std::vector<float>& v, int h, int w) {
    MatrixRMd m(h, w);
    for (int i = 0; i < h * w; ++i) m.data()[i] = v[size_t(i)];
    return m;
}

/// Standard normal matrix times `sigma`.
inline MatrixRM randomMatrix(std::mt19937_64& rng, int64_t rows, int64_t cols, float sigma = 1.0f) {
    std::normal_distribution<float> n(0.0f, sigma);
    MatrixRM m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = n(rng);
    return m;
}

/// Relative Frobenius error ‖a − b‖ / ‖b‖ (0 when both are 0).
inline double relativeError(const MatrixRMd& a, const MatrixRMd& b) {
    const double nb = b.norm(), nd = (a - b).norm();
    return nb > 0 ? nd / nb : nd;
}

/// Relative error of computed (pooled) probabilities against the float64 reference: the
/// Frobenius ‖(a − b)/w‖ / ‖b‖ with w = max(1, |ln b| / kExponentNats). Why w: float32 evaluates
/// p = exp(s − L) from an exponent x = s − L that carries |x|·2⁻²⁴ relative error per rounding,
/// so a cell with p = e⁻²⁴ cannot be closer than ~3e-6; each cell is held to 1e-6 scaled by how far
/// its exponent is beyond 8 nats (p < 3e-4), which is what float32 arithmetic allows. Reference
/// values below kBelowFloat (100× float's least normal: results there flush to 0) count as 0, and
/// a cell's difference counts only beyond kBelowFloat: a pooled cell (a mean over many p_ij) near
/// float's floor loses its terms below the least normal, up to ~1e-38 each (seen on ALiBi rects
/// far from the diagonal, where every cell is ~1e-37 and the float32 means differ by 1%).
constexpr double kExponentNats = 8.0;
constexpr double kBelowFloat = 1e-36;
inline double probabilityError(const MatrixRMd& a, const MatrixRMd& b) {
    double num = 0, den = 0;
    for (Eigen::Index i = 0; i < b.size(); ++i) {
        const double x = a.data()[i], y = b.data()[i] < kBelowFloat ? 0.0 : b.data()[i];
        const double w = y > 0 ? std::max(1.0, std::abs(std::log(y)) / kExponentNats) : 1.0;
        const double diff = std::max(0.0, std::abs(x - y) - kBelowFloat);
        num += diff * diff / (w * w);
        den += y * y;
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

/// A spec exercising one mask or score mod, with random parameters for sequence length T.
/// Kinds: none, causal, window, window-bidir, prefix, documents, dilation, excluded, blocks,
/// softcap, alibi, relbias, combo, sink (a learned sink logit, GPT-OSS), sink-window (sink,
/// sliding window and softcap), sink-bidir (sink without a causal mask).
inline AttentionSpec makeSpec(const std::string& kind, int64_t T, int d, std::mt19937_64& rng) {
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(d));
    MaskSpec& m = spec.mask;
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    if (kind != "none" && kind != "window-bidir" && kind != "sink-bidir") m.causal = true;
    if (kind == "window" || kind == "window-bidir" || kind == "sink-window")
        m.window = uniform(1, std::max<int64_t>(1, T / 3));
    if (kind.rfind("sink", 0) == 0)  // logits around the scores' range: shares from ~0 to ~1
        spec.sinkLogit = std::uniform_real_distribution<float>(-2.0f, 4.0f)(rng);
    if (kind == "prefix") m.prefix = uniform(0, T);
    if (kind == "documents" || kind == "combo") {
        int32_t doc = 0;
        for (int64_t i = 0; i < T; ++i) {
            if (i > 0 && uniform(0, 40) == 0) ++doc;
            m.documents.push_back(doc);
        }
    }
    if (kind == "dilation") {
        m.dilation = uniform(2, 4);
        m.window = uniform(1, std::max<int64_t>(1, T / 2)) * m.dilation;
    }
    if (kind == "excluded" || kind == "combo") {
        for (int64_t key = 0; key < T; ++key)
            if (key == 0 || uniform(0, 9) == 0) m.excludedKeys.push_back(key);
    }
    if (kind == "blocks" || kind == "combo") {
        m.blockSize = kind == "combo" ? 16 : 32;
        const int64_t nb = (T + m.blockSize - 1) / m.blockSize;
        auto blocks = std::make_shared<std::vector<uint8_t>>(size_t(nb * nb));
        for (auto& b : *blocks) b = uniform(0, 2) != 0;
        for (int64_t i = 0; i < nb; ++i) (*blocks)[size_t(i * nb + i)] = 1;  // diagonal kept
        m.blocks = blocks;
        m.blockCols = nb;
    }
    if (kind == "softcap" || kind == "combo" || kind == "sink-window") spec.softcap = 2.0f;
    if (kind == "alibi" || kind == "combo") spec.alibiSlope = alibiSlope(int(uniform(0, 7)), 8);
    if (kind == "relbias") spec.relativeBias = 0.01f;
    return spec;
}

inline const std::vector<std::string>& specKinds() {
    static const std::vector<std::string> kinds = {
        "none",   "causal",  "window", "window-bidir", "prefix", "documents", "dilation",    "excluded",
        "blocks", "softcap", "alibi",  "relbias",      "combo",  "sink",      "sink-window", "sink-bidir"};
    return kinds;
}

}  // namespace attnscope::testing
