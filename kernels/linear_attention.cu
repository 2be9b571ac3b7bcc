// Chunked causal linear attention (Lightning Attention-2) on tensor cores:
//   O_i = Σ_{j≤i} λ^{i-j} (q_i·k_j) v_j,   λ = exp(-decay).
// One CTA owns 64 output columns (a column block of V and of the D × D state S) of one (batch,
// head) and walks the sequence in chunks of C = 64 tokens, keeping its S[:, block] in fp32
// registers; per chunk (i, j local to the chunk):
//   inter  O_i  = λ^{i+1} q_i · S
//   intra  O_i += Σ_{j≤i} λ^{i-j} (q_i·k_j) v_j
//   state  S    = λ^C S + Σ_j λ^{C-1-j} k_jᵀ v_j
// Every product runs on mma.sync m16n8k16 with bf16 (or fp16) operands and fp32 accumulation:
// Q, K, V as given; the masked, decayed scores, the decayed V rows (state update) and a copy of S
// rounded to the element type (inter part), each a relative rounding of 2^-9 (bf16) per operand;
// S itself accumulates in fp32. Q, K and the V block are double-buffered through cp.async; the
// 4 warps own 16 query rows each (scores, outputs) and D / 4 rows of S each (state update).
#include "cuda_check.h"
#include "flex_dispatch.cuh"  // recordLaunch
#include "flex_forward.cuh"
#include "launch.h"

namespace attnscope::gpu {
namespace {

constexpr int kChunk = 64;  ///< tokens per step
constexpr int kDv = 64;     ///< output (and state) columns per CTA
constexpr int kLinearWarps = 4;
constexpr int kLinearThreads = kLinearWarps * 32;
static_assert(kChunk == kLinearWarps * 16, "one m16 tile of query rows per warp");

/// Two stages of Q and K (C × D) and of the V block (C × kDv), plus the state copy (D × kDv).
template <int D>
constexpr int linearSharedBytes() {
    return (2 * (2 * kChunk * D + kChunk * kDv) + D * kDv) * 2;
}

template <typename Elem, int D>
__global__ void __launch_bounds__(kLinearThreads) linearKernel(LinearArgs a) {
    using Ops = flex::ElemOps<Elem>;
    constexpr int kKeyTiles = kChunk / 8;  // n8 tiles of a chunk's keys
    constexpr int kOTiles = kDv / 8;       // n8 tiles of the CTA's columns
    constexpr int kStateRows = D / kLinearWarps;
    constexpr int kStateMTiles = kStateRows / 16;
    extern __shared__ __align__(128) unsigned char sharedRaw[];
    Elem* sQ = reinterpret_cast<Elem*>(sharedRaw);  // [2][C × D]
    Elem* sK = sQ + 2 * kChunk * D;                 // [2][C × D]
    Elem* sV = sK + 2 * kChunk * D;                 // [2][C × kDv]
    Elem* sS = sV + 2 * kChunk * kDv;               // [D × kDv]

    const int cb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int hk = h / (a.heads / a.kvHeads);
    const long long qHead = (static_cast<long long>(b) * a.heads + h) * a.tokens * D;
    const long long kvHead = (static_cast<long long>(b) * a.kvHeads + hk) * a.tokens * D;
    const Elem* gQ = static_cast<const Elem*>(a.q) + qHead;
    const Elem* gK = static_cast<const Elem*>(a.k) + kvHead;
    const Elem* gV = static_cast<const Elem*>(a.v) + kvHead + cb * kDv;
    const int chunks = (a.tokens + kChunk - 1) / kChunk;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float logLambda = -a.decay;
    const bool decays = a.decay != 0.0f;

    auto load = [&](int c) {
        const int t0 = c * kChunk, st = c & 1;
        Elem* q = sQ + st * kChunk * D;
        Elem* k = sK + st * kChunk * D;
        Elem* v = sV + st * kChunk * kDv;
        for (int i = threadIdx.x; i < kChunk * (D / 8); i += kLinearThreads) {
            const int r = i / (D / 8), ch = i % (D / 8);
            const bool valid = t0 + r < a.tokens;
            const long long row = valid ? t0 + r : 0;
            flex::cpAsync16(q + flex::swizzle<D>(r, ch * 8), gQ + row * D + ch * 8, valid);
            flex::cpAsync16(k + flex::swizzle<D>(r, ch * 8), gK + row * D + ch * 8, valid);
        }
        for (int i = threadIdx.x; i < kChunk * (kDv / 8); i += kLinearThreads) {
            const int r = i / (kDv / 8), ch = i % (kDv / 8);
            const bool valid = t0 + r < a.tokens;
            const long long row = valid ? t0 + r : 0;
            flex::cpAsync16(v + flex::swizzle<kDv>(r, ch * 8), gV + row * D + ch * 8, valid);
        }
    };

    for (int i = threadIdx.x; i < D * kDv / 8; i += kLinearThreads) reinterpret_cast<uint4*>(sS)[i] = uint4{0, 0, 0, 0};
    float state[kStateMTiles][kOTiles * 4];
#pragma unroll
    for (int mt = 0; mt < kStateMTiles; ++mt)
#pragma unroll
        for (int e = 0; e < kOTiles * 4; ++e) state[mt][e] = 0.0f;
    load(0);
    flex::cpAsyncCommit();

    const int i0 = warp * 16 + lane / 4;  // this thread's chunk rows: i0 and i0 + 8
    for (int c = 0; c < chunks; ++c) {
        const int st = c & 1, t0 = c * kChunk;
        if (c + 1 < chunks) load(c + 1);
        flex::cpAsyncCommit();
        flex::cpAsyncWait<1>();
        __syncthreads();  // chunk c has landed; sS holds the state before it
        const Elem* tQ = sQ + st * kChunk * D;
        Elem* tK = sK + st * kChunk * D;
        Elem* tV = sV + st * kChunk * kDv;

        unsigned qa[D / 16][4];
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
            flex::ldmatrixX4(qa[kk], tQ + flex::swizzle<D>(warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                                                           kk * 16 + (lane / 16) * 8));

        // inter: O = diag(λ^{i+1}) Q S
        float o[kOTiles * 4];
#pragma unroll
        for (int e = 0; e < kOTiles * 4; ++e) o[e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
            for (int dp = 0; dp < kDv / 16; ++dp) {
                unsigned bs[4];
                flex::ldmatrixX4Trans(bs, sS + flex::swizzle<kDv>(kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                                                                  dp * 16 + (lane / 16) * 8));
                Ops::mma(flex::fragment(o, 2 * dp), qa[kk], bs[0], bs[1]);
                Ops::mma(flex::fragment(o, 2 * dp + 1), qa[kk], bs[2], bs[3]);
            }
        if (decays) {
            const float w0 = __expf(logLambda * float(i0 + 1)), w1 = __expf(logLambda * float(i0 + 9));
#pragma unroll
            for (int t = 0; t < kOTiles; ++t) {
                o[4 * t] *= w0, o[4 * t + 1] *= w0;
                o[4 * t + 2] *= w1, o[4 * t + 3] *= w1;
            }
        }

        // intra: scores A = Q Kᵀ (16 rows × 64 keys), causal and decayed; key tiles past this
        // warp's last row stay zero.
        float s[kKeyTiles * 4];
#pragma unroll
        for (int e = 0; e < kKeyTiles * 4; ++e) s[e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk)
#pragma unroll
            for (int np = 0; np < kKeyTiles / 2; ++np) {
                if (np > warp) continue;
                unsigned bk[4];
                flex::ldmatrixX4(
                    bk, tK + flex::swizzle<D>(np * 16 + (lane % 8) + (lane / 16) * 8, kk * 16 + ((lane / 8) % 2) * 8));
                Ops::mma(flex::fragment(s, 2 * np), qa[kk], bk[0], bk[1]);
                Ops::mma(flex::fragment(s, 2 * np + 1), qa[kk], bk[2], bk[3]);
            }
#pragma unroll
        for (int e = 0; e < kKeyTiles * 4; ++e) {
            const int i = i0 + 8 * ((e % 4) / 2), j = flex::fragmentKey(0, lane, 2 * (e / 4) + e % 2);
            s[e] = j <= i ? (decays ? s[e] * __expf(logLambda * float(i - j)) : s[e]) : 0.0f;
        }
        // O += A V
#pragma unroll
        for (int kk = 0; kk < kChunk / 16; ++kk) {
            if (kk > warp) continue;
            unsigned pa[4];
            flex::probabilityFragment<Elem, kKeyTiles>(pa, s, kk);
#pragma unroll
            for (int dp = 0; dp < kDv / 16; ++dp) {
                unsigned bv[4];
                flex::ldmatrixX4Trans(bv, tV + flex::swizzle<kDv>(kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                                                                  dp * 16 + (lane / 16) * 8));
                Ops::mma(flex::fragment(o, 2 * dp), pa, bv[0], bv[1]);
                Ops::mma(flex::fragment(o, 2 * dp + 1), pa, bv[2], bv[3]);
            }
        }
        Elem* out = static_cast<Elem*>(a.o) + qHead + cb * kDv;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const int t = t0 + i0 + 8 * r;
            if (t >= a.tokens) continue;
#pragma unroll
            for (int n = 0; n < kOTiles; ++n)
                *reinterpret_cast<unsigned*>(out + static_cast<long long>(t) * D + n * 8 + (lane % 4) * 2) =
                    Ops::pack(o[4 * n + 2 * r], o[4 * n + 2 * r + 1]);
            if (cb == 0 && lane % 4 == 0) a.lse[qHead / D + t] = 0.0f;  // no softmax normaliser
        }
        __syncthreads();  // every warp is done with sS and with this chunk's unscaled V

        // state: S = λ^C S + Kᵀ diag(λ^{C-1-j}) V (the decay folded into V's rows, in place)
        if (decays) {
            for (int i = threadIdx.x; i < kChunk * kDv / 2; i += kLinearThreads) {
                const int r = i / (kDv / 2), col = (i % (kDv / 2)) * 2;
                Elem* pair = tV + flex::swizzle<kDv>(r, col);
                const float w = __expf(logLambda * float(kChunk - 1 - r));
                const unsigned packed = Ops::pack(Ops::toFloat(pair[0]) * w, Ops::toFloat(pair[1]) * w);
                *reinterpret_cast<unsigned*>(pair) = packed;
            }
            const float lambdaChunk = __expf(logLambda * float(kChunk));
#pragma unroll
            for (int mt = 0; mt < kStateMTiles; ++mt)
#pragma unroll
                for (int e = 0; e < kOTiles * 4; ++e) state[mt][e] *= lambdaChunk;
            __syncthreads();
        }
#pragma unroll
        for (int mt = 0; mt < kStateMTiles; ++mt) {
            const int m0 = warp * kStateRows + mt * 16;  // rows of S (the d of K)
#pragma unroll
            for (int kk = 0; kk < kChunk / 16; ++kk) {
                unsigned ka[4];  // A = Kᵀ: K's rows are the k of this product, so a transposed load
                flex::ldmatrixX4Trans(
                    ka, tK + flex::swizzle<D>(kk * 16 + (lane / 16) * 8 + (lane % 8), m0 + ((lane / 8) % 2) * 8));
#pragma unroll
                for (int dp = 0; dp < kDv / 16; ++dp) {
                    unsigned bv[4];
                    flex::ldmatrixX4Trans(bv, tV + flex::swizzle<kDv>(kk * 16 + (lane % 8) + ((lane / 8) % 2) * 8,
                                                                      dp * 16 + (lane / 16) * 8));
                    Ops::mma(flex::fragment(state[mt], 2 * dp), ka, bv[0], bv[1]);
                    Ops::mma(flex::fragment(state[mt], 2 * dp + 1), ka, bv[2], bv[3]);
                }
            }
            // the copy of S the next chunk's inter product reads
#pragma unroll
            for (int n = 0; n < kOTiles; ++n)
#pragma unroll
                for (int r = 0; r < 2; ++r)
                    *reinterpret_cast<unsigned*>(sS +
                                                 flex::swizzle<kDv>(m0 + lane / 4 + 8 * r, n * 8 + (lane % 4) * 2)) =
                        Ops::pack(state[mt][4 * n + 2 * r], state[mt][4 * n + 2 * r + 1]);
        }
        __syncthreads();  // sS is complete; this stage may be refilled
    }
}

template <typename Elem, int D>
Status linear(const LinearArgs& a, cudaStream_t stream, LaunchLog* log) {
    const dim3 grid(D / kDv, a.heads, a.batch);
    constexpr int shared = linearSharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(
        cudaFuncSetAttribute(linearKernel<Elem, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    linearKernel<Elem, D><<<grid, kLinearThreads, shared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("linearKernel");
    return recordLaunch(linearKernel<Elem, D>, "linear_chunked_mma", grid, dim3(kLinearThreads), shared, log);
}

}  // namespace

size_t linearWorkspaceFloats(const LinearArgs&) { return 0; }  // the state lives in registers

Status launchLinear(const LinearArgs& a, cudaStream_t stream, LaunchLog* log) {
    if (a.tokens <= 0) return {ErrorCode::InvalidArgument, "linear attention: tokens must be > 0"};
    if (a.kvHeads <= 0 || a.heads % a.kvHeads != 0)
        return {ErrorCode::InvalidArgument, "linear attention: heads must be a multiple of kvHeads"};
    const bool bf16 = a.elem == ElemType::BF16;
    if (a.headDim == 64) return bf16 ? linear<__nv_bfloat16, 64>(a, stream, log) : linear<__half, 64>(a, stream, log);
    if (a.headDim == 128)
        return bf16 ? linear<__nv_bfloat16, 128>(a, stream, log) : linear<__half, 128>(a, stream, log);
    return {ErrorCode::Unsupported,
            "linear attention: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
}

}  // namespace attnscope::gpu
