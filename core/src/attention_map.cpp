// Pass 2: probability tiles for callers, the pooled multiscale map and sink columns.
#include <cmath>
#include <string>

#include "attention_kernels.h"
#include "attnscope/parallel.h"

namespace attnscope {

using namespace detail;

namespace {

Status checkRect(const char* what, const MatrixRM& q, const MatrixRM& k, int64_t q0, int64_t q1, int64_t k0,
                 int64_t k1) {
    if (q0 < 0 || q1 <= q0 || q1 > q.rows() || k0 < 0 || k1 <= k0 || k1 > k.rows())
        return {ErrorCode::InvalidArgument, std::string(what) + ": rect queries [" + std::to_string(q0) + "," +
                                                std::to_string(q1) + ") x keys [" + std::to_string(k0) + "," +
                                                std::to_string(k1) + ") must be non-empty and inside [0," +
                                                std::to_string(q.rows()) + ") x [0," + std::to_string(k.rows()) + ")"};
    return {};
}

Status cancelled(const char* what) { return {ErrorCode::Cancelled, std::string(what) + ": cancelled"}; }

/// Start of each of `cells` cells over `span` items beginning at `origin` (cells + 1 entries),
/// and the cell of each item.
void cellBounds(int64_t origin, int64_t span, int cells, std::vector<int64_t>& start, std::vector<int32_t>& cellOf) {
    start.resize(size_t(cells) + 1);
    for (int c = 0; c <= cells; ++c) start[size_t(c)] = origin + static_cast<int64_t>(c) * span / cells;
    cellOf.resize(size_t(span));
    for (int c = 0; c < cells; ++c)
        for (int64_t i = start[size_t(c)]; i < start[size_t(c) + 1]; ++i) cellOf[size_t(i - origin)] = c;
}

/// One worker's pooled sums. Sums and allowed counts in double: a cell may gather 10⁹ terms.
struct MapAccumulator {
    std::vector<double> sum, allowed;
    std::vector<float> max;
    std::vector<float> colSum, colMax;
};

}  // namespace

Status forEachProbabilityTile(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                              const std::vector<float>& lse, int64_t q0, int64_t q1, int64_t k0, int64_t k1,
                              const ProbabilityTileFn& fn, const ProgressFn& progress, const TileOptions& options) {
    constexpr const char* kWhat = "forEachProbabilityTile";
    if (Status s = validateInputs(kWhat, q, k, spec, 0); !s) return s;
    if (Status s = checkRect(kWhat, q, k, q0, q1, k0, k1); !s) return s;
    if (static_cast<int64_t>(lse.size()) != q1 - q0)
        return {ErrorCode::Shape, std::string(kWhat) + ": lse has " + std::to_string(lse.size()) +
                                      " rows but the rect has " + std::to_string(q1 - q0)};
    if (options.tileQ <= 0 || options.tileK <= 0)
        return {ErrorCode::InvalidArgument, std::string(kWhat) + ": tile sizes must be positive"};
    const MaskPlan plan(spec);
    std::vector<ScoreTile> scratch(static_cast<size_t>(workerCount()));
    const int64_t items = (q1 - q0 + options.tileQ - 1) / options.tileQ;
    ItemProgress prog(progress, "probabilities", items);
    parallelFor(items, [&](int64_t item, int worker) {
        if (prog.cancelled()) return;
        ScoreTile& w = scratch[size_t(worker)];
        const int64_t row0 = q0 + item * options.tileQ, rows = std::min(options.tileQ, q1 - row0);
        w.loadQueries(q, spec.scale, row0, rows);
        for (int64_t ka = k0; ka < k1; ka += options.tileK) {
            const int64_t cols = std::min(options.tileK, k1 - ka);
            TileClass cls = plan.classify(row0, row0 + rows, ka, ka + cols);
            if (cls == TileClass::Empty && options.skipEmptyTiles) continue;
            if (cls == TileClass::Empty) cls = TileClass::Partial;
            w.compute(k, plan, cls, row0, rows, ka, cols);
            for (int64_t r = 0; r < rows; ++r) {
                const float l = lse[size_t(row0 + r - q0)];
                if (l == kNegInf)
                    std::fill(w.row(r), w.row(r) + cols, 0.0f);
                else
                    expInPlace(w.row(r), cols, l);
            }
            fn(worker, row0, ka, w.s.topLeftCorner(rows, cols));
        }
        prog.itemDone();
    });
    if (prog.cancelled()) return cancelled(kWhat);
    return {};
}

Result<AttentionMap> attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect,
                                  int width, int height, const ProgressFn& progress, const std::vector<float>* lse) {
    constexpr const char* kWhat = "attentionMap";
    if (Status s = validateInputs(kWhat, q, k, spec, 0); !s) return s;
    if (Status s = checkRect(kWhat, q, k, rect.q0, rect.q1, rect.k0, rect.k1); !s) return s;
    if (width < 1 || height < 1)
        return Status(ErrorCode::InvalidArgument, std::string(kWhat) + ": size " + std::to_string(width) + "x" +
                                                      std::to_string(height) + " (expected at least 1x1)");
    if (lse && static_cast<int64_t>(lse->size()) != q.rows())
        return Status(ErrorCode::Shape, std::string(kWhat) + ": lse has " + std::to_string(lse->size()) +
                                            " rows but q has " + std::to_string(q.rows()));
    const int64_t hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    AttentionMap map;
    map.rect = rect;
    map.width = static_cast<int>(std::min<int64_t>(width, hk));
    map.height = static_cast<int>(std::min<int64_t>(height, hq));
    const size_t cells = size_t(map.width) * size_t(map.height);

    // Pass 1: row logsumexp of the rect's rows (unless the caller has it).
    std::vector<float> ownLse;
    const float* rowLse = nullptr;
    const bool needPass1 = lse == nullptr;
    if (needPass1) {
        ownLse.assign(size_t(hq), kNegInf);
        const MaskPlan plan(spec);
        std::vector<ScoreTile> scratch(static_cast<size_t>(workerCount()));
        const int64_t items = (hq + kTileQ - 1) / kTileQ;
        ItemProgress prog(progress, "map: logsumexp", items, 0.0, 0.5);
        parallelFor(items, [&](int64_t item, int worker) {
            if (prog.cancelled()) return;
            const int64_t row0 = rect.q0 + item * kTileQ, rows = std::min(kTileQ, rect.q1 - row0);
            tileLogSumExp(scratch[size_t(worker)], q, k, spec, plan, row0, rows, 0, true,
                          ownLse.data() + (row0 - rect.q0));
            prog.itemDone();
        });
        if (prog.cancelled()) return cancelled(kWhat);
        rowLse = ownLse.data() - rect.q0;  // indexed by absolute row
    } else {
        rowLse = lse->data();
    }

    // Pass 2: probabilities pooled per cell: rows of one cell are summed column-wise first
    // (vertical adds), then each cell's columns are reduced once per row group.
    std::vector<int64_t> rowStart, colStart;
    std::vector<int32_t> rowCell, colCell;
    cellBounds(rect.q0, hq, map.height, rowStart, rowCell);
    cellBounds(rect.k0, hk, map.width, colStart, colCell);
    const MaskPlan plan(spec);
    const int workers = workerCount();
    std::vector<ScoreTile> scratch(static_cast<size_t>(workers));
    std::vector<MapAccumulator> accs(static_cast<size_t>(workers));
    const int64_t items = (hq + kTileQ - 1) / kTileQ;
    ItemProgress prog(progress, "map", items, needPass1 ? 0.5 : 0.0, 1.0);
    parallelFor(items, [&](int64_t item, int worker) {
        if (prog.cancelled()) return;
        ScoreTile& w = scratch[size_t(worker)];
        MapAccumulator& a = accs[size_t(worker)];
        if (a.sum.empty()) {
            a.sum.assign(cells, 0.0);
            a.allowed.assign(cells, 0.0);
            a.max.assign(cells, 0.0f);
            a.colSum.resize(size_t(kTileK));
            a.colMax.resize(size_t(kTileK));
        }
        const int64_t row0 = rect.q0 + item * kTileQ, rows = std::min(kTileQ, rect.q1 - row0);
        w.loadQueries(q, spec.scale, row0, rows);
        for (int64_t ka = rect.k0; ka < rect.k1; ka += kTileK) {
            const int64_t cols = std::min(kTileK, rect.k1 - ka);
            const TileClass cls = plan.classify(row0, row0 + rows, ka, ka + cols);
            if (cls == TileClass::Empty) continue;  // all zero, nothing allowed
            w.compute(k, plan, cls, row0, rows, ka, cols);
            for (int64_t r = 0; r < rows;) {
                const int32_t y = rowCell[size_t(row0 + r - rect.q0)];
                const int64_t rEnd = std::min(rows, rowStart[size_t(y) + 1] - row0);
                std::fill(a.colSum.begin(), a.colSum.begin() + cols, 0.0f);
                std::fill(a.colMax.begin(), a.colMax.begin() + cols, 0.0f);
                for (int64_t rr = r; rr < rEnd; ++rr) {
                    const float l = rowLse[row0 + rr];
                    if (l != kNegInf) expAccumulate(w.row(rr), cols, l, a.colSum.data(), a.colMax.data());
                }
                for (int64_t c = 0; c < cols;) {
                    const int32_t x = colCell[size_t(ka + c - rect.k0)];
                    const int64_t cEnd = std::min(cols, colStart[size_t(x) + 1] - ka);
                    const size_t cell = size_t(y) * size_t(map.width) + size_t(x);
                    float sum = 0, mx = a.max[cell];
                    for (int64_t j = c; j < cEnd; ++j) {
                        sum += a.colSum[size_t(j)];
                        mx = std::max(mx, a.colMax[size_t(j)]);
                    }
                    a.sum[cell] += sum;
                    a.max[cell] = mx;
                    if (cls == TileClass::Full) {
                        a.allowed[cell] += static_cast<double>((rEnd - r) * (cEnd - c));
                    } else {
                        int64_t n = 0;
                        for (int64_t rr = r; rr < rEnd; ++rr) {
                            const float* s = w.row(rr);
                            for (int64_t j = c; j < cEnd; ++j) n += s[j] != kNegInf;
                        }
                        a.allowed[cell] += static_cast<double>(n);
                    }
                    c = cEnd;
                }
                r = rEnd;
            }
        }
        prog.itemDone();
    });
    if (prog.cancelled()) return cancelled(kWhat);

    map.mean.assign(cells, 0.0f);
    map.max.assign(cells, 0.0f);
    map.allowed.assign(cells, 0.0f);
    for (int y = 0; y < map.height; ++y)
        for (int x = 0; x < map.width; ++x) {
            const size_t cell = size_t(y) * size_t(map.width) + size_t(x);
            double sum = 0, allowed = 0;
            float mx = 0;
            for (const auto& a : accs) {
                if (a.sum.empty()) continue;
                sum += a.sum[cell];
                allowed += a.allowed[cell];
                mx = std::max(mx, a.max[cell]);
            }
            const double area = static_cast<double>(rowStart[size_t(y) + 1] - rowStart[size_t(y)]) *
                                static_cast<double>(colStart[size_t(x) + 1] - colStart[size_t(x)]);
            map.mean[cell] = static_cast<float>(sum / area);
            map.max[cell] = mx;
            map.allowed[cell] = static_cast<float>(allowed / area);
        }
    return map;
}

Result<std::vector<int64_t>> sinkColumns(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                         double threshold, const ProgressFn& progress) {
    const int64_t tq = q.rows(), tk = k.rows();
    if (tq == 0 || tk == 0) return std::vector<int64_t>{};
    auto lse = rowLogSumExp(q, k, spec, 0, tq, progress);
    if (!lse) return lse.status();
    std::vector<std::vector<double>> colSums(static_cast<size_t>(workerCount()));
    Status s = forEachProbabilityTile(
        q, k, spec, *lse, 0, tq, 0, tk,
        [&](int worker, int64_t, int64_t kStart, const Eigen::Ref<const MatrixRM>& p) {
            auto& sums = colSums[size_t(worker)];
            if (sums.empty()) sums.assign(size_t(tk), 0.0);
            const Eigen::RowVectorXf col = p.colwise().sum();
            for (Eigen::Index c = 0; c < col.size(); ++c) sums[size_t(kStart + c)] += col[c];
        },
        progress);
    if (!s) return s;
    std::vector<int64_t> sinks;
    for (int64_t key = 0; key < tk; ++key) {
        double total = 0;
        for (const auto& sums : colSums)
            if (!sums.empty()) total += sums[size_t(key)];
        // alpha_k: mean over the queries that can see k (Gu et al.: T − k under a causal mask).
        const int64_t viewers = spec.mask.causal ? std::max<int64_t>(0, tq - key) : tq;
        if (viewers > 0 && total / static_cast<double>(viewers) > threshold) sinks.push_back(key);
    }
    return sinks;
}

}  // namespace attnscope
