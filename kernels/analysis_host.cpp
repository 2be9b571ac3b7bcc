// Host side of the GPU analysis passes: the multiscale map and the block mass matrix of one head.
#include <algorithm>

#include "cuda_engine.h"

namespace attnscope::gpu {

Result<CudaEngine::PoolResult> CudaEngine::pool(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                const CellGrid& grid) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    const int64_t T = q.rows();
    if (k.rows() != T || k.cols() != q.cols() || T <= 0 || q.cols() <= 0)
        return Status{ErrorCode::Shape, "GPU analysis: q [" + std::to_string(q.rows()) + "x" +
                                            std::to_string(q.cols()) + "] and k [" + std::to_string(k.rows()) + "x" +
                                            std::to_string(k.cols()) + "] must both be [T x d], T > 0"};
    if (T > (int64_t(1) << 30)) return Status{ErrorCode::Unsupported, "GPU analysis: T above 2^30"};
    const MaskSpec& m = spec.mask;
    if (!m.documents.empty() && static_cast<int64_t>(m.documents.size()) < T)
        return Status{ErrorCode::Shape, "GPU analysis: MaskSpec.documents holds " +
                                            std::to_string(m.documents.size()) + " ids, expected T=" +
                                            std::to_string(T)};
    DeviceArray dq, dk, dDocs, dExcluded, dBlocks, dLse, dSums, dMax, dCount;
    ATTNSCOPE_TRY_STATUS(dq.upload(q.data(), size_t(q.size()) * sizeof(float), "analysis q"));
    ATTNSCOPE_TRY_STATUS(dk.upload(k.data(), size_t(k.size()) * sizeof(float), "analysis k"));
    AnalysisSpec s;
    s.scale = spec.scale, s.softcap = spec.softcap, s.alibiSlope = spec.alibiSlope, s.relativeBias = spec.relativeBias;
    s.causal = m.causal, s.window = m.window, s.prefix = m.prefix, s.dilation = m.dilation;
    if (!m.documents.empty()) {
        ATTNSCOPE_TRY_STATUS(dDocs.upload(m.documents.data(), size_t(T) * sizeof(int32_t), "MaskSpec.documents"));
        s.documents = dDocs.as<int>();
    }
    if (!m.excludedKeys.empty()) {
        static_assert(sizeof(long long) == sizeof(int64_t), "excluded keys are copied as 64-bit");
        ATTNSCOPE_TRY_STATUS(dExcluded.upload(m.excludedKeys.data(), m.excludedKeys.size() * sizeof(int64_t),
                                              "MaskSpec.excludedKeys"));
        s.excluded = dExcluded.as<long long>();
        s.excludedCount = static_cast<int>(m.excludedKeys.size());
    }
    if (m.blocks) {
        if (m.blockSize <= 0 || m.blockCols <= 0)
            return Status{ErrorCode::InvalidArgument, "GPU analysis: MaskSpec.blocks needs blockSize and blockCols > 0"};
        ATTNSCOPE_TRY_STATUS(dBlocks.upload(m.blocks->data(), m.blocks->size(), "MaskSpec.blocks"));
        s.blocks = dBlocks.as<unsigned char>();
        s.blockSize = m.blockSize, s.blockCols = m.blockCols;
        s.blockRows = static_cast<long long>(m.blocks->size()) / m.blockCols;
    }
    const size_t cells = size_t(grid.rows) * grid.cols;
    ATTNSCOPE_TRY_STATUS(dLse.allocate(size_t(T) * sizeof(float), "analysis lse"));
    ATTNSCOPE_TRY_STATUS(dSums.allocate(cells * sizeof(double), "cell sums"));
    ATTNSCOPE_TRY_STATUS(dMax.allocate(cells * sizeof(float), "cell maxima"));
    ATTNSCOPE_TRY_STATUS(dCount.allocate(cells * sizeof(unsigned long long), "cell counts"));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dSums.get(), 0, cells * sizeof(double), m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dMax.get(), 0, cells * sizeof(float), m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dCount.get(), 0, cells * sizeof(unsigned long long), m_stream));
    const int dim = static_cast<int>(q.cols());
    ATTNSCOPE_TRY_STATUS(launchRowLse(dq.as<float>(), dk.as<float>(), int(T), dim, s, dLse.as<float>(), m_stream));
    ATTNSCOPE_TRY_STATUS(launchPool(dq.as<float>(), dk.as<float>(), int(T), dim, s, dLse.as<float>(), grid,
                                    dSums.as<double>(), dMax.as<float>(), dCount.as<unsigned long long>(), m_stream));
    PoolResult r;
    r.sums.resize(cells);
    r.maxima.resize(cells);
    r.allowed.resize(cells);
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(r.sums.data(), dSums.get(), cells * sizeof(double), cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(r.maxima.data(), dMax.get(), cells * sizeof(float), cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(r.allowed.data(), dCount.get(), cells * sizeof(unsigned long long),
                                       cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
    return r;
}

Result<AttentionMap> CudaEngine::attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                              MapRect rect, int width, int height) {
    const int64_t T = q.rows();
    if (rect.q0 < 0 || rect.k0 < 0 || rect.q1 > T || rect.k1 > T || rect.q0 >= rect.q1 || rect.k0 >= rect.k1)
        return Status{ErrorCode::InvalidArgument, "attentionMap: rect [" + std::to_string(rect.q0) + "," +
                                                      std::to_string(rect.q1) + ")x[" + std::to_string(rect.k0) + "," +
                                                      std::to_string(rect.k1) + ") must be a non-empty part of T=" +
                                                      std::to_string(T)};
    if (width <= 0 || height <= 0)
        return Status{ErrorCode::InvalidArgument, "attentionMap: width and height must be > 0"};
    const int64_t hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    CellGrid g;
    g.q0 = rect.q0, g.q1 = rect.q1, g.k0 = rect.k0, g.k1 = rect.k1;
    g.rows = static_cast<int>(std::min<int64_t>(height, hq));
    g.cols = static_cast<int>(std::min<int64_t>(width, hk));
    auto r = pool(q, k, spec, g);
    if (!r) return r.status();
    AttentionMap map;
    map.rect = rect;
    map.width = g.cols, map.height = g.rows;
    const size_t cells = size_t(g.rows) * g.cols;
    map.mean.resize(cells), map.max.resize(cells), map.allowed.resize(cells);
    for (int y = 0; y < g.rows; ++y) {
        const int64_t rows = (y + 1) * hq / g.rows - y * hq / g.rows;
        for (int x = 0; x < g.cols; ++x) {
            const int64_t cols = (x + 1) * hk / g.cols - x * hk / g.cols;
            const double area = double(rows) * double(cols);
            const size_t c = size_t(y) * g.cols + x;
            map.mean[c] = static_cast<float>(r->sums[c] / area);
            map.max[c] = r->maxima[c];
            map.allowed[c] = static_cast<float>(double(r->allowed[c]) / area);
        }
    }
    return map;
}

Result<std::vector<double>> CudaEngine::blockMass(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                  int64_t blockSize) {
    if (blockSize <= 0) return Status{ErrorCode::InvalidArgument, "blockMass: blockSize must be > 0"};
    const int64_t T = q.rows();
    const int64_t nb = (T + blockSize - 1) / blockSize;
    CellGrid g;
    g.q1 = T, g.k1 = T;
    g.rows = g.cols = static_cast<int>(nb);
    g.blockSize = blockSize;
    auto r = pool(q, k, spec, g);
    if (!r) return r.status();
    return std::move(r->sums);
}

}  // namespace attnscope::gpu
