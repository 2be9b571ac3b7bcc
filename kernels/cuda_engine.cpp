// The CUDA GpuEngine: owns one stream; uploads problems, builds and caches block masks, runs
// the variant kernels, times them with events, and runs the GPU analysis passes.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include "attnscope/gpu.h"
#include "cuda_engine.h"
#include "cudnn_sdpa.h"
#include "device_variant.h"
#include "fault_injection.h"

namespace attnscope::gpu {
namespace {

class CudaBuffers final : public GpuBuffers {
public:
    const AttentionProblem& problem() const override { return m_problem; }

    AttentionProblem m_problem;
    int64_t m_queryTokens = 0;
    DeviceArray m_q, m_k, m_v, m_o, m_lse, m_workspace;
    DeviceArray m_decodeCounters;  ///< zeroed when allocated; the decode kernel leaves them at 0
    std::map<std::string, std::unique_ptr<DeviceVariant>> m_variants;
};

ElemType elemOf(GpuDType t) { return t == GpuDType::BF16 ? ElemType::BF16 : ElemType::F16; }

KernelLaunchInfo toInfo(const LaunchRecord& r) {
    KernelLaunchInfo k;
    k.name = r.name;
    k.grid[0] = int(r.grid.x), k.grid[1] = int(r.grid.y), k.grid[2] = int(r.grid.z);
    k.block[0] = int(r.block.x), k.block[1] = int(r.block.y), k.block[2] = int(r.block.z);
    k.registers = r.registers;
    k.sharedBytes = r.sharedBytes;
    return k;
}

float scaleOf(const AttentionProblem& p) {
    return p.scale > 0 ? p.scale : 1.0f / std::sqrt(static_cast<float>(p.headDim));
}

}  // namespace

CudaEngine::CudaEngine(int device) : m_device(device) {
    cudaDeviceProp prop{};
    m_info.available = cudaGetDeviceProperties(&prop, device) == cudaSuccess && cudaSetDevice(device) == cudaSuccess &&
                       cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking) == cudaSuccess;
    if (!m_info.available) {
        m_info.reason = std::string("CUDA device ") + std::to_string(device) +
                        " could not be initialised: " + cudaGetErrorString(cudaGetLastError());
        return;
    }
    m_info.name = prop.name;
    m_info.computeMajor = prop.major;
    m_info.computeMinor = prop.minor;
    m_info.smCount = prop.multiProcessorCount;
    m_info.memoryBytes = prop.totalGlobalMem;
    m_info.l2Bytes = static_cast<uint64_t>(prop.l2CacheSize);
    cudaDriverGetVersion(&m_info.driverVersion);
    cudaRuntimeGetVersion(&m_info.runtimeVersion);
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device) == cudaSuccess) m_info.smClockMHz = khz / 1000;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess)
        m_info.memClockMHz = khz / 1000;
    if (prop.major < 8) {
        m_info.available = false;
        m_info.reason = std::string(prop.name) + " is compute capability " + std::to_string(prop.major) + "." +
                        std::to_string(prop.minor) + "; the kernels need 8.0 or newer (mma.sync bf16, cp.async)";
    }
    // The wgmma kernels are built for sm_90a, which runs on compute capability 9.0 only.
    // ATTNSCOPE_FLEX_PATH=mma forces the mma.sync kernels (to compare the two).
    const char* forced = std::getenv("ATTNSCOPE_FLEX_PATH");
    const bool hopper = prop.major == 9 && prop.minor == 0;
    m_forwardPath = hopper && !(forced && std::string(forced) == "mma") ? ForwardPath::Wgmma : ForwardPath::MmaSync;
    m_info.forwardKernel = m_forwardPath == ForwardPath::Wgmma ? "wgmma (sm_90a)" : "mma.sync";
    const char* mapKernel = std::getenv("ATTNSCOPE_MAP_KERNEL");
    m_mapWgmma = m_forwardPath == ForwardPath::Wgmma && !(mapKernel && std::string(mapKernel) == "mma");
}

CudaEngine::~CudaEngine() {
    m_cudnn.reset();  // before the stream it was bound to
    if (m_stream) cudaStreamDestroy(m_stream);
}

Status CudaEngine::requireDevice() const {
    if (!m_info.available) return {ErrorCode::Unsupported, m_info.reason};
    // With several GPUs each engine may be driven from its own thread: bind this thread.
    ATTNSCOPE_CUDA_TRY(cudaSetDevice(m_device));
    return {};
}

Result<std::unique_ptr<GpuBuffers>> CudaEngine::upload(const AttentionProblem& p, const std::vector<float>& qHost,
                                                       const std::vector<float>& kHost,
                                                       const std::vector<float>& vHost) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    const int64_t tq = p.queryTokens > 0 ? p.queryTokens : p.tokens;
    if (p.batch <= 0 || p.heads <= 0 || p.kvHeads <= 0 || p.heads % p.kvHeads != 0)
        return Status{ErrorCode::InvalidArgument,
                      "AttentionProblem: batch, heads, kvHeads must be > 0 and heads a "
                      "multiple of kvHeads (got " +
                          std::to_string(p.heads) + ", " + std::to_string(p.kvHeads) + ")"};
    if (p.tokens <= 0 || p.tokens > (int64_t(1) << 30) || tq > p.tokens)
        return Status{ErrorCode::InvalidArgument,
                      "AttentionProblem.tokens must be in [1, 2^30] and queryTokens <= "
                      "tokens (got " +
                          std::to_string(p.tokens) + ", " + std::to_string(tq) + ")"};
    if (p.headDim != 64 && p.headDim != 128)
        return Status{ErrorCode::Unsupported,
                      "AttentionProblem.headDim " + std::to_string(p.headDim) + ": the kernels support 64 and 128"};
    const size_t qCount = size_t(p.batch) * p.heads * tq * p.headDim;
    const size_t kvCount = size_t(p.batch) * p.kvHeads * p.tokens * p.headDim;
    auto shapeError = [&](const char* name, size_t got, size_t want) {
        return Status{ErrorCode::Shape,
                      std::string("upload: ") + name + " holds " + std::to_string(got) + " floats, expected " +
                          std::to_string(want) + " ([B,H,T,D] = [" + std::to_string(p.batch) + "," +
                          std::to_string(name[0] == 'q' ? p.heads : p.kvHeads) + "," +
                          std::to_string(name[0] == 'q' ? tq : p.tokens) + "," + std::to_string(p.headDim) + "])"};
    };
    if (qHost.size() != qCount) return shapeError("q", qHost.size(), qCount);
    if (kHost.size() != kvCount) return shapeError("k", kHost.size(), kvCount);
    if (vHost.size() != kvCount) return shapeError("v", vHost.size(), kvCount);
    auto b = std::make_unique<CudaBuffers>();
    b->m_problem = p;
    b->m_queryTokens = tq;
    ATTNSCOPE_CUDA_TRY(cudaSetDevice(m_device));
    auto q = toDType(qHost, p.dtype), k = toDType(kHost, p.dtype), v = toDType(vHost, p.dtype);
    ATTNSCOPE_TRY_STATUS(b->m_q.upload(q.data(), q.size() * 2, "q"));
    ATTNSCOPE_TRY_STATUS(b->m_k.upload(k.data(), k.size() * 2, "k"));
    ATTNSCOPE_TRY_STATUS(b->m_v.upload(v.data(), v.size() * 2, "v"));
    ATTNSCOPE_TRY_STATUS(b->m_o.allocate(qCount * 2, "output O"));
    ATTNSCOPE_TRY_STATUS(b->m_lse.allocate(size_t(p.batch) * p.heads * tq * sizeof(float), "output lse"));
    return std::unique_ptr<GpuBuffers>(std::move(b));
}

Result<std::vector<KernelLaunchInfo>> CudaEngine::run(const VariantSpec& v, GpuBuffers& buffers) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    ATTNSCOPE_FAULT_POINT(FaultSite::ProfileLaunch,
                          std::string("launch of the ") + variantKindName(v.kind) + " variant's kernel");
    auto& b = static_cast<CudaBuffers&>(buffers);
    const AttentionProblem& p = b.m_problem;
    LaunchLog log;
    if (v.kind == VariantKind::Decode) {
        if (b.m_queryTokens != 1)
            return Status{ErrorCode::InvalidArgument, "decode needs AttentionProblem.queryTokens == 1 (got " +
                                                          std::to_string(b.m_queryTokens) + ")"};
        DecodeArgs a;
        a.q = b.m_q.get(), a.k = b.m_k.get(), a.v = b.m_v.get(), a.o = b.m_o.get(), a.lse = b.m_lse.as<float>();
        a.batch = p.batch, a.heads = p.heads, a.kvHeads = p.kvHeads, a.tokens = int(p.tokens), a.headDim = p.headDim;
        a.scale = scaleOf(p);
        a.elem = elemOf(p.dtype);
        a.splits = decodeSplits(p.batch, p.heads, p.kvHeads, a.tokens, m_info.smCount);
        ATTNSCOPE_TRY_STATUS(b.m_workspace.allocate(decodeWorkspaceFloats(a) * sizeof(float), "decode partials"));
        a.partial = b.m_workspace.as<float>();
        const size_t counterBytes = decodeCounterCount(a) * sizeof(unsigned);
        if (b.m_decodeCounters.bytes() < counterBytes) {
            ATTNSCOPE_TRY_STATUS(b.m_decodeCounters.allocate(counterBytes, "decode split counters"));
            ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.m_decodeCounters.get(), 0, counterBytes, m_stream));
        }
        a.counters = b.m_decodeCounters.as<unsigned>();
        ATTNSCOPE_TRY_STATUS(launchDecode(a, m_stream, &log));
    } else if (b.m_queryTokens != p.tokens) {
        return Status{ErrorCode::InvalidArgument,
                      std::string("variant ") + variantKindName(v.kind) + " needs queryTokens == tokens (prefill)"};
    } else if (v.impl == VariantImpl::Cudnn) {
        // The vendor baseline: cuDNN's fused SDPA on the same buffers and stream.
        if (!m_cudnn) m_cudnn = std::make_unique<CudnnSdpa>();
        return m_cudnn->run(v, p, {b.m_q.get(), b.m_k.get(), b.m_v.get(), b.m_o.get(), b.m_lse.as<float>()}, m_stream);
    } else if (v.kind == VariantKind::LinearAttention) {
        LinearArgs a;
        a.q = b.m_q.get(), a.k = b.m_k.get(), a.v = b.m_v.get(), a.o = b.m_o.get(), a.lse = b.m_lse.as<float>();
        a.batch = p.batch, a.heads = p.heads, a.kvHeads = p.kvHeads, a.tokens = int(p.tokens), a.headDim = p.headDim;
        a.decay = v.decay;
        a.elem = elemOf(p.dtype);
        ATTNSCOPE_TRY_STATUS(b.m_workspace.allocate(linearWorkspaceFloats(a) * sizeof(float), "linear states"));
        a.states = b.m_workspace.as<float>();
        ATTNSCOPE_TRY_STATUS(launchLinear(a, m_stream, &log));
    } else {
        auto dv = variantFor(b, v, &log);
        if (!dv) return dv.status();
        ForwardArgs a;
        a.params.q = b.m_q.get(), a.params.k = b.m_k.get(), a.params.v = b.m_v.get();
        a.params.o = b.m_o.get(), a.params.lse = b.m_lse.as<float>();
        a.params.batch = p.batch, a.params.heads = p.heads, a.params.kvHeads = p.kvHeads;
        a.params.tokens = int(p.tokens);
        a.params.scale = scaleOf(p);
        a.params.mask = (*dv)->view;
        a.mask = (*dv)->functor;
        a.program = (*dv)->program;
        a.score = (*dv)->score;
        a.headDim = p.headDim;
        a.elem = elemOf(p.dtype);
        a.path = m_forwardPath;
        if ((*dv)->jit)
            ATTNSCOPE_TRY_STATUS(jitLaunchForward(*(*dv)->jit, a, (*dv)->jitArrays, m_stream, &log));
        else
            ATTNSCOPE_TRY_STATUS(launchForward(a, m_stream, &log));
    }
    std::vector<KernelLaunchInfo> out;
    for (const auto& r : log) out.push_back(toInfo(r));
    return out;
}

Result<const DeviceVariant*> CudaEngine::variantFor(GpuBuffers& buffers, const VariantSpec& v, LaunchLog* log) {
    auto& b = static_cast<CudaBuffers&>(buffers);
    const std::string key = deviceVariantKey(v, b.m_problem.tokens);
    auto it = b.m_variants.find(key);
    if (it == b.m_variants.end()) {
        auto built = buildDeviceVariant(v, b.m_problem.tokens, b.m_problem.heads, m_stream, log);
        if (!built) return built.status();
        it = b.m_variants.emplace(key, std::move(*built)).first;
    }
    return static_cast<const DeviceVariant*>(it->second.get());
}

Status CudaEngine::synchronize() {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
    return {};
}

Status CudaEngine::download(GpuBuffers& buffers, std::vector<float>& out, std::vector<float>& lse) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    auto& b = static_cast<CudaBuffers&>(buffers);
    const AttentionProblem& p = b.m_problem;
    const size_t rows = size_t(p.batch) * p.heads * b.m_queryTokens;
    std::vector<uint16_t> raw(rows * p.headDim);
    lse.resize(rows);
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(raw.data(), b.m_o.get(), raw.size() * 2, cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(
        cudaMemcpyAsync(lse.data(), b.m_lse.get(), rows * sizeof(float), cudaMemcpyDeviceToHost, m_stream));
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(m_stream));
    out = fromDType(raw, p.dtype);
    return {};
}

Status CudaEngine::poisonOutput(GpuBuffers& buffers) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    auto& b = static_cast<CudaBuffers&>(buffers);
    // All-ones bytes are NaN in bf16, fp16 and fp32 alike.
    constexpr int kNaNBytes = 0xFF;
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.m_o.get(), kNaNBytes, b.m_o.bytes(), m_stream));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(b.m_lse.get(), kNaNBytes, b.m_lse.bytes(), m_stream));
    return {};
}

Status CudaEngine::flushL2() {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    const size_t bytes = std::max<size_t>(2 * m_info.l2Bytes, size_t(1) << 20);
    ATTNSCOPE_TRY_STATUS(m_flush.allocate(bytes, "L2 flush buffer"));
    ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(m_flush.get(), 0, bytes, m_stream));
    return {};
}

Result<double> CudaEngine::timeVariant(const VariantSpec& v, GpuBuffers& buffers, int warmup, int reps) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    if (reps <= 0) return Status{ErrorCode::InvalidArgument, "timeVariant: reps must be > 0"};
    for (int i = 0; i < std::max(1, warmup); ++i) {  // the first run also builds the block mask
        auto r = run(v, buffers);
        if (!r) return r.status();
    }
    std::vector<cudaEvent_t> events(2 * size_t(reps));
    for (auto& e : events) ATTNSCOPE_CUDA_TRY(cudaEventCreate(&e));
    Status status;
    for (int i = 0; i < reps && status.ok(); ++i) {
        status = cudaStatus(cudaEventRecord(events[2 * i], m_stream), "cudaEventRecord", __FILE__, __LINE__);
        if (!status) break;
        auto r = run(v, buffers);
        if (!r)
            status = r.status();
        else
            status = cudaStatus(cudaEventRecord(events[2 * i + 1], m_stream), "cudaEventRecord", __FILE__, __LINE__);
    }
    std::vector<double> ms;
    if (status.ok()) status = synchronize();
    for (int i = 0; i < reps && status.ok(); ++i) {
        float t = 0;
        status = cudaStatus(cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]), "cudaEventElapsedTime",
                            __FILE__, __LINE__);
        ms.push_back(t);
    }
    for (auto& e : events) cudaEventDestroy(e);
    if (!status) return status;
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
}

Result<long long> CudaEngine::computedBlocks(const VariantSpec& v, GpuBuffers& buffers) {
    ATTNSCOPE_TRY_STATUS(requireDevice());
    auto dv = variantFor(buffers, v, nullptr);
    if (!dv) return dv.status();
    return (*dv)->computedBlocks;
}

std::unique_ptr<GpuEngine> createCudaEngine(std::string* reason) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        if (reason)
            *reason = err != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorName(err) + " (" +
                                               cudaGetErrorString(err) + ")"
                                         : "no CUDA device found";
        cudaGetLastError();
        return nullptr;
    }
    return std::make_unique<CudaEngine>(0);
}

}  // namespace attnscope::gpu
