// Accuracy of each variant on the profiled data: relative output error against the dense float32
// reference and attention-mass recall (two passes over the dense probabilities, never T×T).
#include <mutex>

#include "profiler_internal.h"

namespace attnscope::profiler_detail {
namespace {
/// The mask used for recall: decode reads the whole causal row; linear attention has no mask.
bool hasMask(const VariantSpec& v) { return v.kind != VariantKind::LinearAttention; }

/// Linear attention (no softmax) is another function, not an approximation of softmax attention:
/// its distance from the dense output is large by construction and says nothing about accuracy.
/// Its output is still read back (rows a kernel left unwritten still show as an error).
bool approximatesDense(const VariantSpec& v) { return v.kind != VariantKind::LinearAttention; }
constexpr const char* kNotComparedNote =
    "not compared: linear attention is a different function (no softmax), not an approximation of the dense output";

VariantSpec recallMask(const VariantSpec& v) {
    if (v.kind != VariantKind::Decode) return v;
    VariantSpec causal;
    causal.kind = VariantKind::Causal;
    return causal;
}
}  // namespace

Status scoreAccuracy(ProfilerBackend& backend, const ProfileInputs& in, const VariantSpec& dense,
                     const std::vector<VariantSpec>& specs, std::vector<VariantResult>& results,
                     const ProfileRequest& request) {
    const auto& p = in.problem;
    const int64_t T = p.tokens;
    const int heads = std::max(1, std::min(request.accuracyHeads, p.heads));
    const auto ranges = accuracyRowRanges(T, request.accuracyRows);
    const size_t nv = specs.size();
    std::vector<double> errSq(nv, 0.0), refSq(nv, 0.0), inside(nv, 0.0), total(nv, 0.0);
    std::vector<VariantSpec> masks(nv);
    for (size_t i = 0; i < nv; ++i) masks[i] = recallMask(specs[i]);

    for (int h = 0; h < heads; ++h) {
        auto denseSpec = cpuSpec(dense, in, h);
        if (!denseSpec) return denseSpec.status();
        const MatrixRM q = in.headMatrix(0, h, Which::Q), k = in.headMatrix(0, h, Which::K);
        // Dense references of every row range, plus the last row (what decode computes).
        std::vector<MatrixRM> refs;
        for (auto [q0, q1] : ranges) {
            auto ref = referenceRows(dense, in, 0, h, q0, q1);
            if (!ref) return ref.status();
            refs.push_back(std::move(*ref));
        }
        auto lastRow = referenceRows(dense, in, 0, h, T - 1, T);
        if (!lastRow) return lastRow.status();
        // Variants outer, ranges inner: a GPU backend downloads each variant's output once.
        for (size_t i = 0; i < nv; ++i) {
            const bool decode = specs[i].kind == VariantKind::Decode;
            for (size_t c = 0; c < ranges.size() && results[i].error.empty(); ++c) {
                if (decode && c + 1 != ranges.size()) continue;  // one row: score it once
                auto out = backend.headOutput(specs[i], 0, h, ranges[c].first, ranges[c].second);
                if (!out) {
                    results[i].error = "accuracy: " + out.message();
                    break;
                }
                const MatrixRM& r = decode ? *lastRow : refs[c];
                if (out->rows() != r.rows() || out->cols() != r.cols()) {
                    results[i].error = "accuracy: output has " + std::to_string(out->rows()) + "x" +
                                       std::to_string(out->cols()) + ", expected " + std::to_string(r.rows()) + "x" +
                                       std::to_string(r.cols());
                    break;
                }
                errSq[i] += (out->cast<double>() - r.cast<double>()).squaredNorm();
                refSq[i] += r.cast<double>().squaredNorm();
            }
        }
        // Recall: one pass over the dense probabilities of each range for all variants.
        for (auto [q0, q1] : ranges) {
            auto lse = rowLogSumExp(q, k, *denseSpec, q0, q1);
            if (!lse) return lse.status();
            std::mutex merge;
            Status st = forEachProbabilityTile(
                q, k, *denseSpec, *lse, q0, q1, 0, T,
                [&](int, int64_t qs, int64_t ks, const Eigen::Ref<const MatrixRM>& P) {
                    std::vector<double> in(nv, 0.0);
                    const double sum = P.cast<double>().sum();  // double: recall 1 must come out as 1
                    for (size_t i = 0; i < nv; ++i) {
                        if (!hasMask(specs[i])) continue;
                        // Whole tiles the mask keeps or drops need no mask_mod call per element.
                        const BlockState state = variantRectState(masks[i], T, qs, qs + P.rows(), ks, ks + P.cols());
                        if (state != BlockState::Partial) {
                            in[i] = state == BlockState::Full ? sum : 0.0;
                            continue;
                        }
                        double acc = 0;
                        for (Eigen::Index r = 0; r < P.rows(); ++r)
                            for (Eigen::Index c = 0; c < P.cols(); ++c)
                                if (P(r, c) != 0.0f && variantAllows(masks[i], T, qs + r, ks + c)) acc += P(r, c);
                        in[i] = acc;
                    }
                    std::lock_guard lock(merge);
                    for (size_t i = 0; i < nv; ++i) {
                        inside[i] += in[i];
                        total[i] += sum;
                    }
                });
            if (!st) return st;
        }
    }
    for (size_t i = 0; i < nv; ++i) {
        if (!results[i].error.empty()) continue;
        results[i].recall = hasMask(specs[i]) && total[i] > 0 ? inside[i] / total[i] : -1.0;
        if (!approximatesDense(specs[i])) {
            results[i].relError = -1;
            results[i].accuracyNote = kNotComparedNote;
            continue;
        }
        results[i].relError = refSq[i] > 0 ? std::sqrt(errSq[i] / refSq[i]) : 0.0;
        if (!std::isfinite(results[i].relError)) results[i].relError = std::numeric_limits<double>::infinity();
    }
    return Status::success();
}

}  // namespace attnscope::profiler_detail
