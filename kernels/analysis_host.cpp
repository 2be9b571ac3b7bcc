// Host side of the GPU analysis passes: the multiscale map and the block mass matrix of one head.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "attnscope/half.h"
#include "attnscope/parallel.h"

#include "analysis_tc.h"
#include "forward_lse.h"
#include "cuda_engine.h"
#include "fault_injection.h"

namespace attnscope::gpu {

namespace {

/// Q/K of one head on the device in a 16-bit dtype: F16 when every value is exactly an f16
/// (traces stored as F16 are), else BF16 (exact for BF16 traces; rounds F32 ones). It also keeps
/// the map's device and pinned buffers, so a zoom allocates nothing.
class DeviceHead final : public GpuHead {
public:
    ~DeviceHead() override {
        waitForUploads();
        if (m_uploaded) cudaEventDestroy(m_uploaded);
        if (m_pinned) cudaFreeHost(m_pinned);
    }
    int64_t tokens() const override { return m_tokens; }
    int dim() const override { return m_dim; }

    /// Pinned host memory of at least `bytes` (reused; no copy from it may be in flight).
    Result<void*> pinned(size_t bytes) {
        if (m_pinnedBytes < bytes) {
            waitForUploads();
            if (m_pinned) cudaFreeHost(m_pinned);
            m_pinned = nullptr, m_pinnedBytes = 0;
            ATTNSCOPE_CUDA_TRY(cudaHostAlloc(&m_pinned, bytes, cudaHostAllocDefault));
            m_pinnedBytes = bytes;
        }
        return m_pinned;
    }
    /// The host waits until the last upload's copies have read the pinned buffer (fillHead does
    /// not synchronise: the map's kernels and download follow the copies on the same stream).
    void waitForUploads() {
        if (m_uploaded) cudaEventSynchronize(m_uploaded);
    }

    int64_t m_tokens = 0;
    int m_dim = 0;
    ElemType m_elem = ElemType::BF16;
    DeviceArray m_q, m_k, m_lse, m_scratch;
    DeviceArray m_sums, m_max, m_count, m_out;  ///< cells of the last map (reused)
    void* m_pinned = nullptr;
    size_t m_pinnedBytes = 0;
    cudaEvent_t m_uploaded = nullptr;  ///< recorded after the copies from m_pinned
};

/// Packs q and k into 16-bit words in `out` ([q | k]) as bf16 (exact for bf16 traces; rounds f32
/// ones), in parallel chunks, and says whether every value is exactly an f16 (then packF16
/// rewrites them). `packed(e0, e1)` is called, from the worker that finished it, for each of at
/// most 8 ranges of elements once all of it is written, so uploads start while the rest packs.
/// (attnscope/half.h: inline integer conversions; the CUDA host ones cost ~7 ns a value.)
bool packBf16(const MatrixRM& q, const MatrixRM& k, uint16_t* out,
              const std::function<void(int64_t, int64_t)>& packed) {
    const int64_t nq = q.size(), n = nq + k.size();
    // Small chunks (~20 µs each): the calling thread packs while the pool's threads wake up.
    constexpr int64_t kChunk = int64_t(1) << 14;
    const int64_t chunks = (n + kChunk - 1) / kChunk;
    const int64_t perRange = std::max<int64_t>(1, (chunks + 7) / 8), ranges = (chunks + perRange - 1) / perRange;
    std::vector<std::atomic<int64_t>> left(static_cast<size_t>(ranges));
    for (int64_t r = 0; r < ranges; ++r) left[size_t(r)].store(std::min(perRange, chunks - r * perRange));
    std::atomic<bool> exact{true};
    // Whether x is exactly an f16: the common case (an f16 normal: exponent 2^-14 … 2^15, 10
    // mantissa bits) by bit tests, the rest (zero, subnormals, infinities) by a round trip.
    auto f16Exact = [](float x) {
        const uint32_t a = half::floatBits(x) & 0x7fffffffu, e = a >> 23;
        if ((a & 0x1fffu) == 0 && e - 113u <= 29u) return true;
        return half::f16ToFloat(half::floatToF16(x)) == x;
    };
    parallelFor(chunks, [&](int64_t c, int) {
        const int64_t e0 = c * kChunk, e1 = std::min(n, e0 + kChunk);
        // Once any value is inexact in f16 the rest need no check: bf16 it is.
        bool check = exact.load(std::memory_order_relaxed), chunkExact = true;
        auto pack = [&](const float* src, uint16_t* dst, int64_t count) {
            int64_t e = 0;
            for (; check && e < count; ++e) {
                dst[e] = half::floatToBf16(src[e]);
                if (!f16Exact(src[e])) chunkExact = check = false;
            }
            for (; e < count; ++e) dst[e] = half::floatToBf16(src[e]);
        };
        if (e0 < nq) pack(q.data() + e0, out + e0, std::min(e1, nq) - e0);
        if (e1 > nq) {
            const int64_t k0 = std::max(e0, nq);
            pack(k.data() + (k0 - nq), out + k0, e1 - k0);
        }
        if (!chunkExact) exact.store(false, std::memory_order_relaxed);
        const int64_t r = c / perRange;
        if (left[size_t(r)].fetch_sub(1, std::memory_order_acq_rel) == 1)
            packed(r * perRange * kChunk, std::min(n, (r + 1) * perRange * kChunk));
    });
    return exact.load();
}

/// Rewrites `out` ([q | k]) as f16 (every value exact: packBf16 said so).
void packF16(const MatrixRM& q, const MatrixRM& k, uint16_t* out) {
    const int64_t nq = q.size(), n = nq + k.size();
    constexpr int64_t kChunk = int64_t(1) << 16;
    parallelFor((n + kChunk - 1) / kChunk, [&](int64_t c, int) {
        const int64_t e0 = c * kChunk, e1 = std::min(n, e0 + kChunk);
        for (int64_t e = e0; e < std::min(e1, nq); ++e) out[e] = half::floatToF16(q.data()[e]);
        for (int64_t e = std::max(e0, nq); e < e1; ++e) out[e] = half::floatToF16(k.data()[e - nq]);
    });
}

double hostMs(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

/// ATTNSCOPE_MAP_TIMING=1: the map prints its stages to stderr (host packing and upload, pass 1,
/// pass 2, finalize and download), with events on the engine's stream. For benchmarks.
class MapStages {
public:
    static bool enabled() {
        static const bool on = [] {
            const char* v = std::getenv("ATTNSCOPE_MAP_TIMING");
            return v && *v && std::string(v) != "0";
        }();
        return on;
    }
    explicit MapStages(cudaStream_t stream) : m_stream(stream) {
        if (!enabled()) return;
        for (auto& e : m_events) cudaEventCreate(&e);
    }
    ~MapStages() {
        if (!enabled()) return;
        for (auto& e : m_events) cudaEventDestroy(e);
    }
    void mark(int i) {
        if (enabled()) cudaEventRecord(m_events[i], m_stream);
    }
    /// After the stream synchronised: "pass1 x ms, pass2 y ms, finalize+download z ms".
    void print(const char* what) {
        if (!enabled()) return;
        float ms[3] = {};
        for (int i = 0; i < 3; ++i) cudaEventElapsedTime(&ms[i], m_events[i], m_events[i + 1]);
        std::fprintf(stderr, "map stages (%s): pass1 %.3f ms, pass2 %.3f ms, finalize+download %.3f ms\n", what, ms[0],
                     ms[1], ms[2]);
    }

private:
    cudaStream_t m_stream;
    cudaEvent_t m_events[4] = {};
};

Result<std::shared_ptr<GpuHead>> CudaEngine::uploadHead(const MatrixRM& q, const MatrixRM& k) {
    auto head = std::make_shared<DeviceHead>();
    ATTNSCOPE_TRY_STATUS(fillHead(*head, q, k));
    return std::shared_ptr<GpuHead>(std::move(head));
}

Status CudaEngine::fillHead(GpuHead& gh, const MatrixRM& q, const MatrixRM& k) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    auto* head = dynamic_cast<DeviceHead*>(&gh);
    if (!head) return Status{ErrorCode::InvalidArgument, "GPU map: the head was made by another engine"};
    const int64_t T = q.rows();
    if (k.rows() != T || k.cols() != q.cols() || T <= 0 || q.cols() <= 0)
        return Status{ErrorCode::Shape, "GPU analysis: q [" + std::to_string(q.rows()) + "x" +
                                            std::to_string(q.cols()) + "] and k [" + std::to_string(k.rows()) + "x" +
                                            std::to_string(k.cols()) + "] must both be [T x d], T > 0"};
    if (T > (int64_t(1) << 30)) return Status{ErrorCode::Unsupported, "GPU analysis: T above 2^30"};
    if (q.cols() > kMaxPassDim)
        return Status{ErrorCode::Unsupported,
                      "GPU analysis: head dim " + std::to_string(q.cols()) + " above " + std::to_string(kMaxPassDim)};
    head->m_tokens = T;
    head->m_dim = int(q.cols());
    const int64_t nq = q.size();
    const size_t elems = size_t(nq) + size_t(k.size());
    head->waitForUploads();  // the last upload's copies are done reading the staging buffer
    auto staging = head->pinned(elems * 2);
    if (!staging) return staging.status();
    uint16_t* packed = static_cast<uint16_t*>(*staging);
    {  // Refused before anything is allocated when even one head does not fit.
        const double need = double(elems) * 2 + double(T) * sizeof(float);
        const double held = double(head->m_q.bytes() + head->m_k.bytes() + head->m_lse.bytes());
        ATTNSCOPE_TRY_STATUS(
            checkDeviceFits(need - held, "the GPU map of one head (q and k in 16 bits, T = " + std::to_string(T) +
                                             ", d = " + std::to_string(q.cols()) + ", and its lse)"));
    }
    ATTNSCOPE_TRY_STATUS(head->m_q.allocate(size_t(nq) * 2, "map q"));
    ATTNSCOPE_TRY_STATUS(head->m_k.allocate(size_t(k.size()) * 2, "map k"));
    ATTNSCOPE_TRY_STATUS(head->m_lse.allocate(size_t(T) * sizeof(float), "map lse"));
    ATTNSCOPE_TRY_STATUS(head->m_scratch.allocate(sizeof(HeadPassArgs), "map pass arguments"));
    if (!head->m_uploaded) ATTNSCOPE_CUDA_TRY(cudaEventCreateWithFlags(&head->m_uploaded, cudaEventDisableTiming));
    // Elements [e0, e1) of [q | k] from the staging buffer to the device, on the engine's stream.
    std::atomic<cudaError_t> copyError{cudaSuccess};
    auto upload = [&](int64_t e0, int64_t e1) {
        auto copy = [&](void* dst, const uint16_t* src, int64_t count) {
            if (count <= 0) return;
            const cudaError_t e = cudaMemcpyAsync(dst, src, size_t(count) * 2, cudaMemcpyHostToDevice, m_stream);
            if (e != cudaSuccess) copyError.store(e);
        };
        if (cudaSetDevice(m_device) != cudaSuccess) copyError.store(cudaErrorInvalidDevice);  // a pool thread
        copy(head->m_q.as<uint16_t>() + e0, packed + e0, std::min(e1, nq) - e0);
        const int64_t k0 = std::max(e0, nq);
        copy(head->m_k.as<uint16_t>() + (k0 - nq), packed + k0, e1 - k0);
    };
    const auto tPack = std::chrono::steady_clock::now();
    // bf16 ranges go up as they are packed; an all-f16-exact head is rewritten as f16 and sent again.
    bool f16 = packBf16(q, k, packed, upload);
    if (copyError.load() == cudaSuccess && f16) {
        ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));  // the bf16 copies are done reading
        packF16(q, k, packed);
        upload(0, int64_t(elems));
    }
    if (const cudaError_t e = copyError.load(); e != cudaSuccess)
        return cudaStatus(e, "the map's Q/K upload", __FILE__, __LINE__);
    const double packMs = hostMs(tPack);
    head->m_elem = f16 ? ElemType::F16 : ElemType::BF16;
    ATTNSCOPE_CUDA_TRY(cudaEventRecord(head->m_uploaded, m_stream));
    if (MapStages::enabled()) {  // diagnostics only: the map itself does not wait here
        const auto tWait = std::chrono::steady_clock::now();
        ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
        std::fprintf(stderr, "map stages (host in, T=%lld): pack+upload issue %.3f ms, upload tail %.3f ms\n",
                     static_cast<long long>(T), packMs, hostMs(tWait));
    }
    return {};
}

Result<std::shared_ptr<GpuHead>> CudaEngine::scratchHead(const MatrixRM& q, const MatrixRM& k) {
    if (!m_scratchHead) m_scratchHead = std::make_shared<DeviceHead>();
    ATTNSCOPE_TRY_STATUS(fillHead(*m_scratchHead, q, k));
    return m_scratchHead;
}

Status CudaEngine::pool(GpuHead& gh, const AttentionSpec& spec, const CellGrid& grid, MapStages* stages) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    auto* head = dynamic_cast<DeviceHead*>(&gh);
    if (!head) return Status{ErrorCode::InvalidArgument, "GPU map: the head was uploaded by another engine"};
    const int64_t T = head->m_tokens;
    const MaskSpec& m = spec.mask;
    if (m.expr)
        return Status{ErrorCode::Unsupported,
                      "GPU map: a user variant program (MaskSpec::expr) runs on the CPU map, "
                      "not on the GPU passes"};
    if (!m.documents.empty() && static_cast<int64_t>(m.documents.size()) < T)
        return Status{ErrorCode::Shape, "GPU analysis: MaskSpec.documents holds " + std::to_string(m.documents.size()) +
                                            " ids, expected T=" + std::to_string(T)};
    DeviceArray dDocs, dExcluded, dBlocks;
    DeviceArray &dSums = head->m_sums, &dMax = head->m_max, &dCount = head->m_count;
    AnalysisSpec s;
    s.scale = spec.scale, s.softcap = spec.softcap, s.alibiSlope = spec.alibiSlope, s.relativeBias = spec.relativeBias;
    s.causal = m.causal, s.window = m.window, s.prefix = m.prefix, s.dilation = m.dilation;
    s.sinkLogit = spec.sinkLogit;
    if (!m.documents.empty()) {
        ATTNSCOPE_TRY_STATUS(dDocs.upload(m.documents.data(), size_t(T) * sizeof(int32_t), "MaskSpec.documents"));
        s.documents = dDocs.as<int>();
    }
    if (!m.excludedKeys.empty()) {
        static_assert(sizeof(long long) == sizeof(int64_t), "excluded keys are copied as 64-bit");
        ATTNSCOPE_TRY_STATUS(
            dExcluded.upload(m.excludedKeys.data(), m.excludedKeys.size() * sizeof(int64_t), "MaskSpec.excludedKeys"));
        s.excluded = dExcluded.as<long long>();
        s.excludedCount = static_cast<int>(m.excludedKeys.size());
    }
    if (m.blocks) {
        if (m.blockSize <= 0 || m.blockCols <= 0)
            return Status{ErrorCode::InvalidArgument,
                          "GPU analysis: MaskSpec.blocks needs blockSize and blockCols > 0"};
        ATTNSCOPE_TRY_STATUS(dBlocks.upload(m.blocks->data(), m.blocks->size(), "MaskSpec.blocks"));
        s.blocks = dBlocks.as<unsigned char>();
        s.blockSize = m.blockSize, s.blockCols = m.blockCols;
        s.blockRows = static_cast<long long>(m.blocks->size()) / m.blockCols;
    }
    const size_t cells = size_t(grid.rows) * grid.cols;
    ATTNSCOPE_TRY_STATUS(dSums.allocate(cells * sizeof(double), "cell sums"));
    ATTNSCOPE_TRY_STATUS(dMax.allocate(cells * sizeof(float), "cell maxima"));
    ATTNSCOPE_TRY_STATUS(dCount.allocate(cells * sizeof(unsigned long long), "cell counts"));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dSums.get(), 0, cells * sizeof(double), m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dMax.get(), 0, cells * sizeof(float), m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(dCount.get(), 0, cells * sizeof(unsigned long long), m_stream));
    // Pass 1: on Hopper at head dims 64 and 128 the wgmma lse pass (map_sm90.cu: Q·Kᵀ and the
    // online max / sum alone, the rect's rows, any spec). Else where the analysis runs it
    // (forward_lse.h): on the forward kernel when it takes the mask and the rect holds at least
    // half of the rows (it computes every row, and P·V); else on a pass kernel, the rect's rows.
    ATTNSCOPE_FAULT_POINT(FaultSite::MapPass, "launch of the map's passes");
    MapLse pass1 = m_lsePath == LsePath::Wmma ? MapLse::Wmma : MapLse::Fragments;
    const bool wgmma = m_mapWgmma && mapSm90Takes(head->m_dim);
    if (stages) stages->mark(0);
    if (wgmma) {
        MapArgs a;
        a.q = head->m_q.get(), a.k = head->m_k.get(), a.tokens = int(T), a.dim = head->m_dim, a.elem = head->m_elem;
        a.spec = s, a.grid = grid;
        ATTNSCOPE_TRY_STATUS(launchMapLseSm90(a, head->m_lse.as<float>(), m_stream));
        pass1 = MapLse::Ready;
    } else if (m_lsePath == LsePath::Forward && ForwardLse::takes(spec, head->m_dim) && 2 * (grid.q1 - grid.q0) >= T) {
        if (!m_mapLse) m_mapLse = std::make_unique<ForwardLse>(m_forwardPath);
        ATTNSCOPE_TRY_STATUS(m_mapLse->run(head->m_q.get(), head->m_k.get(), head->m_k.get(), head->m_elem, 1, 1,
                                           int(T), head->m_dim, spec, head->m_lse.as<float>(), m_stream));
        pass1 = MapLse::Ready;
    }
    if (stages) stages->mark(1);  // a pass-kernel pass 1 runs in launchMapPasses: counted with pass 2
    ATTNSCOPE_TRY_STATUS(launchMapPasses(head->m_q.get(), head->m_k.get(), head->m_elem, int(T), head->m_dim, s,
                                         head->m_lse.as<float>(), grid, dSums.as<double>(), dMax.as<float>(),
                                         dCount.as<unsigned long long>(), head->m_scratch.get(), pass1, wgmma,
                                         m_stream));
    if (stages) stages->mark(2);
    return {};
}

Result<AttentionMap> CudaEngine::attentionMap(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                              MapRect rect, int width, int height) {
    // Host Q/K in: the engine's scratch head is refilled (its device and pinned buffers stay).
    auto head = scratchHead(q, k);
    if (!head) return head.status();
    return mapFromPool(**head, spec, rect, width, height);
}

Result<AttentionMap> CudaEngine::attentionMap(GpuHead& head, const AttentionSpec& spec, MapRect rect, int width,
                                              int height) {
    return mapFromPool(head, spec, rect, width, height);
}

Result<AttentionMap> CudaEngine::mapFromPool(GpuHead& head, const AttentionSpec& spec, MapRect rect, int width,
                                             int height) {
    const int64_t T = head.tokens();
    if (rect.q0 < 0 || rect.k0 < 0 || rect.q1 > T || rect.k1 > T || rect.q0 >= rect.q1 || rect.k0 >= rect.k1)
        return Status{ErrorCode::InvalidArgument, "attentionMap: rect [" + std::to_string(rect.q0) + "," +
                                                      std::to_string(rect.q1) + ")x[" + std::to_string(rect.k0) + "," +
                                                      std::to_string(rect.k1) +
                                                      ") must be a non-empty part of T=" + std::to_string(T)};
    if (width <= 0 || height <= 0)
        return Status{ErrorCode::InvalidArgument, "attentionMap: width and height must be > 0"};
    const int64_t hq = rect.q1 - rect.q0, hk = rect.k1 - rect.k0;
    CellGrid g;
    g.q0 = rect.q0, g.q1 = rect.q1, g.k0 = rect.k0, g.k1 = rect.k1;
    g.rows = static_cast<int>(std::min<int64_t>(height, hq));
    g.cols = static_cast<int>(std::min<int64_t>(width, hk));
    MapStages stages(m_stream);
    ATTNSCOPE_TRY_STATUS(pool(head, spec, g, &stages));
    // Mean, max and allowed fraction per cell, on the device; one pinned download.
    auto* dh = static_cast<DeviceHead*>(&head);
    const size_t cells = size_t(g.rows) * g.cols;
    ATTNSCOPE_TRY_STATUS(dh->m_out.allocate(3 * cells * sizeof(float), "map cells"));
    ATTNSCOPE_TRY_STATUS(launchMapFinalize(g, dh->m_sums.as<double>(), dh->m_max.as<float>(),
                                           dh->m_count.as<unsigned long long>(), dh->m_out.as<float>(), m_stream));
    auto host = dh->pinned(3 * cells * sizeof(float));
    if (!host) return host.status();
    ATTNSCOPE_CUDA_TRY(
        cudaMemcpyAsync(*host, dh->m_out.get(), 3 * cells * sizeof(float), cudaMemcpyDeviceToHost, m_stream));
    stages.mark(3);
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
    const bool wgmma = m_mapWgmma && mapSm90Takes(head.dim());
    stages.print(!mapFragmentsTake(g)  ? (wgmma ? "wgmma lse, wmma pooling" : "wmma pooling")
                 : !wgmma              ? "fragment pooling"
                 : mapSm90PoolTakes(g) ? "wgmma lse + pooling"
                                       : "wgmma lse, fragment pooling");
    const float* out = static_cast<const float*>(*host);
    AttentionMap map;
    map.rect = rect;
    map.width = g.cols, map.height = g.rows;
    map.mean.assign(out, out + cells);
    map.max.assign(out + cells, out + 2 * cells);
    map.allowed.assign(out + 2 * cells, out + 3 * cells);
    return map;
}

Result<std::vector<double>> CudaEngine::blockMass(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                                                  int64_t blockSize) {
    if (blockSize <= 0) return Status{ErrorCode::InvalidArgument, "blockMass: blockSize must be > 0"};
    auto head = scratchHead(q, k);
    if (!head) return head.status();
    const int64_t T = q.rows();
    const int64_t nb = (T + blockSize - 1) / blockSize;
    CellGrid g;
    g.q1 = T, g.k1 = T;
    g.rows = g.cols = static_cast<int>(nb);
    g.blockSize = blockSize;
    ATTNSCOPE_TRY_STATUS(pool(**head, spec, g));
    std::vector<double> sums(size_t(g.rows) * g.cols);
    auto* dh = static_cast<DeviceHead*>(head->get());
    ATTNSCOPE_CUDA_TRY(
        cudaMemcpyAsync(sums.data(), dh->m_sums.get(), sums.size() * sizeof(double), cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
    return sums;
}

}  // namespace attnscope::gpu

namespace attnscope::gpu {

Result<std::vector<HeadSums>> CudaEngine::analyzeLayerSums(const Trace& trace, int layer,
                                                           const std::vector<AttentionSpec>& specs,
                                                           const HeadContext& context,
                                                           const HeadAnalysisOptions& options, int nextLayer,
                                                           const ProgressFn& progress) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    if (!m_layers) m_layers = std::make_unique<LayerAnalyzer>(m_device, m_stream, m_info.smCount, m_forwardPath);
    return m_layers->run(trace, layer, specs, context, options, nextLayer, progress);
}

GpuEngine::LayerTimes CudaEngine::lastLayerTimes() const { return m_layers ? m_layers->times() : LayerTimes{}; }

}  // namespace attnscope::gpu
