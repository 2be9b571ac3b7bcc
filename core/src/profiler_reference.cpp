// CPU references used by the profiler: variant outputs, block mass, block-list derivation.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "attnscope/parallel.h"
#include "profiler_internal.h"

namespace attnscope::profiler_detail {
namespace {
constexpr int64_t kAccuracyChunkRows = 256;  // rows per chunk when T exceeds the row budget
constexpr int kVslashColumns = 8;            // vertical lines kept by "vslash"
constexpr int kVslashDiagonals = 8;          // slash (diagonal offset) lines kept by "vslash"

/// Parses the number after ':' of a block source ("topk:8" -> 8).
double sourceArgument(const std::string& source) {
    auto colon = source.find(':');
    return colon == std::string::npos ? 0.0 : std::atof(source.c_str() + colon + 1);
}
}  // namespace

double steadyMicros() {
    using namespace std::chrono;
    return duration<double, std::micro>(steady_clock::now().time_since_epoch()).count();
}

Result<AttentionSpec> cpuSpec(const VariantSpec& v, const ProfileInputs& in, int h) {
    const auto& p = in.problem;
    VariantSpec causal;
    causal.kind = VariantKind::Causal;
    auto spec = referenceSpec(v.kind == VariantKind::Decode ? causal : v, p.tokens, h, p.heads, p.scale);
    if (spec && h >= 0 && size_t(h) < in.sinks.size()) spec->sinkLogit = in.sinks[size_t(h)];  // learned sink
    return spec;
}

Result<MatrixRM> referenceRows(const VariantSpec& v, const ProfileInputs& in, int b, int h, int64_t q0, int64_t q1) {
    const int64_t T = in.problem.tokens;
    const MatrixRM k = in.headMatrix(b, h, Which::K);
    const MatrixRM vv = in.headMatrix(b, h, Which::V);
    if (v.kind == VariantKind::LinearAttention) {
        auto out = linearAttentionReference(in.headMatrix(b, h, Which::Q), k, vv, v.decay);
        if (!out) return out.status();
        return MatrixRM(out->middleRows(q0, q1 - q0));
    }
    auto spec = cpuSpec(v, in, h);
    if (!spec) return spec.status();
    const MatrixRM qAll = in.headMatrix(b, h, Which::Q);
    if (v.kind == VariantKind::Decode) {
        auto out = referenceAttention(qAll.bottomRows(1), k, vv, *spec, {}, T - 1);
        if (!out) return out.status();
        return std::move(out->out);
    }
    auto out = referenceAttention(qAll.middleRows(q0, q1 - q0), k, vv, *spec, {}, q0);
    if (!out) return out.status();
    return std::move(out->out);
}

Result<std::vector<double>> cpuBlockMass(const ProfileInputs& in, int b, int h, const AttentionSpec& spec,
                                         int64_t blockSize) {
    const int64_t T = in.problem.tokens;
    const int64_t nb = (T + blockSize - 1) / blockSize;
    const MatrixRM q = in.headMatrix(b, h, Which::Q);
    const MatrixRM k = in.headMatrix(b, h, Which::K);
    auto lse = rowLogSumExp(q, k, spec, 0, T);
    if (!lse) return lse.status();
    std::vector<std::vector<double>> perWorker(size_t(workerCount()), std::vector<double>(size_t(nb * nb), 0.0));
    TileOptions tiles;
    tiles.tileQ = blockSize;
    tiles.tileK = blockSize;  // tiles aligned with blocks: one tile adds to one block
    Status st = forEachProbabilityTile(
        q, k, spec, *lse, 0, T, 0, T,
        [&](int worker, int64_t qStart, int64_t kStart, const Eigen::Ref<const MatrixRM>& P) {
            perWorker[size_t(worker)][size_t((qStart / blockSize) * nb + kStart / blockSize)] += double(P.sum());
        },
        {}, tiles);
    if (!st) return st;
    std::vector<double> mass(size_t(nb * nb), 0.0);
    for (const auto& w : perWorker)
        for (size_t i = 0; i < mass.size(); ++i) mass[i] += w[i];
    for (int64_t qb = 0; qb < nb; ++qb) {
        const double rows = double(std::min(T, (qb + 1) * blockSize) - qb * blockSize);
        for (int64_t kb = 0; kb < nb; ++kb) mass[size_t(qb * nb + kb)] /= rows;
    }
    return mass;
}

Status deriveBlockList(VariantSpec& v, const std::vector<double>& mass, int64_t nb) {
    if (int64_t(mass.size()) != nb * nb)
        return {ErrorCode::Shape,
                "block mass: expected " + std::to_string(nb * nb) + " values, got " + std::to_string(mass.size())};
    auto blocks = std::make_shared<std::vector<uint8_t>>(size_t(nb * nb), uint8_t(0));
    auto keep = [&](int64_t qb, int64_t kb) {
        if (kb >= 0 && kb <= qb) (*blocks)[size_t(qb * nb + kb)] = 1;
    };
    const std::string& src = v.blockSource;
    const std::string name = src.substr(0, src.find(':'));
    if (name == "topk" || name == "gamma") {
        const double arg = sourceArgument(src);
        std::vector<int64_t> order;
        for (int64_t qb = 0; qb < nb; ++qb) {
            order.resize(size_t(qb + 1));
            std::iota(order.begin(), order.end(), 0);
            const double* row = mass.data() + qb * nb;
            std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return row[a] > row[c]; });
            keep(qb, qb);
            double covered = 0, total = 0;
            for (int64_t kb = 0; kb <= qb; ++kb) total += row[kb];
            for (size_t i = 0; i < order.size(); ++i) {
                if (name == "topk" && int64_t(i) >= int64_t(arg)) break;
                if (name == "gamma" && covered >= arg * total) break;
                keep(qb, order[i]);
                covered += row[order[i]];
            }
        }
    } else if (name == "vslash") {
        // Vertical lines: key blocks with the most column mass; slash lines: diagonal offsets
        // with the most mass (MInference's vertical-slash pattern at block granularity).
        std::vector<double> column(size_t(nb), 0.0), diagonal(size_t(nb), 0.0);
        for (int64_t qb = 0; qb < nb; ++qb)
            for (int64_t kb = 0; kb <= qb; ++kb) {
                column[size_t(kb)] += mass[size_t(qb * nb + kb)];
                diagonal[size_t(qb - kb)] += mass[size_t(qb * nb + kb)];
            }
        auto top = [](const std::vector<double>& score, int count) {
            std::vector<int64_t> idx(score.size());
            std::iota(idx.begin(), idx.end(), 0);
            std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t c) { return score[a] > score[c]; });
            idx.resize(std::min(idx.size(), size_t(count)));
            return idx;
        };
        const auto cols = top(column, kVslashColumns), diags = top(diagonal, kVslashDiagonals);
        for (int64_t qb = 0; qb < nb; ++qb) {
            keep(qb, qb);
            for (int64_t c : cols) keep(qb, c);
            for (int64_t d : diags) keep(qb, qb - d);
        }
    } else {
        return {ErrorCode::InvalidArgument, "variant \"" + v.label + "\": unknown block source \"" + src +
                                                "\" (expected topk:K, gamma:G or vslash)"};
    }
    v.blocks = std::move(blocks);
    v.blockSize = 128;
    return Status::success();
}

std::vector<std::pair<int64_t, int64_t>> accuracyRowRanges(int64_t T, int64_t maxRows) {
    if (T <= maxRows || maxRows < kAccuracyChunkRows) return {{0, T}};
    const int64_t chunks = maxRows / kAccuracyChunkRows;
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int64_t i = 0; i < chunks; ++i) {
        const int64_t start = (T - kAccuracyChunkRows) * i / std::max<int64_t>(1, chunks - 1);
        out.push_back({start, start + kAccuracyChunkRows});
    }
    return out;
}

}  // namespace attnscope::profiler_detail
