// Chunked causal linear attention (Lightning Attention-2): O_i = Σ_{j≤i} λ^{i-j} (q_i·k_j) v_j
// with λ = exp(-decay). Per chunk of C tokens the intra part is a masked, decayed C×C product and
// the inter part q_i·S with the state S of all earlier chunks. Three passes: per-chunk state
// increments ΔS_c = Σ_j λ^{end-1-j} k_jᵀ v_j, an exclusive scan S_c = λ^C S_{c-1} + ΔS_{c-1},
// then the outputs. fp32 arithmetic throughout (bf16/fp16 inputs are widened on load); the
// chunk-sized products run as shared-memory GEMMs with a register tile per thread (blockGemm).
#include "cuda_check.h"
#include "launch.h"
#include "mma.cuh"

namespace attnscope::gpu {
namespace {

constexpr int kChunk = 64;
constexpr int kLinearThreads = 256;

/// Loads rows [t0, t0 + kChunk) of a [T × D] head into a padded float tile, scaled by w(row).
template <typename Elem, int D, typename Weight>
__device__ void loadChunk(float* tile, const Elem* head, int t0, int tokens, Weight weight) {
    constexpr int kStride = D + 1;
    for (int e = threadIdx.x; e < kChunk * D; e += kLinearThreads) {
        const int r = e / D, c = e % D;
        const int t = t0 + r;
        tile[r * kStride + c] =
            t < tokens ? flex::ElemOps<Elem>::toFloat(head[static_cast<long long>(t) * D + c]) * weight(r) : 0.0f;
    }
}

/// Row i and column j of this thread's register tile in blockGemm's 16 × 16 thread grid.
__device__ __forceinline__ int gemmRow(int i) { return int(threadIdx.x / 16) + 16 * i; }
__device__ __forceinline__ int gemmCol(int j) { return int(threadIdx.x % 16) + 16 * j; }

/// C += A·B for a block of kLinearThreads threads as a 16 × 16 grid: the thread owns rows
/// gemmRow(i) (i < TM) and columns gemmCol(j) (j < TN) of C, so each k step loads TM + TN values
/// and does TM·TN FMAs. Element (m, k) of A is A[m·aRow + k·aCol], (k, n) of B is B[k·bRow + n·bCol]
/// (shared memory; with the padded row stride D + 1 every access pattern used here is free of
/// bank conflicts).
template <int TM, int TN>
__device__ __forceinline__ void blockGemm(float (&acc)[TM][TN], const float* A, int aRow, int aCol, const float* B,
                                          int bRow, int bCol, int K) {
    static_assert(kLinearThreads == 256, "a 16 x 16 thread grid");
#pragma unroll 4
    for (int k = 0; k < K; ++k) {
        float a[TM], b[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) a[i] = A[gemmRow(i) * aRow + k * aCol];
#pragma unroll
        for (int j = 0; j < TN; ++j) b[j] = B[k * bRow + gemmCol(j) * bCol];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
    }
}

template <int TM, int TN>
__device__ __forceinline__ void zero(float (&acc)[TM][TN]) {
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;
}

struct LinearGeometry {
    long long qHead, kvHead;
    int chunks;
    __device__ LinearGeometry(const LinearArgs& a, int D) {
        const int h = blockIdx.y, b = blockIdx.z;
        const int hk = h / (a.heads / a.kvHeads);
        qHead = (static_cast<long long>(b) * a.heads + h) * a.tokens * D;
        kvHead = (static_cast<long long>(b) * a.kvHeads + hk) * a.tokens * D;
        chunks = (a.tokens + kChunk - 1) / kChunk;
    }
    __device__ float* states(const LinearArgs& a, int D) const {
        const long long head = static_cast<long long>(blockIdx.z) * a.heads + blockIdx.y;
        return a.states + head * chunks * D * D;
    }
};

// ΔS_c = Σ_j λ^{C-1-j} k_jᵀ v_j over the chunk's rows j.
template <typename Elem, int D>
__global__ void __launch_bounds__(kLinearThreads) linearChunkStateKernel(LinearArgs a) {
    extern __shared__ float shared[];
    float* sK = shared;
    float* sV = shared + kChunk * (D + 1);
    const LinearGeometry g(a, D);
    const int c = blockIdx.x;
    const float logLambda = -a.decay;
    loadChunk<Elem, D>(sK, static_cast<const Elem*>(a.k) + g.kvHead, c * kChunk, a.tokens,
                       [&](int r) { return __expf(logLambda * float(kChunk - 1 - r)); });
    loadChunk<Elem, D>(sV, static_cast<const Elem*>(a.v) + g.kvHead, c * kChunk, a.tokens, [](int) { return 1.0f; });
    __syncthreads();
    // ΔS (D × D) = sKᵀ · sV: A(i, r) = sK[r][i], B(r, j) = sV[r][j]
    constexpr int kT = D / 16;
    float acc[kT][kT];
    zero(acc);
    blockGemm(acc, sK, 1, D + 1, sV, D + 1, 1, kChunk);
    float* out = g.states(a, D) + static_cast<long long>(c) * D * D;
#pragma unroll
    for (int i = 0; i < kT; ++i)
#pragma unroll
        for (int j = 0; j < kT; ++j) out[gemmRow(i) * D + gemmCol(j)] = acc[i][j];
}

// In place: states[c] becomes S before chunk c (exclusive scan with decay λ^C per chunk).
template <int D>
__global__ void linearScanKernel(LinearArgs a) {
    const LinearGeometry g(a, D);
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= D * D) return;
    const float lambdaChunk = __expf(-a.decay * float(kChunk));
    float* st = g.states(a, D);
    float s = 0.0f;
    for (int c = 0; c < g.chunks; ++c) {
        const float delta = st[static_cast<long long>(c) * D * D + e];
        st[static_cast<long long>(c) * D * D + e] = s;
        s = lambdaChunk * s + delta;
    }
}

// O_i = Σ_{j≤i in chunk} λ^{i-j} (q_i·k_j) v_j + λ^{i+1} q_i S_c   (i, j local to the chunk)
template <typename Elem, int D>
__global__ void __launch_bounds__(kLinearThreads) linearOutputKernel(LinearArgs a) {
    constexpr int kStride = D + 1;
    extern __shared__ float shared[];
    float* sQ = shared;
    float* sK = sQ + kChunk * kStride;
    float* sV = sK + kChunk * kStride;
    float* sA = sV + kChunk * kStride;  // [kChunk][kChunk + 1]
    const LinearGeometry g(a, D);
    const int c = blockIdx.x, t0 = c * kChunk;
    auto one = [](int) { return 1.0f; };
    loadChunk<Elem, D>(sQ, static_cast<const Elem*>(a.q) + g.qHead, t0, a.tokens, one);
    loadChunk<Elem, D>(sK, static_cast<const Elem*>(a.k) + g.kvHead, t0, a.tokens, one);
    loadChunk<Elem, D>(sV, static_cast<const Elem*>(a.v) + g.kvHead, t0, a.tokens, one);
    __syncthreads();
    // intra-chunk scores A = Q·Kᵀ (64 × 64), causal and decayed: A_ij = λ^{i-j} q_i·k_j for j ≤ i
    {
        float acc[kChunk / 16][kChunk / 16];
        zero(acc);
        blockGemm(acc, sQ, kStride, 1, sK, 1, kStride, D);
#pragma unroll
        for (int i = 0; i < kChunk / 16; ++i)
#pragma unroll
            for (int j = 0; j < kChunk / 16; ++j) {
                const int r = gemmRow(i), col = gemmCol(j);
                sA[r * (kChunk + 1) + col] = col <= r ? acc[i][j] * __expf(-a.decay * float(r - col)) : 0.0f;
            }
    }
    __syncthreads();
    // O = A·V + diag(λ^{i+1}) Q·S_c: the decay of the inter part is folded into Q's rows (Q is not
    // needed unscaled any more), and S_c (D × D, global) is staged through sK 64 rows at a time.
    for (int e = threadIdx.x; e < kChunk * D; e += kLinearThreads) {
        const int r = e / D, col = e % D;
        sQ[r * kStride + col] *= __expf(-a.decay * float(r + 1));
    }
    constexpr int kTN = D / 16;
    float acc[kChunk / 16][kTN];
    zero(acc);
    blockGemm(acc, sA, kChunk + 1, 1, sV, kStride, 1, kChunk);
    const float* S = g.states(a, D) + static_cast<long long>(c) * D * D;
    for (int d0 = 0; d0 < D; d0 += kChunk) {
        __syncthreads();  // sQ scaled / the previous slice of S consumed
        for (int e = threadIdx.x; e < kChunk * D; e += kLinearThreads) {
            const int r = e / D, col = e % D;
            sK[r * kStride + col] = S[static_cast<long long>(d0 + r) * D + col];
        }
        __syncthreads();
        blockGemm(acc, sQ + d0, kStride, 1, sK, kStride, 1, kChunk);
    }
    Elem* out = static_cast<Elem*>(a.o) + g.qHead;
#pragma unroll
    for (int i = 0; i < kChunk / 16; ++i) {
        const int r = gemmRow(i);
        if (t0 + r >= a.tokens) continue;
#pragma unroll
        for (int j = 0; j < kTN; ++j)
            out[static_cast<long long>(t0 + r) * D + gemmCol(j)] = flex::ElemOps<Elem>::fromFloat(acc[i][j]);
        if (gemmCol(0) == 0) a.lse[g.qHead / D + t0 + r] = 0.0f;  // one thread per row
    }
}

template <typename Elem, int D>
Status linear(const LinearArgs& a, cudaStream_t stream, LaunchLog* log) {
    const int chunks = (a.tokens + kChunk - 1) / kChunk;
    const dim3 grid(chunks, a.heads, a.batch);
    const int stateShared = 2 * kChunk * (D + 1) * int(sizeof(float));
    const int outShared = (3 * kChunk * (D + 1) + kChunk * (kChunk + 1)) * int(sizeof(float));
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(linearChunkStateKernel<Elem, D>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, stateShared));
    ATTNSCOPE_CUDA_TRY(
        cudaFuncSetAttribute(linearOutputKernel<Elem, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, outShared));
    linearChunkStateKernel<Elem, D><<<grid, kLinearThreads, stateShared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("linearChunkStateKernel");
    const dim3 scanGrid((D * D + kLinearThreads - 1) / kLinearThreads, a.heads, a.batch);
    linearScanKernel<D><<<scanGrid, kLinearThreads, 0, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("linearScanKernel");
    linearOutputKernel<Elem, D><<<grid, kLinearThreads, outShared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("linearOutputKernel");
    if (log) {
        log->push_back({"linear_chunk_state", grid, dim3(kLinearThreads), 0, stateShared});
        log->push_back({"linear_state_scan", scanGrid, dim3(kLinearThreads), 0, 0});
        log->push_back({"linear_output", grid, dim3(kLinearThreads), 0, outShared});
    }
    return {};
}

}  // namespace

size_t linearWorkspaceFloats(const LinearArgs& a) {
    const size_t chunks = (static_cast<size_t>(a.tokens) + kChunk - 1) / kChunk;
    return static_cast<size_t>(a.batch) * a.heads * chunks * a.headDim * a.headDim;
}

Status launchLinear(const LinearArgs& a, cudaStream_t stream, LaunchLog* log) {
    if (a.tokens <= 0 || !a.states) return {ErrorCode::InvalidArgument, "linear attention: tokens and workspace"};
    if (a.heads % a.kvHeads != 0)
        return {ErrorCode::InvalidArgument, "linear attention: heads must be a multiple of kvHeads"};
    const bool bf16 = a.elem == ElemType::BF16;
    if (a.headDim == 64) return bf16 ? linear<__nv_bfloat16, 64>(a, stream, log) : linear<__half, 64>(a, stream, log);
    if (a.headDim == 128)
        return bf16 ? linear<__nv_bfloat16, 128>(a, stream, log) : linear<__half, 128>(a, stream, log);
    return {ErrorCode::Unsupported,
            "linear attention: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
}

}  // namespace attnscope::gpu
