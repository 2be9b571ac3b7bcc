// Whole-layer GPU analysis: upload (double-buffered, from the mapped trace), the tensor-core
// passes per group of query heads, and the host steps between them (candidate masks from the
// estimate pass, top-k blocks from the block mass).
#include "analysis_layer.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "analysis_tc.h"
#include "attnscope/parallel.h"
#include "attnscope/trace.h"
#include "cuda_check.h"
#include "fault_injection.h"

namespace attnscope::gpu {
namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

constexpr int64_t kTile = 64;  ///< the passes' row / key tile; block sizes must be multiples of it

}  // namespace

/// Everything one head of a group needs on the device.
struct LayerAnalyzer::HeadBuffers {
    DeviceArray rowStats, column, offset, estColumn, estOffset, numerator;
    DeviceArray blocks[kMaxPassBlockSizes];
    DeviceArray vertical, slash, slashPrefix, verticalTiles, keptBlocks;
    DeviceArray maskOut[4];  ///< Σ_{j∈mask} p_ij per row, per candidate mask
};

namespace {

AnalysisSpec toDeviceSpec(const AttentionSpec& spec) {
    AnalysisSpec s;
    s.scale = spec.scale, s.softcap = spec.softcap, s.alibiSlope = spec.alibiSlope, s.relativeBias = spec.relativeBias;
    s.causal = spec.mask.causal, s.window = spec.mask.window, s.prefix = spec.mask.prefix,
    s.dilation = spec.mask.dilation;
    s.sinkLogit = spec.sinkLogit;
    return s;
}

const char* whichName(int w) { return w == 0 ? "q" : w == 1 ? "k" : "v"; }

/// fn(0..n-1) on short-lived threads. Not core's pool: analyzeTrace finishes the previous layer
/// on that pool while this thread drives the GPU, and waiting for it would stall the GPU.
void runSpread(int64_t n, const std::function<void(int64_t)>& fn) {
    const int64_t threads = std::min<int64_t>(n, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    std::atomic<int64_t> next{0};
    for (int64_t t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int64_t x = next++; x < n; x = next++) fn(x);
        });
    for (auto& t : pool) t.join();
}

/// topKBlockMask's choice (per block-row the k allowed blocks of largest mass, ties by column)
/// with a selection instead of a sort: the same blocks, since the order is total.
std::vector<uint8_t> topKBlocks(const float* mass, const std::vector<uint8_t>& allowed, int64_t nb, int64_t k) {
    std::vector<uint8_t> out(size_t(nb * nb), 0);
    std::vector<int64_t> cols;
    for (int64_t I = 0; I < nb; ++I) {
        cols.clear();
        for (int64_t J = 0; J < nb; ++J)
            if (allowed.empty() || allowed[size_t(I * nb + J)]) cols.push_back(J);
        const float* m = mass + I * nb;
        auto before = [m](int64_t x, int64_t y) { return m[x] > m[y] || (m[x] == m[y] && x < y); };
        const size_t keep = size_t(std::min<int64_t>(k, int64_t(cols.size())));
        if (keep < cols.size()) std::nth_element(cols.begin(), cols.begin() + ptrdiff_t(keep), cols.end(), before);
        for (size_t n = 0; n < keep; ++n) out[size_t(I * nb + cols[n])] = 1;
    }
    return out;
}

}  // namespace

LayerAnalyzer::LayerAnalyzer(int device, cudaStream_t compute, int smCount, ForwardPath forwardPath)
    : m_device(device), m_compute(compute), m_smCount(smCount), m_forwardLse(forwardPath) {
    cudaStreamCreateWithFlags(&m_copy, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&m_aux, cudaStreamNonBlocking);
    m_lsePath = lsePathFromEnvironment();
}

LayerAnalyzer::~LayerAnalyzer() {
    for (Slot& s : m_slots)
        if (s.ready.valid()) s.ready.wait();
    if (m_pinned) cudaFreeHost(m_pinned);
    if (m_host) cudaFreeHost(m_host);
    if (m_upload) cudaFreeHost(m_upload);
    if (m_copy) cudaStreamDestroy(m_copy);
    if (m_aux) cudaStreamDestroy(m_aux);
}

Status LayerAnalyzer::startUpload(Slot& slot, const Trace& trace, int layer) {
    if (slot.ready.valid()) slot.ready.wait();
    const LayerTensors& t = trace.layer(layer);
    ATTNSCOPE_TRY_STATUS(slot.q.allocate(t.q.bytes, trace.path() + ": layers." + std::to_string(layer) + ".q"));
    ATTNSCOPE_TRY_STATUS(slot.k.allocate(t.k.bytes, trace.path() + ": layers." + std::to_string(layer) + ".k"));
    ATTNSCOPE_TRY_STATUS(slot.v.allocate(t.v.bytes, trace.path() + ": layers." + std::to_string(layer) + ".v"));
    const size_t biggest = std::max({t.q.bytes, t.k.bytes, t.v.bytes});
    if (m_pinnedBytes < biggest) {
        // Both slots share one staging buffer; wait for any upload that still reads it.
        for (Slot& s : m_slots)
            if (s.ready.valid()) s.ready.wait();
        if (m_pinned) cudaFreeHost(m_pinned);
        m_pinned = nullptr, m_pinnedBytes = 0;
        ATTNSCOPE_CUDA_TRY(cudaHostAlloc(&m_pinned, biggest, cudaHostAllocDefault));
        m_pinnedBytes = biggest;
    }
    slot.traceId = trace.openId();
    slot.layer = layer;
    const TensorView views[3] = {t.q, t.k, t.v};
    DeviceArray* dst[3] = {&slot.q, &slot.k, &slot.v};
    const Trace* source = &trace;
    slot.ready = std::async(std::launch::async, [this, source, views, dst, &slot]() -> Status {
        std::lock_guard<std::mutex> staging(m_stagingMutex);  // one upload at a time through the staging buffer
        ATTNSCOPE_CUDA_TRY(cudaSetDevice(m_device));          // this thread copies to the engine's device
        slot.readMs = slot.uploadMs = 0;
        // Chunks through the staging buffer: read (parallel copies from the mapping, through
        // Trace::read, which refuses a file truncated or rewritten since it was opened instead
        // of crashing on it), then copy.
        for (int w = 0; w < 3; ++w) {
            const size_t bytes = views[w].bytes;
            const auto t0 = Clock::now();
            constexpr int64_t kChunk = int64_t(8) << 20;
            const int64_t chunks = int64_t((bytes + kChunk - 1) / kChunk);
            std::mutex failedMutex;
            Status failed;
            runSpread(chunks, [&](int64_t c) {
                const size_t off = size_t(c) * kChunk, n = std::min<size_t>(kChunk, bytes - off);
                Status st = source->read(views[w], off, n, static_cast<std::byte*>(m_pinned) + off);
                if (!st) {
                    std::lock_guard lock(failedMutex);
                    if (failed.ok()) failed = std::move(st);
                }
            });
            if (!failed.ok()) return failed;
            slot.readMs += msSince(t0);
            const auto t1 = Clock::now();
            ATTNSCOPE_FAULT_POINT(FaultSite::AnalysisUpload,
                                  std::string("cudaMemcpyAsync of the layer's ") + "QKV"[w] + " to the GPU");
            ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(dst[w]->get(), m_pinned, bytes, cudaMemcpyHostToDevice, m_copy));
            ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_copy));
            slot.uploadMs += msSince(t1);
        }
        return Status{};
    });
    return {};
}

Status LayerAnalyzer::prepareTemplates(const std::vector<int64_t>& tokenIds, const RoleOptions& roles) {
    if (m_templateReady && tokenIds == m_templateIds && roles.excludeBos == m_templateRoles.excludeBos &&
        roles.excludeCurrentToken == m_templateRoles.excludeCurrentToken &&
        roles.repeatContext == m_templateRoles.repeatContext)
        return {};
    m_templateReady = false;
    const int64_t T = int64_t(tokenIds.size());
    // Dense ranks: 32-bit on the device, equal exactly where the 64-bit ids are equal.
    std::unordered_map<int64_t, int32_t> rank;
    std::vector<int32_t> ids(static_cast<size_t>(T));
    for (int64_t i = 0; i < T; ++i)
        ids[size_t(i)] = rank.emplace(tokenIds[size_t(i)], int32_t(rank.size())).first->second;
    const std::vector<int64_t> ngram64 = ngramIds(tokenIds, roles.repeatContext);
    const std::vector<int32_t> ngram(ngram64.begin(), ngram64.end());  // ids < T
    ATTNSCOPE_TRY_STATUS(m_ids.upload(ids.data(), size_t(T) * 4, "token ids"));
    ATTNSCOPE_TRY_STATUS(m_ngram.upload(ngram.data(), size_t(T) * 4, "repeated-context ids"));
    // The pairs each template counts (analysis_sums.h: duplicate j < i with the same id,
    // induction 1 <= j <= i with ids[j - 1] = ids[i], repeated context j - 1 < i with the same
    // n-gram id), listed row by row while the earlier positions of each id are known.
    const size_t budget = size_t(T) * kPairsPerToken;
    std::vector<uint2> pairs;
    std::vector<std::vector<int32_t>> byId(rank.size()), byNgram(static_cast<size_t>(T));
    const int32_t bos = roles.excludeBos ? 1 : 0;
    const bool exclCur = roles.excludeCurrentToken;
    bool listed = true;
    auto add = [&](int64_t i, int32_t j, unsigned which) {
        pairs.push_back(uint2{unsigned(i), unsigned(j) | (which << kPairTemplateShift)});
    };
    for (int64_t i = 0; i < T && listed; ++i) {
        auto& same = byId[size_t(ids[size_t(i)])];
        for (int32_t p : same) {
            if (p >= bos) add(i, p, 0);                      // duplicate: j = p < i
            if (!(exclCur && p == i - 1)) add(i, p + 1, 1);  // induction: j = p + 1 <= i
        }
        same.push_back(int32_t(i));
        if (ngram[size_t(i)] >= 0) {
            auto& prior = byNgram[size_t(ngram[size_t(i)])];
            for (int32_t p : prior)
                if (!(exclCur && p == i - 1)) add(i, p + 1, 2);  // repeated context: j = p + 1, p < i
            prior.push_back(int32_t(i));
        }
        listed = pairs.size() <= budget;
    }
    m_pairsListed = listed;
    m_pairCount = listed ? (long long)pairs.size() : 0;
    if (listed && !pairs.empty())
        ATTNSCOPE_TRY_STATUS(m_pairs.upload(pairs.data(), pairs.size() * sizeof(uint2), "template pairs"));
    m_templateIds = tokenIds;
    m_templateRoles = roles;
    m_templateReady = true;
    return {};
}

LayerAnalyzer::Slot* LayerAnalyzer::slotFor(const Trace& trace, int layer) {
    for (Slot& s : m_slots)
        if (s.traceId == trace.openId() && s.layer == layer) return &s;
    return nullptr;
}

Result<std::vector<HeadSums>> LayerAnalyzer::run(const Trace& trace, int layer, const std::vector<AttentionSpec>& specs,
                                                 const HeadContext& context, const HeadAnalysisOptions& options,
                                                 int nextLayer, const ProgressFn& progress) {
    const LayerConfig& cfg = trace.config(layer);
    const LayerTensors& lt = trace.layer(layer);
    const int64_t T = trace.tokens();
    const std::string where = trace.path() + ": layer " + std::to_string(layer);
    if (lt.q.dtype != lt.k.dtype || lt.q.dtype != lt.v.dtype || lt.q.dtype == DType::F32)
        return Status{ErrorCode::Unsupported, where +
                                                  ": the GPU analysis reads F16/BF16 Q/K/V as stored; this layer is " +
                                                  std::string(dtypeName(lt.q.dtype)) + " (analysed on the CPU)"};
    if (cfg.headDim > kMaxPassDim)
        return Status{ErrorCode::Unsupported, where + ": head dim " + std::to_string(cfg.headDim) + " above " +
                                                  std::to_string(kMaxPassDim) + " (analysed on the CPU)"};
    if (T > (int64_t(1) << 30)) return Status{ErrorCode::Unsupported, where + ": T above 2^30"};
    const std::vector<int64_t> blockSizes = accumulatedBlockSizes(options);
    if (int(blockSizes.size()) > kMaxPassBlockSizes)
        return Status{ErrorCode::Unsupported, "GPU analysis: at most " + std::to_string(kMaxPassBlockSizes) +
                                                  " block sizes (analysed on the CPU)"};
    for (int64_t b : blockSizes)
        if (b % kTile != 0)
            return Status{ErrorCode::Unsupported, "GPU analysis: block size " + std::to_string(b) +
                                                      " is not a multiple of 64 (analysed on the CPU)"};
    if (int(specs.size()) != cfg.heads)
        return Status{ErrorCode::InvalidArgument, where + ": " + std::to_string(specs.size()) + " specs for " +
                                                      std::to_string(cfg.heads) + " heads"};
    for (const AttentionSpec& s : specs)
        if (!s.mask.documents.empty() || s.mask.blocks)
            return Status{ErrorCode::Unsupported,
                          where + ": document / block masks in the head spec (analysed on the CPU)"};
    const ElemType elem = lt.q.dtype == DType::BF16 ? ElemType::BF16 : ElemType::F16;
    const int dim = cfg.headDim, dimPad = passDimPad(dim);
    const int group = cfg.heads / std::max(1, cfg.kvHeads);
    const size_t headElems = size_t(T) * size_t(dim);
    const int64_t Tpad = (T + kTile - 1) / kTile * kTile;

    // This layer's Q/K/V: prefetched by the previous call, or uploaded now.
    const auto tRead = Clock::now();
    Slot* slot = slotFor(trace, layer);
    if (!slot) {
        slot = &m_slots[0];
        if (m_slots[0].traceId == trace.openId() && m_slots[0].layer >= 0 && m_slots[0].layer != layer)
            slot = &m_slots[1];
        ATTNSCOPE_TRY_STATUS(startUpload(*slot, trace, layer));
    }
    // A slot whose upload was already collected (the same layer analysed again: a rerun after a
    // cancel, the exclude-sinks pass) still holds the layer on the device.
    const bool resident = !slot->ready.valid();
    if (!resident) {
        if (Status s = slot->ready.get(); !s.ok()) {
            slot->traceId = 0, slot->layer = -1;
            return s;
        }
    } else {
        slot->readMs = slot->uploadMs = 0;
    }
    const double waitMs = msSince(tRead);
    m_times = {};
    m_times.readMs = slot->readMs;
    m_times.uploadMs = slot->uploadMs;
    (void)waitMs;
    // Start the next layer's upload into the other slot while this one computes.
    if (nextLayer >= 0 && nextLayer < trace.numLayers() && nextLayer != layer) {
        Slot& other = slot == &m_slots[0] ? m_slots[1] : m_slots[0];
        if (!slotFor(trace, nextLayer)) {
            const LayerTensors& nt = trace.layer(nextLayer);
            if (nt.q.dtype == lt.q.dtype && nt.k.dtype == lt.k.dtype && nt.v.dtype == lt.v.dtype)
                ATTNSCOPE_TRY_STATUS(startUpload(other, trace, nextLayer));
        }
    }
    const auto tCompute = Clock::now();

    // NaN/Inf per head and tensor (the CPU path refuses them the same way).
    DeviceArray& counts = m_counts;
    const int kvHeads = cfg.kvHeads;
    const int countSlots = cfg.heads + 2 * kvHeads;
    ATTNSCOPE_TRY_STATUS(counts.allocate(size_t(countSlots) * sizeof(unsigned long long), "NaN counts"));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(counts.get(), 0, size_t(countSlots) * sizeof(unsigned long long), m_compute));
    {
        int at = 0;
        const DeviceArray* tensors[3] = {&slot->q, &slot->k, &slot->v};
        for (int w = 0; w < 3; ++w) {
            const int n = w == 0 ? cfg.heads : kvHeads;
            for (int h = 0; h < n; ++h, ++at)
                ATTNSCOPE_TRY_STATUS(
                    launchCountNonFinite(static_cast<const uint16_t*>(tensors[w]->get()) + h * headElems,
                                         (long long)headElems, elem, counts.as<unsigned long long>() + at, m_compute));
        }
    }

    // V in bf16 for P·V (P is bf16: no underflow where the CPU's float32 has none).
    const void* vBf16 = slot->v.get();
    if (elem == ElemType::F16) {
        ATTNSCOPE_TRY_STATUS(m_vBf16.allocate(lt.v.bytes, where + ": V as bf16"));
        ATTNSCOPE_TRY_STATUS(launchF16ToBf16(slot->v.get(), m_vBf16.get(), (long long)(lt.v.bytes / 2), m_compute));
        vBf16 = m_vBf16.get();
    }

    // Role templates, shared by every head.
    DeviceArray &dIds = m_ids, &dNgram = m_ngram, &dDocs = m_docs;  // ids and n-grams: prepareTemplates
    LayerPassArgs base;
    base.tokens = int(T), base.dim = dim, base.elem = elem;
    base.excludeBos = options.roles.excludeBos, base.excludeCurrentToken = options.roles.excludeCurrentToken;
    base.recentTokens = std::max<int64_t>(1, options.roles.recentTokens);
    base.blockSizeCount = int(blockSizes.size());
    for (size_t b = 0; b < blockSizes.size(); ++b) base.blockSizes[b] = blockSizes[b];
    if (int64_t(context.tokenIds.size()) == T) {
        ATTNSCOPE_TRY_STATUS(prepareTemplates(context.tokenIds, options.roles));
        if (!m_pairsListed) {  // too many pairs to list: the stats pass compares ids per element
            base.tokenIds = dIds.as<int>();
            base.ngram = dNgram.as<int>();
        }
    }
    if (int64_t(context.documents.size()) == T) {
        ATTNSCOPE_TRY_STATUS(dDocs.upload(context.documents.data(), size_t(T) * 4, "document ids"));
        base.documents = dDocs.as<int>();
    }
    std::vector<DeviceArray> excluded(static_cast<size_t>(cfg.heads));

    // Group size: what the free device memory holds (per head about 20·T floats, the numerator
    // and the block matrices), at most every head of the layer.
    size_t freeBytes = 0, totalBytes = 0;
    deviceMemory(freeBytes, totalBytes);
    size_t perHead = size_t(T) * 4 * 32 + size_t(Tpad) * size_t(dimPad) * 4;
    for (int64_t b : blockSizes) perHead += size_t((T + b - 1) / b) * size_t((T + b - 1) / b) * 4;
    perHead += size_t((T + 63) / 64) * size_t((T + 63) / 64);  // top-k flags
    // Refused before the passes allocate when one kv group's buffers do not fit (the block
    // matrices grow as T²: at T = 4M one head needs about 23 GB).
    ATTNSCOPE_TRY_STATUS(checkDeviceFits(double(perHead) * group,
                                         where + ": the analysis buffers of " + std::to_string(group) +
                                             (group == 1 ? " head" : " heads (one kv group)") +
                                             " (row statistics and block matrices at T = " + std::to_string(T) + ")",
                                         0.6));
    // Groups hold whole kv groups (the forward kernel's lse takes heads h0.. with their kv heads).
    int groupHeads = int(std::clamp<size_t>((freeBytes * 6 / 10) / std::max<size_t>(perHead, 1), 1, size_t(cfg.heads)));
    groupHeads = std::max(group, groupHeads / group * group);

    std::vector<HeadSums> out(static_cast<size_t>(cfg.heads));
    struct PassEvents {
        const char* name = "";
        cudaEvent_t start = nullptr, stop = nullptr;
    };
    std::vector<PassEvents> events;
    std::vector<cudaEvent_t> marks;  // host waits (estimate sums, stats sums, mask sums downloaded)
    struct EventsGuard {
        std::vector<PassEvents>& e;
        std::vector<cudaEvent_t>& m;
        ~EventsGuard() {
            for (auto& x : e) cudaEventDestroy(x.start), cudaEventDestroy(x.stop);
            for (auto x : m) cudaEventDestroy(x);
        }
    } eventsGuard{events, marks};
    auto mark = [&](cudaStream_t stream, cudaEvent_t& ev) -> Status {
        ATTNSCOPE_CUDA_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
        marks.push_back(ev);
        ATTNSCOPE_CUDA_TRY(cudaEventRecord(ev, stream));
        return {};
    };
    while (int(m_heads.size()) < groupHeads) m_heads.push_back(std::make_unique<HeadBuffers>());
    auto bufAt = [&](int x) -> HeadBuffers& { return *m_heads[size_t(x)]; };
    ATTNSCOPE_TRY_STATUS(m_lse.allocate(size_t(groupHeads) * size_t(T) * 4, "lse"));
    DeviceArray& dHeads = m_args;  // one slot per pass of a group, so no pass's arguments overwrite another's
    ATTNSCOPE_TRY_STATUS(dHeads.allocate(sizeof(HeadPassArgs) * size_t(groupHeads) * 8, "head pass arguments"));
    ATTNSCOPE_TRY_STATUS(m_maskError.allocate(size_t(groupHeads) * 8 * sizeof(double), "candidate mask errors"));
    const int64_t estimateRows = std::min(T, std::max<int64_t>(1, options.masks.estimateQueries));
    const bool masks = options.masks.enabled;

    // Pinned host memory for everything that comes back (the copies are asynchronous and the
    // host works on one part while the GPU computes the next): per head, in floats.
    std::vector<size_t> blockElems;
    for (int64_t b : blockSizes) blockElems.push_back(size_t((T + b - 1) / b) * size_t((T + b - 1) / b));
    const size_t uT = size_t(T);
    struct HostLayout {
        size_t estColumn, estOffset, lse, rows, column, offset, blocks, maskMass, maskError, stride;
    } hl;
    hl.estColumn = 0, hl.estOffset = uT, hl.lse = 3 * uT, hl.rows = 4 * uT, hl.column = hl.rows + kRowStatCount * uT;
    hl.offset = hl.column + uT, hl.blocks = hl.offset + 2 * uT;
    hl.maskMass = hl.blocks + std::accumulate(blockElems.begin(), blockElems.end(), size_t(0));
    hl.maskError = (hl.maskMass + 4 * uT + 1) / 2 * 2;  // 8 doubles
    hl.stride = hl.maskError + 16;
    const size_t hostBytes = (size_t(groupHeads) * hl.stride + size_t(countSlots) * 2) * 4;
    if (m_hostBytes < hostBytes) {
        if (m_host) cudaFreeHost(m_host);
        m_host = nullptr, m_hostBytes = 0;
        ATTNSCOPE_CUDA_TRY(cudaHostAlloc(&m_host, hostBytes, cudaHostAllocDefault));
        m_hostBytes = hostBytes;
    }
    float* hostBase = static_cast<float*>(m_host);
    auto hostAt = [&](int x, size_t field) { return hostBase + size_t(x) * hl.stride + field; };
    unsigned long long* hostCounts = reinterpret_cast<unsigned long long*>(hostBase + size_t(groupHeads) * hl.stride);
    auto toHost = [&](void* dst, const void* src, size_t bytes, cudaStream_t stream) -> Status {
        if (bytes) ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream));
        return {};
    };
    // Uploads go through pinned memory too (a copy from pageable memory may wait for the stream,
    // which would hold the host until the kernel before it finishes): one arena per group.
    const int64_t topB = options.masks.topKBlockSize, topNb = (T + topB - 1) / topB;
    constexpr int kPassesPerGroup = 8;
    const size_t uploadPerHead =
        16 * uT + 64 + size_t(topNb) * size_t(topNb) + kPassesPerGroup * (sizeof(HeadPassArgs) + 16);
    const size_t uploadBytes = size_t(groupHeads) * uploadPerHead;
    if (m_uploadBytes < uploadBytes) {
        if (m_upload) cudaFreeHost(m_upload);
        m_upload = nullptr, m_uploadBytes = 0;
        ATTNSCOPE_CUDA_TRY(cudaHostAlloc(&m_upload, uploadBytes, cudaHostAllocDefault));
        m_uploadBytes = uploadBytes;
    }
    size_t uploadAt = 0;
    auto stage = [&](const void* src, size_t bytes) -> const void* {
        std::byte* dst = static_cast<std::byte*>(m_upload) + uploadAt;
        if (bytes) std::memcpy(dst, src, bytes);
        uploadAt += (bytes + 15) / 16 * 16;
        return dst;
    };
    auto toDevice = [&](DeviceArray& dst, const void* src, size_t bytes, const char* what) -> Status {
        ATTNSCOPE_TRY_STATUS(dst.allocate(std::max<size_t>(bytes, 1), what));
        if (bytes)
            ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(dst.get(), stage(src, bytes), bytes, cudaMemcpyHostToDevice, m_compute));
        return {};
    };
    // On an early return the queued kernels still use this layer's buffers: let them finish.
    struct Drain {
        cudaStream_t a, b;
        ~Drain() { cudaStreamSynchronize(a), cudaStreamSynchronize(b); }
    } drain{m_compute, m_aux};

    for (int h0 = 0; h0 < cfg.heads; h0 += groupHeads) {
        const int n = std::min(groupHeads, cfg.heads - h0);
        uploadAt = 0;
        int passSlot = 0;
        std::vector<HeadPassArgs> args(static_cast<size_t>(n));
        for (int x = 0; x < n; ++x) {
            const int h = h0 + x;
            const AttentionSpec& spec = specs[size_t(h)];
            HeadBuffers& b = bufAt(x);
            HeadPassArgs& a = args[size_t(x)];
            const int64_t origin = spec.mask.causal ? 0 : T - 1;
            a.q = static_cast<const uint16_t*>(slot->q.get()) + size_t(h) * headElems;
            a.k = static_cast<const uint16_t*>(slot->k.get()) + size_t(h / group) * headElems;
            a.v = static_cast<const uint16_t*>(vBf16) + size_t(h / group) * headElems;
            a.spec = toDeviceSpec(spec);
            if (!spec.mask.excludedKeys.empty()) {
                ATTNSCOPE_TRY_STATUS(excluded[size_t(h)].upload(spec.mask.excludedKeys.data(),
                                                                spec.mask.excludedKeys.size() * 8, "excluded keys"));
                a.spec.excluded = excluded[size_t(h)].as<long long>();
                a.spec.excludedCount = int(spec.mask.excludedKeys.size());
            }
            a.origin = origin;
            ATTNSCOPE_TRY_STATUS(b.rowStats.allocate(size_t(kRowStatCount) * size_t(T) * 4, "row sums"));
            ATTNSCOPE_TRY_STATUS(b.column.allocate(size_t(T) * 4, "column sums"));
            ATTNSCOPE_TRY_STATUS(b.offset.allocate(size_t(origin + T) * 4, "offset sums"));
            ATTNSCOPE_TRY_STATUS(b.estColumn.allocate(size_t(T) * 4, "estimate column sums"));
            ATTNSCOPE_TRY_STATUS(b.estOffset.allocate(size_t(origin + T) * 4, "estimate offset sums"));
            ATTNSCOPE_TRY_STATUS(b.numerator.allocate(size_t(Tpad) * size_t(dimPad) * 4, "dense output"));
            ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.column.get(), 0, size_t(T) * 4, m_compute));
            ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.offset.get(), 0, size_t(origin + T) * 4, m_compute));
            ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.estColumn.get(), 0, size_t(T) * 4, m_compute));
            ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.estOffset.get(), 0, size_t(origin + T) * 4, m_compute));
            for (size_t s = 0; s < blockSizes.size(); ++s) {
                ATTNSCOPE_TRY_STATUS(b.blocks[s].allocate(blockElems[s] * 4, "block mass"));
                ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.blocks[s].get(), 0, blockElems[s] * 4, m_compute));
                a.blocks[s] = b.blocks[s].as<float>();
            }
            for (auto& m : b.maskOut) ATTNSCOPE_TRY_STATUS(m.allocate(size_t(T) * 4, "candidate mask mass"));
            a.lse = m_lse.as<float>() + size_t(x) * size_t(T);
            a.rowStats = b.rowStats.as<float>();
            a.numerator = b.numerator.as<float>();
        }
        ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(m_maskError.get(), 0, size_t(n) * 8 * sizeof(double), m_compute));
        auto launch = [&](PassKind kind, int64_t rowBegin, int64_t rowEnd, const char* name) -> Status {
            if (passSlot >= kPassesPerGroup)
                return Status{ErrorCode::Internal, "GPU analysis: too many passes per group"};
            ATTNSCOPE_FAULT_POINT(FaultSite::AnalysisLaunch, std::string("launch of the analysis pass '") + name + "'");
            HeadPassArgs* slotArgs = dHeads.as<HeadPassArgs>() + size_t(passSlot++) * size_t(groupHeads);
            const size_t argBytes = sizeof(HeadPassArgs) * size_t(n);
            ATTNSCOPE_CUDA_TRY(
                cudaMemcpyAsync(slotArgs, stage(args.data(), argBytes), argBytes, cudaMemcpyHostToDevice, m_compute));
            LayerPassArgs la = base;
            la.heads = slotArgs;
            la.heads_ = n;
            la.rowBegin = rowBegin, la.rowEnd = rowEnd;
            // The estimate covers a few rows: its CTAs split the keys instead, to fill the GPU.
            if (kind == PassKind::Estimate)
                la.keySplit =
                    int(std::clamp<int64_t>(int64_t(m_smCount) * 4 / std::max(1, n), 1, (T + kTile - 1) / kTile));
            // Each pass is timed with events (GpuEngine::LayerTimes::passes, `analyze --timing`).
            PassEvents ev;
            ev.name = name;
            ATTNSCOPE_CUDA_TRY(cudaEventCreate(&ev.start));
            ATTNSCOPE_CUDA_TRY(cudaEventCreate(&ev.stop));
            events.push_back(ev);
            ATTNSCOPE_CUDA_TRY(cudaEventRecord(ev.start, m_compute));
            ATTNSCOPE_TRY_STATUS(launchAnalysisPass(kind, la, m_compute));
            if (kind == PassKind::Stats && la.tokenIds == nullptr && m_templateReady && m_pairCount > 0 &&
                int64_t(context.tokenIds.size()) == T)
                ATTNSCOPE_TRY_STATUS(launchTemplatePairs(la, m_pairs.get(), m_pairCount, m_compute));
            ATTNSCOPE_CUDA_TRY(cudaEventRecord(ev.stop, m_compute));
            return {};
        };
        // Pass 1: on the forward kernel when every head of the group has a mask it compiles in
        // (and ATTNSCOPE_ANALYSIS_LSE does not ask for another), else on a pass kernel.
        bool forward = m_lsePath == LsePath::Forward;
        for (int x = 0; x < n; ++x) forward = forward && ForwardLse::takes(specs[size_t(h0 + x)], dim);
        forward = forward && n % group == 0 && specs[size_t(h0)].mask.causal == specs[size_t(h0 + n - 1)].mask.causal;
        for (int x = 1; x < n && forward; ++x)
            forward = specs[size_t(h0 + x)].mask.window == specs[size_t(h0)].mask.window &&
                      specs[size_t(h0 + x)].mask.causal == specs[size_t(h0)].mask.causal &&
                      specs[size_t(h0 + x)].scale == specs[size_t(h0)].scale;
        if (forward) {
            PassEvents ev;
            ev.name = "lse (forward kernel)";
            ATTNSCOPE_CUDA_TRY(cudaEventCreate(&ev.start));
            ATTNSCOPE_CUDA_TRY(cudaEventCreate(&ev.stop));
            events.push_back(ev);
            ATTNSCOPE_CUDA_TRY(cudaEventRecord(ev.start, m_compute));
            const void* v16 = static_cast<const uint16_t*>(slot->v.get()) + size_t(h0 / group) * headElems;
            ATTNSCOPE_TRY_STATUS(m_forwardLse.run(args[0].q, args[0].k, v16, elem, n, n / group, int(T), dim,
                                                  specs[size_t(h0)], m_lse.as<float>(), m_compute));
            ATTNSCOPE_CUDA_TRY(cudaEventRecord(ev.stop, m_compute));
        } else if (m_lsePath == LsePath::Wmma) {
            ATTNSCOPE_TRY_STATUS(launch(PassKind::Lse, 0, T, "lse (wmma)"));
        } else {
            ATTNSCOPE_TRY_STATUS(launch(PassKind::LseFragments, 0, T, "lse"));
        }
        // NaN/Inf counts (checked before any sums are used) and the estimate's sums come back
        // while the stats pass runs.
        if (h0 == 0) ATTNSCOPE_TRY_STATUS(toHost(hostCounts, counts.get(), size_t(countSlots) * 8, m_compute));
        if (masks) {
            for (int x = 0; x < n; ++x) {
                args[size_t(x)].column = bufAt(x).estColumn.as<float>();
                args[size_t(x)].offset = bufAt(x).estOffset.as<float>();
            }
            ATTNSCOPE_TRY_STATUS(launch(PassKind::Estimate, T - estimateRows, T, "estimate"));
            for (int x = 0; x < n; ++x) {
                ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.estColumn), bufAt(x).estColumn.get(), uT * 4, m_compute));
                ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.estOffset), bufAt(x).estOffset.get(),
                                            size_t(args[size_t(x)].origin + T) * 4, m_compute));
            }
        }
        cudaEvent_t estimated = nullptr, statsDone = nullptr, statsHome = nullptr, masksHome = nullptr;
        ATTNSCOPE_TRY_STATUS(mark(m_compute, estimated));
        for (int x = 0; x < n; ++x) {
            args[size_t(x)].column = bufAt(x).column.as<float>();
            args[size_t(x)].offset = bufAt(x).offset.as<float>();
        }
        ATTNSCOPE_TRY_STATUS(launch(PassKind::Stats, 0, T, "stats"));
        ATTNSCOPE_TRY_STATUS(mark(m_compute, statsDone));
        // The stats pass's sums come back on the second stream while the masked passes run.
        ATTNSCOPE_CUDA_TRY(cudaStreamWaitEvent(m_aux, statsDone, 0));
        for (int x = 0; x < n; ++x) {
            HeadBuffers& b = bufAt(x);
            ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.lse), m_lse.as<float>() + size_t(x) * uT, uT * 4, m_aux));
            ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.rows), b.rowStats.get(), kRowStatCount * uT * 4, m_aux));
            ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.column), b.column.get(), uT * 4, m_aux));
            ATTNSCOPE_TRY_STATUS(
                toHost(hostAt(x, hl.offset), b.offset.get(), size_t(args[size_t(x)].origin + T) * 4, m_aux));
            size_t at = hl.blocks;
            for (size_t s = 0; s < blockSizes.size(); ++s) {
                ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, at), b.blocks[s].get(), blockElems[s] * 4, m_aux));
                at += blockElems[s];
            }
        }
        ATTNSCOPE_TRY_STATUS(mark(m_aux, statsHome));

        ATTNSCOPE_CUDA_TRY(cudaEventSynchronize(estimated));
        if (h0 == 0) {
            for (int at = 0; at < countSlots; ++at) {
                if (hostCounts[at] == 0) continue;
                const int w = at < cfg.heads ? 0 : at < cfg.heads + kvHeads ? 1 : 2;
                const int h = w == 0 ? at : w == 1 ? at - cfg.heads : at - cfg.heads - kvHeads;
                return Status{ErrorCode::NumericValues, trace.path() + ": tensor layers." + std::to_string(layer) +
                                                            "." + whichName(w) + " head " + std::to_string(h) +
                                                            " has " + std::to_string(hostCounts[at]) +
                                                            " NaN/Inf values, expected finite values for the analysis"};
            }
        }
        std::vector<std::vector<CandidateMask>> cands(static_cast<size_t>(n));
        auto maskedPass = [&](int which) -> Status {
            for (int x = 0; x < n; ++x) {
                HeadPassArgs& a = args[size_t(x)];
                HeadBuffers& b = bufAt(x);
                a.maskMass = b.maskOut[which].as<float>();
                a.maskError = m_maskError.as<double>() + size_t(x) * 8 + size_t(which) * 2;
                if (which < 3) {
                    const CandidateMask& c = cands[size_t(x)][size_t(which)];
                    a.maskKind = c.kind == CandidateMask::Kind::Window       ? kPassMaskWindow
                                 : c.kind == CandidateMask::Kind::SinkWindow ? kPassMaskSinkWindow
                                                                             : kPassMaskVerticalSlash;
                    a.maskWindow = c.window, a.maskSinks = c.sinks;
                    a.vertical = b.vertical.as<unsigned char>();
                    a.slash = b.slash.as<unsigned char>();
                    a.slashPrefix = b.slashPrefix.as<int>();
                    a.verticalTiles = b.verticalTiles.as<unsigned char>();
                } else {
                    a.maskKind = kPassMaskBlocks;
                    a.keptBlocks = b.keptBlocks.as<unsigned char>();
                    a.maskBlockSize = options.masks.topKBlockSize;
                    a.maskBlockCols = (T + options.masks.topKBlockSize - 1) / options.masks.topKBlockSize;
                }
            }
            static const char* const names[] = {"window", "sink+window", "vertical-slash", "top-k"};
            return launch(PassKind::Masked, 0, T, names[which]);
        };
        // Candidate masks from the estimate (on the host, while the stats pass runs), then the
        // window, sink+window and vertical-slash passes queue behind it.
        struct VsHost {
            std::vector<int32_t> prefix;
            std::vector<uint8_t> tiles;
        };
        std::vector<VsHost> vsHost(static_cast<size_t>(n));
        if (masks) {
            runSpread(n, [&](int64_t x) {
                const size_t origin = size_t(args[size_t(x)].origin);
                const float* ec = hostAt(int(x), hl.estColumn);
                const float* eo = hostAt(int(x), hl.estOffset);
                cands[size_t(x)] =
                    candidateMasks(std::vector<double>(ec, ec + uT), std::vector<double>(eo, eo + origin + uT), T,
                                   specs[size_t(h0 + x)].mask.causal, options.masks);
                const CandidateMask& vs = cands[size_t(x)][2];
                VsHost& v = vsHost[size_t(x)];
                v.prefix.assign(vs.slash.size() + 1, 0);
                for (size_t o = 0; o < vs.slash.size(); ++o) v.prefix[o + 1] = v.prefix[o] + vs.slash[o];
                v.tiles.assign(size_t((T + kTile - 1) / kTile), 0);
                for (int64_t j = 0; j < T; ++j) v.tiles[size_t(j / kTile)] |= vs.vertical[size_t(j)];
            });
            for (int x = 0; x < n; ++x) {
                const CandidateMask& vs = cands[size_t(x)][2];
                HeadBuffers& b = bufAt(x);
                ATTNSCOPE_TRY_STATUS(toDevice(b.vertical, vs.vertical.data(), vs.vertical.size(), "vertical keys"));
                ATTNSCOPE_TRY_STATUS(toDevice(b.slash, vs.slash.data(), vs.slash.size(), "slash offsets"));
                ATTNSCOPE_TRY_STATUS(toDevice(b.slashPrefix, vsHost[size_t(x)].prefix.data(),
                                              vsHost[size_t(x)].prefix.size() * 4, "slash prefix"));
                ATTNSCOPE_TRY_STATUS(toDevice(b.verticalTiles, vsHost[size_t(x)].tiles.data(),
                                              vsHost[size_t(x)].tiles.size(), "vertical tiles"));
            }
            for (int which = 0; which < 3; ++which) ATTNSCOPE_TRY_STATUS(maskedPass(which));
        }

        // Top-k blocks from each head's block mass at the top-k block size (on the host, while
        // the masked passes run), then its pass; the masks' sums come back.
        ATTNSCOPE_CUDA_TRY(cudaEventSynchronize(statsHome));
        std::vector<std::vector<uint8_t>> kept(static_cast<size_t>(n));
        if (masks) {
            const size_t topIdx = size_t(std::find(blockSizes.begin(), blockSizes.end(), options.masks.topKBlockSize) -
                                         blockSizes.begin());
            const size_t topAt =
                hl.blocks + std::accumulate(blockElems.begin(), blockElems.begin() + topIdx, size_t(0));
            const int64_t B = options.masks.topKBlockSize, nb = (T + B - 1) / B;
            runSpread(n, [&](int64_t x) {
                kept[size_t(x)] = topKBlocks(hostAt(int(x), topAt), allowedBlockFlags(specs[size_t(h0 + x)].mask, T, B),
                                             nb, options.masks.topKBlocks);
            });
            for (int x = 0; x < n; ++x)
                ATTNSCOPE_TRY_STATUS(
                    toDevice(bufAt(x).keptBlocks, kept[size_t(x)].data(), kept[size_t(x)].size(), "top-k blocks"));
            ATTNSCOPE_TRY_STATUS(maskedPass(3));
            for (int x = 0; x < n; ++x)
                for (int m = 0; m < 4; ++m)
                    ATTNSCOPE_TRY_STATUS(
                        toHost(hostAt(x, hl.maskMass + size_t(m) * uT), bufAt(x).maskOut[m].get(), uT * 4, m_compute));
            for (int x = 0; x < n; ++x)
                ATTNSCOPE_TRY_STATUS(toHost(hostAt(x, hl.maskError), m_maskError.as<double>() + size_t(x) * 8,
                                            8 * sizeof(double), m_compute));
        }
        ATTNSCOPE_TRY_STATUS(mark(m_compute, masksHome));
        // The stats sums into HeadSums while the masked passes run.
        runSpread(n, [&](int64_t x) {
            HeadSums& hs = out[size_t(h0 + x)];
            const size_t origin = size_t(args[size_t(x)].origin);
            hs.tokens = T;
            const float* lse = hostAt(int(x), hl.lse);
            hs.lse.assign(lse, lse + uT);
            std::vector<double>* rows[kRowStatCount] = {&hs.mass,      &hs.plogp,     &hs.distance, &hs.first,
                                                        &hs.self,      &hs.recent,    &hs.prev,     &hs.next,
                                                        &hs.duplicate, &hs.induction, &hs.repeat,   &hs.document};
            for (int r = 0; r < kRowStatCount; ++r) {
                const float* row = hostAt(int(x), hl.rows + size_t(r) * uT);
                rows[r]->assign(row, row + uT);
            }
            const float* column = hostAt(int(x), hl.column);
            hs.column.assign(column, column + uT);
            const float* offset = hostAt(int(x), hl.offset);
            hs.offset.assign(offset, offset + origin + uT);
            hs.blockSizes = blockSizes;
            size_t at = hl.blocks;
            for (size_t s = 0; s < blockSizes.size(); ++s) {
                const float* blocks = hostAt(int(x), at);
                hs.blocks.emplace_back(blocks, blocks + blockElems[s]);
                at += blockElems[s];
            }
        });
        ATTNSCOPE_CUDA_TRY(cudaEventSynchronize(masksHome));
        if (masks) {
            for (int x = 0; x < n; ++x) {
                HeadSums& hs = out[size_t(h0 + x)];
                const double* err = reinterpret_cast<const double*>(hostAt(x, hl.maskError));
                for (int m = 0; m < 4; ++m) {
                    HeadSums::Masked r;
                    if (m < 3)
                        r.mask = std::move(cands[size_t(x)][size_t(m)]);
                    else
                        r.keptBlocks = std::move(kept[size_t(x)]);
                    const float* mass = hostAt(x, hl.maskMass + size_t(m) * uT);
                    r.mass.assign(mass, mass + uT);
                    r.errorDiff2 = err[2 * m], r.errorRef2 = err[2 * m + 1];
                    hs.masked.push_back(std::move(r));
                }
            }
        }
        if (progress && !progress(double(h0 + n) / cfg.heads, "GPU analysis"))
            return Status{ErrorCode::Cancelled, "GPU analysis cancelled"};
    }
    m_times.computeMs = msSince(tCompute);
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_compute));
    double kernelMs = 0;
    for (const PassEvents& ev : events) {
        float ms = 0;
        cudaEventElapsedTime(&ms, ev.start, ev.stop);
        kernelMs += ms;
        auto it =
            std::find_if(m_times.passes.begin(), m_times.passes.end(), [&](auto& p) { return p.first == ev.name; });
        if (it == m_times.passes.end())
            m_times.passes.emplace_back(ev.name, double(ms));
        else
            it->second += ms;
    }
    m_times.passes.emplace_back("host and copies", std::max(0.0, m_times.computeMs - kernelMs));
    return out;
}

}  // namespace attnscope::gpu
