// cuDNN SDPA through the backend graph API. The graph is the pattern cuDNN's fused flash-attention
// engines recognise (what cudnn-frontend's SDPA node lowers to before cuDNN 9.21):
//   S = Q·Kᵀ (fp32) → ·scale → [softcap: c·tanh(S/c)] → [ALiBi / rel. bias: + slope_h·(k − q)]
//   → [causal: q ≥ k, else −inf] → [sliding: k + W > q, else −inf]
//   → softmax (max, exp(S − max), sum; stats = max + log sum) → P (16-bit) · V = O.
#include "cudnn_sdpa.h"

#include <array>
#include <cmath>
#include <limits>

#include "cudnn_api.h"
#include "device_memory.h"

namespace attnscope::gpu {
namespace {

using Dims = std::array<int64_t, 4>;

// Tensor ids of the variant pack; virtual tensors are numbered from kFirstVirtualUid.
enum : int64_t {
    kUidQ = 1,
    kUidK,
    kUidV,
    kUidO,
    kUidStats,
    kUidScale,
    kUidNegInf,
    kUidWindow,
    kUidSoftcap,
    kUidSlopes,
    kFirstVirtualUid = 100,
};
constexpr int64_t kAlignmentBytes = 16;
constexpr int64_t kRowAxis = 2, kColumnAxis = 3;  // S is [B, H, Tq, Tk]
// Deprecated names in cuDNN 9's headers (the handle is still read when given); by value to keep
// the build free of deprecation warnings.
constexpr auto kOperationGraphHandle = cudnnBackendAttributeName_t(800);  // CUDNN_ATTR_OPERATIONGRAPH_HANDLE
constexpr auto kExecutionPlanHandle = cudnnBackendAttributeName_t(400);   // CUDNN_ATTR_EXECUTION_PLAN_HANDLE

/// Owns the descriptors of one graph and its plan. Calls after the first error do nothing; the
/// error (the call, the descriptor and cuDNN's message) is `status()`.
class Graph {
public:
    explicit Graph(const CudnnApi& api) : m_api(api) {}
    Graph(const Graph&) = delete;
    Graph& operator=(const Graph&) = delete;
    ~Graph() {
        for (auto it = m_owned.rbegin(); it != m_owned.rend(); ++it) m_api.destroyDescriptor(*it);
    }
    const Status& status() const { return m_status; }
    bool ok() const { return m_status.ok(); }

    cudnnBackendDescriptor_t create(cudnnBackendDescriptorType_t type, const char* what) {
        cudnnBackendDescriptor_t d = nullptr;
        if (ok() && check(m_api.createDescriptor(type, &d), "create", what)) m_owned.push_back(d);
        return d;
    }
    void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
             int64_t count, const void* values, const char* what) {
        if (ok()) check(m_api.setAttribute(d, name, type, count, values), "set an attribute of", what);
    }
    void setDesc(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendDescriptor_t value,
                 const char* what) {
        set(d, name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &value, what);
    }
    bool finalize(cudnnBackendDescriptor_t d, const char* what) {
        return ok() && check(m_api.finalize(d), "finalize", what);
    }

    cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t type, Dims dims, Dims strides, bool isVirtual,
                                    bool byValue = false) {
        cudnnBackendDescriptor_t t = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
        set(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, "tensor");
        set(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data(), "tensor");
        set(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data(), "tensor");
        set(t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor");
        set(t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &kAlignmentBytes, "tensor");
        set(t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &isVirtual, "tensor");
        if (byValue) set(t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byValue, "tensor");
        finalize(t, "tensor");
        return t;
    }
    cudnnBackendDescriptor_t virtualTensor(cudnnDataType_t type, Dims dims, Dims strides) {
        return tensor(m_nextUid++, type, dims, strides, true);
    }
    /// A float passed by value in the variant pack (a host pointer at execution).
    cudnnBackendDescriptor_t scalar(int64_t uid) {
        return tensor(uid, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    }

    void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
        const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t m = create(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
        set(m, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, "matmul");
        finalize(m, "matmul");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul operation");
        setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a, "matmul operation");
        setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b, "matmul operation");
        setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c, "matmul operation");
        setDesc(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, m, "matmul operation");
        if (finalize(op, "matmul operation")) m_ops.push_back(op);
    }
    /// y = mode(x[, b][, t]) computed in `precision`; `axis` for GEN_INDEX.
    void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t precision, cudnnBackendDescriptor_t x,
                   cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                   int64_t axis = -1) {
        cudnnBackendDescriptor_t pw = create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
        set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise");
        set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &precision, "pointwise");
        if (axis >= 0) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise");
        finalize(pw, "pointwise");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise operation");
        setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw, "pointwise operation");
        setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x, "pointwise operation");
        if (b) setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b, "pointwise operation");
        if (t) setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, t, "pointwise operation");
        setDesc(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y, "pointwise operation");
        if (finalize(op, "pointwise operation")) m_ops.push_back(op);
    }
    void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
        const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
        cudnnBackendDescriptor_t r = create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
        set(r, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction");
        set(r, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute, "reduction");
        finalize(r, "reduction");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction operation");
        setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x, "reduction operation");
        setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y, "reduction operation");
        setDesc(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, r, "reduction operation");
        if (finalize(op, "reduction operation")) m_ops.push_back(op);
    }
    /// The operation graph of every operation added so far.
    cudnnBackendDescriptor_t operationGraph(cudnnHandle_t handle) {
        cudnnBackendDescriptor_t g = create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
        if (handle) set(g, kOperationGraphHandle, CUDNN_TYPE_HANDLE, 1, &handle, "operation graph");
        set(g, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, int64_t(m_ops.size()), m_ops.data(),
            "operation graph");
        finalize(g, "operation graph");
        return g;
    }
    /// Tries the heuristics' engine configurations in order (mode A, then the fallback list) and
    /// keeps the first that finalizes as a plan; the error carries the last refusal.
    cudnnBackendDescriptor_t plan(cudnnBackendDescriptor_t graph, cudnnHandle_t handle, int64_t& engineIndex) {
        std::string refusals;
        for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
            cudnnBackendDescriptor_t heur = create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "engine heuristics");
            setDesc(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, graph, "engine heuristics");
            set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "engine heuristics");
            if (!finalize(heur, "engine heuristics")) return nullptr;
            int64_t count = 0;
            if (!check(m_api.getAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count,
                                          nullptr),
                       "count the results of", "engine heuristics"))
                return nullptr;
            std::vector<cudnnBackendDescriptor_t> configs;
            for (int64_t i = 0; i < count; ++i)
                configs.push_back(create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config"));
            if (!ok()) return nullptr;
            int64_t returned = 0;
            if (count > 0 && !check(m_api.getAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, configs.data()),
                                    "read the results of", "engine heuristics"))
                return nullptr;
            for (int64_t i = 0; i < returned; ++i) {
                cudnnBackendDescriptor_t p = create(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
                set(p, kExecutionPlanHandle, CUDNN_TYPE_HANDLE, 1, &handle, "execution plan");
                setDesc(p, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, configs[size_t(i)], "execution plan");
                if (!ok()) return nullptr;
                const cudnnStatus_t st = m_api.finalize(p);
                if (st == CUDNN_STATUS_SUCCESS) {
                    engineIndex = readEngineIndex(configs[size_t(i)]);
                    return p;
                }
                refusals = m_api.describe(st);  // this engine does not take the graph: try the next
            }
        }
        if (ok())
            m_status = {ErrorCode::Unsupported,
                        "no cuDNN engine supports it" + (refusals.empty() ? std::string(" (the heuristics list none)")
                                                                          : " (last refusal: " + refusals + ")")};
        return nullptr;
    }

private:
    bool check(cudnnStatus_t st, const char* action, const char* what) {
        if (st == CUDNN_STATUS_SUCCESS) return true;
        m_status = {ErrorCode::Unsupported,
                    std::string("cuDNN could not ") + action + " the " + what + ": " + m_api.describe(st)};
        return false;
    }
    int64_t readEngineIndex(cudnnBackendDescriptor_t config) {
        cudnnBackendDescriptor_t engine = create(CUDNN_BACKEND_ENGINE_DESCRIPTOR, "engine");
        int64_t n = 0, index = -1;
        if (ok() && m_api.getAttribute(config, CUDNN_ATTR_ENGINECFG_ENGINE, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                       &engine) == CUDNN_STATUS_SUCCESS)
            m_api.getAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n, &index);
        return index;
    }

    const CudnnApi& m_api;
    Status m_status;
    std::vector<cudnnBackendDescriptor_t> m_owned, m_ops;
    int64_t m_nextUid = kFirstVirtualUid;
};

bool hasCausalBound(VariantKind k) { return k != VariantKind::Full; }
bool hasSlopes(VariantKind k) { return k == VariantKind::Alibi || k == VariantKind::RelativeBias; }

std::string shapeText(const AttentionProblem& p) {
    return "B=" + std::to_string(p.batch) + " H=" + std::to_string(p.heads) + " Hkv=" + std::to_string(p.kvHeads) +
           " T=" + std::to_string(p.tokens) + " D=" + std::to_string(p.headDim) + " " + dtypeLabel(p.dtype);
}

/// What the variant pack passes besides the tensors: by-value scalars (the pack points at these
/// floats at every execution) and the per-head slopes of ALiBi / relative bias.
struct Scalars {
    float scale = 0, negInf = -std::numeric_limits<float>::infinity(), window = 0, softcap = 0;
    bool useNegInf = false, useWindow = false, useSoftcap = false;
    std::vector<float> slopes;  ///< [H]; empty without a slope score mod
};

/// Adds the SDPA operations of `v` on problem `p` to `g` and returns the operation graph.
cudnnBackendDescriptor_t buildSdpaGraph(Graph& g, const VariantSpec& v, const AttentionProblem& p, Scalars& sc,
                                        cudnnHandle_t handle) {
    const int64_t B = p.batch, H = p.heads, Hk = p.kvHeads, T = p.tokens, D = p.headDim;
    const cudnnDataType_t io = p.dtype == GpuDType::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    const cudnnDataType_t f32 = CUDNN_DATA_FLOAT, i32 = CUDNN_DATA_INT32, boolean = CUDNN_DATA_BOOLEAN;
    const Dims sDims{B, H, T, T}, sStrides{H * T * T, T * T, T, 1};
    const Dims rowDims{B, H, T, 1}, rowStrides{H * T, T, 1, 1};
    auto scores = [&](cudnnDataType_t t) { return g.virtualTensor(t, sDims, sStrides); };

    auto q = g.tensor(kUidQ, io, {B, H, T, D}, {H * T * D, T * D, D, 1}, false);
    auto kT = g.tensor(kUidK, io, {B, Hk, D, T}, {Hk * T * D, T * D, 1, D}, false);  // K read as Kᵀ
    auto vv = g.tensor(kUidV, io, {B, Hk, T, D}, {Hk * T * D, T * D, D, 1}, false);
    auto o = g.tensor(kUidO, io, {B, H, T, D}, {H * T * D, T * D, D, 1}, false);
    auto stats = g.tensor(kUidStats, f32, rowDims, rowStrides, false);

    // S = Q·Kᵀ, scaled.
    auto s0 = scores(f32);
    g.matmul(q, kT, s0);
    sc.scale = p.scale > 0 ? p.scale : 1.0f / std::sqrt(float(D));
    auto s = scores(f32);
    g.pointwise(CUDNN_POINTWISE_MUL, f32, s0, g.scalar(kUidScale), nullptr, s);
    if (v.kind == VariantKind::Softcap) {
        // S ← c·tanh(S / c)
        sc.useSoftcap = true;
        sc.softcap = v.softcap;
        auto cap = g.scalar(kUidSoftcap);
        auto a = scores(f32), b = scores(f32), c = scores(f32);
        g.pointwise(CUDNN_POINTWISE_DIV, f32, s, cap, nullptr, a);
        g.pointwise(CUDNN_POINTWISE_TANH_FWD, f32, a, nullptr, nullptr, b);
        g.pointwise(CUDNN_POINTWISE_MUL, f32, b, cap, nullptr, c);
        s = c;
    }
    if (hasSlopes(v.kind)) {
        // S ← S + slope_h·(k − q): ALiBi's slopes, or −bias for the relative bias bias·(q − k).
        for (int h = 0; h < p.heads; ++h)
            sc.slopes.push_back(v.kind == VariantKind::Alibi ? alibiSlope(h, p.heads) : -v.bias);
        auto row = scores(i32), col = scores(i32), distance = scores(i32), bias = scores(f32), biased = scores(f32);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, i32, s, nullptr, nullptr, row, kRowAxis);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, i32, s, nullptr, nullptr, col, kColumnAxis);
        g.pointwise(CUDNN_POINTWISE_SUB, i32, col, row, nullptr, distance);
        g.pointwise(CUDNN_POINTWISE_MUL, f32, distance, g.tensor(kUidSlopes, f32, {1, H, 1, 1}, {H, 1, 1, 1}, false),
                    nullptr, bias);
        g.pointwise(CUDNN_POINTWISE_ADD, f32, s, bias, nullptr, biased);
        s = biased;
    }
    sc.useNegInf = hasCausalBound(v.kind);
    auto negInf = sc.useNegInf ? g.scalar(kUidNegInf) : nullptr;
    if (sc.useNegInf) {
        // Causal right bound: keep q ≥ k.
        auto row = scores(i32), col = scores(i32), keep = scores(boolean), masked = scores(f32);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s, nullptr, nullptr, row, kRowAxis);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s, nullptr, nullptr, col, kColumnAxis);
        g.pointwise(CUDNN_POINTWISE_CMP_GE, boolean, row, col, nullptr, keep);
        g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, s, negInf, keep, masked);
        s = masked;
    }
    if (v.kind == VariantKind::Sliding) {
        // Left bound: keep k + W > q, i.e. q − k < W.
        sc.useWindow = true;
        sc.window = float(v.window);
        auto row = scores(i32), col = scores(i32), shifted = scores(f32), keep = scores(boolean), masked = scores(f32);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s, nullptr, nullptr, row, kRowAxis);
        g.pointwise(CUDNN_POINTWISE_GEN_INDEX, f32, s, nullptr, nullptr, col, kColumnAxis);
        g.pointwise(CUDNN_POINTWISE_ADD, f32, col, g.scalar(kUidWindow), nullptr, shifted);
        g.pointwise(CUDNN_POINTWISE_CMP_GT, boolean, shifted, row, nullptr, keep);
        g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, f32, s, negInf, keep, masked);
        s = masked;
    }
    // Softmax with stats = max + log(sum exp(S − max)) (natural log, like the engine's lse).
    auto rowMax = g.virtualTensor(f32, rowDims, rowStrides), rowSum = g.virtualTensor(f32, rowDims, rowStrides);
    auto logSum = g.virtualTensor(f32, rowDims, rowStrides);
    auto centred = scores(f32), e = scores(f32), probs = scores(io);
    g.reduction(CUDNN_REDUCE_TENSOR_MAX, s, rowMax);
    g.pointwise(CUDNN_POINTWISE_SUB, f32, s, rowMax, nullptr, centred);
    g.pointwise(CUDNN_POINTWISE_EXP, f32, centred, nullptr, nullptr, e);
    g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, rowSum);
    g.pointwise(CUDNN_POINTWISE_LOG, f32, rowSum, nullptr, nullptr, logSum);
    g.pointwise(CUDNN_POINTWISE_ADD, f32, rowMax, logSum, nullptr, stats);
    g.pointwise(CUDNN_POINTWISE_DIV, f32, e, rowSum, nullptr, probs);  // P in the 16-bit dtype for P·V
    // O = P·V
    g.matmul(probs, vv, o);
    return g.operationGraph(handle);
}

}  // namespace

struct CudnnSdpa::Plan {
    explicit Plan(const CudnnApi& api) : graph(api) {}
    Graph graph;
    cudnnBackendDescriptor_t plan = nullptr;
    int64_t engineIndex = -1;
    Scalars scalars;
    DeviceArray workspace, slopes;
};

CudnnSdpa::CudnnSdpa() = default;

CudnnSdpa::~CudnnSdpa() {
    m_plans.clear();  // descriptors before the handle
    if (m_handle && m_api) m_api->destroy(static_cast<cudnnHandle_t>(m_handle));
}

Result<CudnnSdpa::Plan*> CudnnSdpa::planFor(const VariantSpec& v, const AttentionProblem& p) {
    const std::string key = v.label + "|" + shapeText(p) + "|" + std::to_string(p.scale);
    if (auto it = m_plans.find(key); it != m_plans.end()) return it->second.get();
    if (auto it = m_failed.find(key); it != m_failed.end()) return Status{ErrorCode::Unsupported, it->second};
    const std::string what = "\"" + v.label + "\" at " + shapeText(p);
    auto fail = [&](const std::string& why) -> Result<Plan*> {
        m_failed[key] = "cuDNN " + cudnnVersionString(m_api->version) + " (" + m_api->path + "), " + what + ": " + why;
        return Status{ErrorCode::Unsupported, m_failed[key]};
    };
    if (v.kind == VariantKind::Sliding && m_api->version < kCudnnSlidingWindowVersion)
        return fail("a sliding window needs cuDNN " + cudnnVersionString(kCudnnSlidingWindowVersion) + " or newer");

    auto plan = std::make_unique<Plan>(*m_api);
    Graph& g = plan->graph;
    auto handle = static_cast<cudnnHandle_t>(m_handle);
    auto opGraph = buildSdpaGraph(g, v, p, plan->scalars, handle);
    if (!g.ok()) return fail(g.status().message());
    plan->plan = g.plan(opGraph, handle, plan->engineIndex);
    if (!g.ok()) return fail(g.status().message());
    int64_t n = 0, workspace = 0;
    if (cudnnStatus_t st = m_api->getAttribute(plan->plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                               1, &n, &workspace);
        st != CUDNN_STATUS_SUCCESS)
        return fail("reading the plan's workspace size: " + m_api->describe(st));
    if (workspace > 0) {
        if (Status st = plan->workspace.allocate(size_t(workspace), "cuDNN SDPA workspace"); !st) return st;
    }
    const std::vector<float>& slopes = plan->scalars.slopes;
    if (!slopes.empty()) {
        if (Status st = plan->slopes.upload(slopes.data(), slopes.size() * sizeof(float), "cuDNN score-mod slopes");
            !st)
            return st;
    }
    return (m_plans[key] = std::move(plan)).get();
}

Result<std::vector<KernelLaunchInfo>> CudnnSdpa::run(const VariantSpec& v, const AttentionProblem& p,
                                                     const SdpaTensors& t, cudaStream_t stream) {
    if (!m_api) {
        auto api = loadCudnn();
        if (!api) return Status{api.status().code(), "\"" + v.label + "\": " + api.message()};
        m_api = *api;
    }
    if (!m_handle) {
        cudnnHandle_t h = nullptr;
        if (cudnnStatus_t st = m_api->create(&h); st != CUDNN_STATUS_SUCCESS)
            return Status{ErrorCode::Unsupported, "cudnnCreate (cuDNN " + cudnnVersionString(m_api->version) + " at " +
                                                      m_api->path + ") failed: " + m_api->describe(st)};
        m_handle = h;
    }
    auto handle = static_cast<cudnnHandle_t>(m_handle);
    if (cudnnStatus_t st = m_api->setStream(handle, stream); st != CUDNN_STATUS_SUCCESS)
        return Status{ErrorCode::Internal, "cudnnSetStream failed: " + m_api->describe(st)};
    auto planned = planFor(v, p);
    if (!planned) return planned.status();
    Plan& plan = **planned;

    // The variant pack: device tensors, host scalars, workspace.
    std::vector<int64_t> uids = {kUidQ, kUidK, kUidV, kUidO, kUidStats, kUidScale};
    std::vector<void*> ptrs = {const_cast<void*>(t.q), const_cast<void*>(t.k), const_cast<void*>(t.v), t.o, t.lse,
                               &plan.scalars.scale};
    Scalars& sc = plan.scalars;
    if (sc.useNegInf) uids.push_back(kUidNegInf), ptrs.push_back(&sc.negInf);
    if (sc.useWindow) uids.push_back(kUidWindow), ptrs.push_back(&sc.window);
    if (sc.useSoftcap) uids.push_back(kUidSoftcap), ptrs.push_back(&sc.softcap);
    if (!sc.slopes.empty()) uids.push_back(kUidSlopes), ptrs.push_back(plan.slopes.get());
    Graph pack(*m_api);
    void* workspace = plan.workspace.get();
    auto vp = pack.create(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, "variant pack");
    pack.set(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, int64_t(uids.size()), uids.data(),
             "variant pack");
    pack.set(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, int64_t(ptrs.size()), ptrs.data(),
             "variant pack");
    pack.set(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace, "variant pack");
    pack.finalize(vp, "variant pack");
    if (!pack.ok()) return pack.status();
    // Not ErrorCode::Device: a refused execution leaves the CUDA context usable (a fault in a
    // kernel surfaces at the engine's synchronize as a Device error).
    if (cudnnStatus_t st = m_api->execute(handle, plan.plan, vp); st != CUDNN_STATUS_SUCCESS)
        return Status{ErrorCode::Internal, "cudnnBackendExecute of \"" + v.label + "\" at " + shapeText(p) +
                                               " failed: " + m_api->describe(st)};
    KernelLaunchInfo launch;
    launch.name = "cuDNN SDPA (engine " + std::to_string(plan.engineIndex) + ")";
    return std::vector<KernelLaunchInfo>{launch};
}

}  // namespace attnscope::gpu
