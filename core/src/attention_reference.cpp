// Reference attention (flash-style online softmax over key tiles) and pass 1 on its own.
#include <cmath>
#include <string>

#include "attention_kernels.h"
#include "attnscope/parallel.h"

namespace attnscope {

using namespace detail;

namespace {
int64_t tileCount(int64_t n) { return (n + kTileQ - 1) / kTileQ; }

Status cancelled(const char* what) { return {ErrorCode::Cancelled, std::string(what) + ": cancelled"}; }
}  // namespace

Result<AttentionOutput> referenceAttention(const MatrixRM& q, const MatrixRM& k, const MatrixRM& v,
                                           const AttentionSpec& spec, const ProgressFn& progress, int64_t qOffset) {
    constexpr const char* kWhat = "referenceAttention";
    if (Status s = validateInputs(kWhat, q, k, spec, qOffset); !s) return s;
    if (v.rows() != k.rows())
        return Status(ErrorCode::Shape, std::string(kWhat) + ": v has " + std::to_string(v.rows()) +
                                            " rows but k has " + std::to_string(k.rows()) + " (expected equal)");
    const int64_t tq = q.rows(), tk = k.rows(), dv = v.cols();
    AttentionOutput result;
    result.out = MatrixRM::Zero(tq, dv);
    result.lse.assign(size_t(tq), kNegInf);
    const MaskPlan plan(spec);
    std::vector<ScoreTile> scratch(static_cast<size_t>(workerCount()));
    ItemProgress prog(progress, "attention", tileCount(tq));

    parallelFor(tileCount(tq), [&](int64_t item, int worker) {
        if (prog.cancelled()) return;
        ScoreTile& w = scratch[size_t(worker)];
        const int64_t row0 = item * kTileQ, rows = std::min(kTileQ, tq - row0), pa = row0 + qOffset;
        float m[kTileQ];
        double l[kTileQ];
        std::fill(m, m + rows, kNegInf);
        std::fill(l, l + rows, 0.0);
        auto acc = result.out.middleRows(row0, rows);  // O accumulator (unnormalised)
        w.loadQueries(q, spec.scale, row0, rows);
        for (int64_t ka = 0; ka < tk; ka += kTileK) {
            const int64_t cols = std::min(kTileK, tk - ka);
            const TileClass cls = plan.classify(pa, pa + rows, ka, ka + cols);
            if (cls == TileClass::Empty) continue;
            w.compute(k, plan, cls, pa, rows, ka, cols);
            for (int64_t r = 0; r < rows; ++r) {
                float* s = w.row(r);
                const float newMax = std::max(m[r], rowMax(s, cols));
                if (newMax == kNegInf) {  // nothing allowed in this row yet: P row is 0
                    std::fill(s, s + cols, 0.0f);
                    continue;
                }
                // O ← O·e^(m_old − m_new) + P V, l likewise (flash attention's online softmax).
                const double alpha = std::exp(static_cast<double>(m[r]) - newMax);
                if (alpha != 1.0) {
                    acc.row(r) *= static_cast<float>(alpha);
                    l[r] *= alpha;
                }
                m[r] = newMax;
                l[r] += expInPlace(s, cols, newMax);
            }
            acc.noalias() += w.s.topLeftCorner(rows, cols) * v.middleRows(ka, cols);
        }
        for (int64_t r = 0; r < rows; ++r) {
            if (l[r] > 0) {
                // O = Σ e^(s − m) v / l; a learned sink adds e^(sink − m) to the denominator only.
                const double denom =
                    l[r] + (spec.hasSink() ? std::exp(static_cast<double>(spec.sinkLogit) - m[r]) : 0.0);
                acc.row(r) *= static_cast<float>(1.0 / denom);
                result.lse[size_t(row0 + r)] = static_cast<float>(m[r] + std::log(denom));
            } else {
                acc.row(r).setZero();
                result.lse[size_t(row0 + r)] = foldSinkIntoLse(kNegInf, spec.sinkLogit);
            }
        }
        prog.itemDone();
    });
    if (prog.cancelled()) return cancelled(kWhat);
    return result;
}

Result<std::vector<float>> rowLogSumExp(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, int64_t q0,
                                        int64_t q1, const ProgressFn& progress) {
    constexpr const char* kWhat = "rowLogSumExp";
    if (Status s = validateInputs(kWhat, q, k, spec, 0); !s) return s;
    if (q0 < 0 || q1 < q0 || q1 > q.rows())
        return Status(ErrorCode::InvalidArgument, std::string(kWhat) + ": rows [" + std::to_string(q0) + "," +
                                                      std::to_string(q1) + ") not inside [0," +
                                                      std::to_string(q.rows()) + ")");
    std::vector<float> lse(size_t(q1 - q0), kNegInf);
    const MaskPlan plan(spec);
    std::vector<ScoreTile> scratch(static_cast<size_t>(workerCount()));
    ItemProgress prog(progress, "logsumexp", tileCount(q1 - q0));
    parallelFor(tileCount(q1 - q0), [&](int64_t item, int worker) {
        if (prog.cancelled()) return;
        const int64_t row0 = q0 + item * kTileQ, rows = std::min(kTileQ, q1 - row0);
        tileLogSumExp(scratch[size_t(worker)], q, k, spec, plan, row0, rows, 0, true, lse.data() + (row0 - q0));
        prog.itemDone();
    });
    if (prog.cancelled()) return cancelled(kWhat);
    return lse;
}

}  // namespace attnscope
