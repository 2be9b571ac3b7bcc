// Head similarity (metrics: "Head similarity", Clark et al. head_distances): Jensen–Shannon
// divergence between the smoothed rows p' = 0.999 p + 0.001/T of every pair of heads, then
// average-linkage clustering for the grid view's head order.
//
// Both heads' probabilities are needed at once, so rows are processed in slabs: for one slab
// of rows and one chunk of keys every head's tiles are written into a slab buffer (O(H·slab·chunk)
// memory, never T×T), then each row adds its JS terms per pair.
#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis_internal.h"
#include "attnscope/parallel.h"

namespace attnscope {

namespace {

constexpr double kSmoothKeep = 0.999;  // Clark et al.: p' = 0.999 p + 0.001 / T
constexpr double kSmoothSpread = 0.001;
constexpr int64_t kKeyChunk = 4096;  // keys per slab buffer (bounds memory at long T)

/// Σ x ln x of a row (x > 0 after smoothing).
inline double xlogx(const Eigen::ArrayXf& x) { return double((x * x.log()).sum()); }

}  // namespace

std::vector<int> averageLinkageOrder(const std::vector<double>& distance, int n,
                                     std::vector<HeadSimilarity::Merge>* merges) {
    // Clusters as member lists; UPGMA distance = mean pairwise distance of members.
    struct Cluster {
        int id;
        std::vector<int> leaves;  ///< in dendrogram order
    };
    std::vector<Cluster> active;
    for (int i = 0; i < n; ++i) active.push_back({i, {i}});
    auto avg = [&](const Cluster& a, const Cluster& b) {
        double s = 0;
        for (int x : a.leaves)
            for (int y : b.leaves) s += distance[size_t(x * n + y)];
        return s / double(a.leaves.size() * b.leaves.size());
    };
    int next = n;
    while (active.size() > 1) {
        size_t ba = 0, bb = 1;
        double best = std::numeric_limits<double>::infinity();
        for (size_t a = 0; a < active.size(); ++a)
            for (size_t b = a + 1; b < active.size(); ++b) {
                const double d = avg(active[a], active[b]);
                if (d < best) best = d, ba = a, bb = b;  // strict: ties keep the earliest pair
            }
        Cluster merged{next++, active[ba].leaves};
        merged.leaves.insert(merged.leaves.end(), active[bb].leaves.begin(), active[bb].leaves.end());
        if (merges) merges->push_back({active[ba].id, active[bb].id, best});
        active.erase(active.begin() + long(bb));
        active[ba] = std::move(merged);
    }
    return active.empty() ? std::vector<int>{} : active[0].leaves;
}

Result<HeadSimilarity> headSimilarity(std::vector<HeadInput> heads, const ProgressFn& progress) {
    const int H = int(heads.size());
    if (H == 0) return Status(ErrorCode::InvalidArgument, "headSimilarity: no heads given, expected at least one");
    for (int h = 0; h < H; ++h)
        if (!heads[size_t(h)].q || !heads[size_t(h)].k)
            return Status(ErrorCode::InvalidArgument, "headSimilarity: head " + std::to_string(h) + " has no q/k");
    const int64_t T = heads[0].q->rows();
    for (int h = 0; h < H; ++h)
        if (heads[size_t(h)].q->rows() != T || heads[size_t(h)].k->rows() != T)
            return Status(ErrorCode::Shape, "headSimilarity: head " + std::to_string(h) + " has " +
                                                std::to_string(heads[size_t(h)].q->rows()) + " tokens, expected " +
                                                std::to_string(T) + " like head 0");
    // Pass 1 where the caller has no lse.
    for (int h = 0; h < H; ++h) {
        HeadInput& in = heads[size_t(h)];
        if (int64_t(in.lse.size()) == T) continue;
        auto l =
            rowLogSumExp(*in.q, *in.k, in.spec, 0, T, detail::subProgress(progress, 0.3 * h / H, 0.3 * (h + 1) / H));
        if (!l) return l.status();
        in.lse = std::move(*l);
    }
    // Keys beyond the diagonal hold no mass in any causal head (so contribute 0 to every JS).
    bool allCausal = true;
    int64_t prefix = 0;
    for (const auto& in : heads)
        allCausal = allCausal && in.spec.mask.causal, prefix = std::max(prefix, in.spec.mask.prefix);
    auto rowEnd = [&](int64_t i) { return allCausal ? std::max(i + 1, prefix) : T; };

    const int workers = workerCount();
    const TileOptions tiles;
    const int64_t slab = tiles.tileQ * workers, chunk = std::min(T, kKeyChunk);
    std::vector<MatrixRM> buf(static_cast<size_t>(H));
    std::vector<std::vector<double>> acc(size_t(workers), std::vector<double>(size_t(H * H), 0.0));
    const float smoothAdd = float(kSmoothSpread / double(T));
    const int64_t slabs = (T + slab - 1) / slab;
    for (int64_t s = 0; s < slabs; ++s) {
        const int64_t s0 = s * slab, s1 = std::min(T, s0 + slab), rows = s1 - s0;
        const int64_t keyEnd = rowEnd(s1 - 1);
        for (int64_t k0 = 0; k0 < keyEnd; k0 += chunk) {
            const int64_t k1 = std::min(keyEnd, k0 + chunk);
            for (int h = 0; h < H; ++h) {
                const HeadInput& in = heads[size_t(h)];
                MatrixRM& b = buf[size_t(h)];
                b.setZero(rows, k1 - k0);
                const std::vector<float> lse(in.lse.begin() + s0, in.lse.begin() + s1);
                auto copy = [&](int, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
                    b.block(qStart - s0, kStart - k0, P.rows(), P.cols()) = P;
                };
                if (Status st = forEachProbabilityTile(*in.q, *in.k, in.spec, lse, s0, s1, k0, k1, copy); !st.ok())
                    return st;
            }
            parallelFor(rows, [&](int64_t a, int w) {
                const int64_t i = s0 + a, cols = std::min(k1, rowEnd(i)) - k0;
                if (cols <= 0) return;
                std::vector<Eigen::ArrayXf> x(static_cast<size_t>(H));
                std::vector<double> self(static_cast<size_t>(H));
                for (int h = 0; h < H; ++h) {
                    x[size_t(h)] =
                        buf[size_t(h)].row(a).head(cols).transpose().array() * float(kSmoothKeep) + smoothAdd;
                    self[size_t(h)] = xlogx(x[size_t(h)]);
                }
                auto& out = acc[size_t(w)];
                for (int h = 0; h < H; ++h)
                    for (int g = h + 1; g < H; ++g) {
                        const Eigen::ArrayXf m = 0.5f * (x[size_t(h)] + x[size_t(g)]);
                        // JS = ½ Σ p' ln p' + ½ Σ q' ln q' − Σ m ln m.
                        out[size_t(h * H + g)] += 0.5 * (self[size_t(h)] + self[size_t(g)]) - xlogx(m);
                    }
            });
        }
        if (progress && !progress(0.3 + 0.7 * double(s + 1) / double(slabs), "head similarity"))
            return detail::cancelledStatus("headSimilarity");
    }
    HeadSimilarity out;
    out.heads = H;
    out.divergence.assign(size_t(H * H), 0.0);
    out.distance.assign(size_t(H * H), 0.0);
    out.similarity.assign(size_t(H * H), 1.0);
    for (int h = 0; h < H; ++h)
        for (int g = h + 1; g < H; ++g) {
            double js = 0;
            for (int w = 0; w < workers; ++w) js += acc[size_t(w)][size_t(h * H + g)];
            js = std::clamp(js / double(T), 0.0, std::log(2.0));  // float rounding can dip below 0
            const double dist = std::sqrt(js / std::log(2.0));
            for (auto [x, y] : {std::pair{h, g}, std::pair{g, h}}) {
                out.divergence[size_t(x * H + y)] = js;
                out.distance[size_t(x * H + y)] = dist;
                out.similarity[size_t(x * H + y)] = 1.0 - dist;
            }
        }
    out.order = averageLinkageOrder(out.distance, H, &out.merges);
    return out;
}

}  // namespace attnscope
