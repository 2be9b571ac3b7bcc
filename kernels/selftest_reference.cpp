// Float64 references for the GPU self-test.
#include "selftest_reference.h"

#include <cmath>
#include <limits>

#include "device_memory.h"

namespace attnscope {
namespace {

double poolScore(const AttentionSpec& spec, double dot, int64_t q, int64_t k) {
    double s = double(spec.scale) * dot;
    if (spec.softcap > 0) s = spec.softcap * std::tanh(s / spec.softcap);
    if (spec.alibiSlope != 0) s += double(spec.alibiSlope) * double(k - q);
    if (spec.relativeBias != 0) s += double(spec.relativeBias) * double(q - k);
    return s;
}

}  // namespace

std::vector<float> randomRounded(size_t n, GpuDType t, std::mt19937_64& rng) {
    std::normal_distribution<float> nd(0.0f, kSelfTestInputSigma);
    std::vector<float> x(n);
    for (auto& e : x) e = gpu::roundToDType(nd(rng), t);
    return x;
}

MapReference mapReference(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, MapRect rect, int width,
                          int height, int64_t blockSize) {
    const int64_t T = q.rows();
    const MatrixRMd qd = q.cast<double>(), kd = k.cast<double>();
    MatrixRMd p = MatrixRMd::Zero(T, T);
    MatrixRMd allowed = MatrixRMd::Zero(T, T);
    for (int64_t i = 0; i < T; ++i) {
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < T; ++j)
            if (spec.mask.allows(i, j)) {
                allowed(i, j) = 1;
                p(i, j) = poolScore(spec, qd.row(i).dot(kd.row(j)), i, j);
                mx = std::max(mx, p(i, j));
            }
        double sum = 0;
        for (int64_t j = 0; j < T; ++j)
            if (allowed(i, j) != 0) sum += std::exp(p(i, j) - mx);
        if (spec.hasSink()) sum += std::exp(double(spec.sinkLogit) - mx);  // a learned sink: denominator only
        for (int64_t j = 0; j < T; ++j) p(i, j) = allowed(i, j) != 0 ? std::exp(p(i, j) - mx) / sum : 0.0;
    }
    MapReference r;
    const int64_t hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const int64_t ya = rect.q0 + y * hq / height, yb = rect.q0 + (y + 1) * hq / height;
            const int64_t xa = rect.k0 + x * hk / width, xb = rect.k0 + (x + 1) * hk / width;
            const double area = double(yb - ya) * double(xb - xa);
            r.mean.push_back(p.block(ya, xa, yb - ya, xb - xa).sum() / area);
            r.max.push_back(p.block(ya, xa, yb - ya, xb - xa).maxCoeff());
            r.allowed.push_back(allowed.block(ya, xa, yb - ya, xb - xa).sum() / area);
        }
    const int64_t nb = (T + blockSize - 1) / blockSize;
    for (int64_t bi = 0; bi < nb; ++bi)
        for (int64_t bj = 0; bj < nb; ++bj) {
            const int64_t r0 = bi * blockSize, c0 = bj * blockSize;
            r.blockMass.push_back(p.block(r0, c0, std::min(blockSize, T - r0), std::min(blockSize, T - c0)).sum());
        }
    return r;
}

template <typename A>
double maxRelativeError(const std::vector<A>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
    double scale = 0, err = 0;
    for (double x : b) scale = std::max(scale, std::fabs(x));
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite(double(a[i]))) return std::numeric_limits<double>::infinity();
        err = std::max(err, std::fabs(double(a[i]) - b[i]));
    }
    return err / std::max(scale, 1e-300);
}
template double maxRelativeError<float>(const std::vector<float>&, const std::vector<double>&);
template double maxRelativeError<double>(const std::vector<double>&, const std::vector<double>&);

}  // namespace attnscope
