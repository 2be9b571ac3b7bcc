// Score tiles and pass 1 (row logsumexp), shared by reference attention, maps and analyses.
#include <cmath>

#include "attention_kernels.h"

namespace attnscope::detail {

void ScoreTile::loadQueries(const MatrixRM& q, float scale, int64_t row0, int64_t rows) {
    if (qs.rows() < rows || qs.cols() != q.cols()) qs.resize(std::max(rows, kTileQ), q.cols());
    // Folding the scale into Q costs T·d multiplies instead of T² (and one rounding of q, well
    // inside the 1e-6 budget).
    qs.topRows(rows) = q.middleRows(row0, rows) * scale;
}

void ScoreTile::compute(const MatrixRM& k, const MaskPlan& plan, TileClass cls, int64_t pa, int64_t rows, int64_t ka,
                        int64_t cols) {
    if (s.rows() < rows || s.cols() < cols) s.resize(std::max(rows, kTileQ), std::max(cols, kTileK));
    auto tile = s.topLeftCorner(rows, cols);
    // S = (scale·Q) Kᵀ: a GEMM per tile, so the engine runs at matrix speed.
    tile.noalias() = qs.topRows(rows) * k.middleRows(ka, cols).transpose();
    if (plan.hasScoreMods()) plan.applyScoreMods(s.data(), s.cols(), pa, rows, ka, cols);
    if (cls == TileClass::Partial) plan.apply(s.data(), s.cols(), pa, rows, ka, cols);
}

void tileLogSumExp(ScoreTile& w, const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, const MaskPlan& plan,
                   int64_t row0, int64_t rows, int64_t qOffset, bool skipEmpty, float* lseOut) {
    // Online softmax normaliser: running max m and Σ exp(s − m), rescaled when m grows.
    float m[kTileQ];
    double l[kTileQ];
    for (int64_t r = 0; r < rows; ++r) {
        m[r] = kNegInf;
        l[r] = 0;
    }
    w.loadQueries(q, spec.scale, row0, rows);
    const int64_t tk = k.rows(), pa = row0 + qOffset;
    for (int64_t ka = 0; ka < tk; ka += kTileK) {
        const int64_t cols = std::min(kTileK, tk - ka);
        const TileClass cls = plan.classify(pa, pa + rows, ka, ka + cols);
        if (cls == TileClass::Empty && skipEmpty) continue;
        w.compute(k, plan, cls == TileClass::Empty ? TileClass::Partial : cls, pa, rows, ka, cols);
        for (int64_t r = 0; r < rows; ++r) {
            const float* s = w.row(r);
            const float tileMax = rowMax(s, cols);
            if (tileMax == kNegInf) continue;
            if (tileMax > m[r]) {
                l[r] *= std::exp(static_cast<double>(m[r]) - tileMax);
                m[r] = tileMax;
            }
            l[r] += expSum(s, cols, m[r]);
        }
    }
    for (int64_t r = 0; r < rows; ++r)
        lseOut[r] = foldSinkIntoLse(l[r] > 0 ? static_cast<float>(m[r] + std::log(l[r])) : kNegInf, spec.sinkLogit);
}

void ItemProgress::itemDone() {
    const int64_t done = m_done.fetch_add(1) + 1;
    m_reporter.report(
        m_from + (m_to - m_from) * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(1, m_items)),
        m_stage);
}

}  // namespace attnscope::detail
