// Split-KV decode (flash-decoding) on tensor cores: one query per (batch, head) against a long KV.
// A CTA takes one slice of the keys of one kv head for up to 16 of the query heads that share it
// (GQA): the heads are the M rows of mma.sync m16n8k16 products, S = Q·Kᵀ (heads × keys) and
// O += P·V, so each K/V row is read from memory once per kv head and scored against the whole
// group at tensor-core cost (a fp32 per-head dot product per key made GQA 8 compute-bound). Each
// of the CTA's 4 warps streams its own 16-key tiles through a 3-stage cp.async ring in shared
// memory and keeps its own online softmax; the warps are combined through shared memory and each
// CTA writes a partial (m, l, o) per head. The last CTA of a kv head (an atomic counter per kv
// head and head chunk, left at 0 for the next launch) merges the slices with the associative
// online-softmax rule and writes O and lse, so decode is one launch.
#include <algorithm>

#include "cuda_check.h"
#include "flex_dispatch.cuh"  // recordLaunch
#include "flex_forward.cuh"
#include "launch.h"

namespace attnscope::gpu {
namespace {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = kDecodeWarps * 32;
constexpr int kTileKeys = 16;     ///< keys per warp step: one n16 of S, one k16 of P·V
constexpr int kStages = 3;        ///< cp.async ring depth per warp
constexpr int kHeadsPerCta = 16;  ///< the M of m16n8k16
constexpr int kMinKeysPerSplit = 256;
constexpr int kMaxSplits = 256;  ///< bounds the merge weights kept in shared memory
constexpr int kCtasPerSm = 2;    ///< resident at D = 128 (96 KB of shared memory each)

/// Dynamic shared memory: the K/V tile ring of every warp, which later holds the combine scratch
/// (per warp and head: o, m, l) and then the merge scratch (slice weights, per head m and l).
template <int D>
constexpr int decodeSharedBytes() {
    constexpr int ring = kDecodeWarps * kStages * 2 * kTileKeys * D * 2;
    constexpr int combine = kDecodeWarps * kHeadsPerCta * (D + 2) * 4;
    constexpr int merge = kHeadsPerCta * (kMaxSplits + 2) * 4;
    return std::max(ring, std::max(combine, merge));
}

int headChunks(int heads, int kvHeads) {
    const int group = heads / kvHeads;
    return (group + kHeadsPerCta - 1) / kHeadsPerCta;
}

template <typename Elem, int D>
__global__ void __launch_bounds__(kDecodeThreads) decodeKernel(DecodeArgs a) {
    using Ops = flex::ElemOps<Elem>;
    constexpr int kDTiles = D / 8;          // n8 tiles of an output row
    constexpr int kNTiles = kTileKeys / 8;  // n8 tiles of a score tile
    constexpr int kRowChunks = D / 8;       // 16-byte chunks per K/V row
    constexpr int kTileElems = kTileKeys * D;
    extern __shared__ __align__(128) unsigned char sharedRaw[];
    __shared__ unsigned sIsLast;

    const int group = a.heads / a.kvHeads;
    const int chunks = (group + kHeadsPerCta - 1) / kHeadsPerCta;
    const int split = blockIdx.x, hk = blockIdx.y / chunks, chunk = blockIdx.y % chunks, b = blockIdx.z;
    const int h0 = hk * group + chunk * kHeadsPerCta;                    // first query head of this CTA
    const int nHeads = min(kHeadsPerCta, group - chunk * kHeadsPerCta);  // its heads: h0 .. h0 + nHeads
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int kBegin = split * a.keysPerSplit, kEnd = min(a.tokens, kBegin + a.keysPerSplit);
    const int nTiles = kEnd > kBegin ? (kEnd - kBegin + kTileKeys - 1) / kTileKeys : 0;
    const int myTiles = nTiles > warp ? (nTiles - warp + kDecodeWarps - 1) / kDecodeWarps : 0;

    const long long kvHead = (static_cast<long long>(b) * a.kvHeads + hk) * a.tokens * D;
    const Elem* gK = static_cast<const Elem*>(a.k) + kvHead;
    const Elem* gV = static_cast<const Elem*>(a.v) + kvHead;
    Elem* ring = reinterpret_cast<Elem*>(sharedRaw) + warp * kStages * 2 * kTileElems;

    // Tile i of this warp (keys kBegin + (warp + 4i)·16 ...) into stage i % kStages; rows past the
    // slice are zero-filled and their scores masked below.
    auto loadTile = [&](int i) {
        const int key0 = kBegin + (warp + i * kDecodeWarps) * kTileKeys;
        Elem* dst = ring + (i % kStages) * 2 * kTileElems;
#pragma unroll
        for (int c = lane; c < kTileKeys * kRowChunks; c += 32) {
            const int r = c / kRowChunks, ch = c % kRowChunks;
            const bool valid = key0 + r < kEnd;
            const long long row = valid ? key0 + r : kBegin;
            flex::cpAsync16(dst + flex::swizzle<D>(r, ch * 8), gK + row * D + ch * 8, valid);
            flex::cpAsync16(dst + kTileElems + flex::swizzle<D>(r, ch * 8), gV + row * D + ch * 8, valid);
        }
    };
#pragma unroll
    for (int i = 0; i < kStages - 1; ++i) {
        if (i < myTiles) loadTile(i);
        flex::cpAsyncCommit();
    }

    // Q as the A operand (rows = this CTA's heads, 16 max; missing heads are zero rows), straight
    // from global memory into the m16n8k16 A layout: a0 (row lane/4, k 2(lane%4)), a1 (row + 8),
    // a2 (k + 8), a3 (row + 8, k + 8).
    unsigned qa[D / 16][4];
    {
        const int r0 = lane / 4, r1 = r0 + 8;
        const Elem* q = static_cast<const Elem*>(a.q) + (static_cast<long long>(b) * a.heads + h0) * D + (lane % 4) * 2;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            const Elem* q0 = q + r0 * D + kk * 16;
            const Elem* q1 = q + r1 * D + kk * 16;
            qa[kk][0] = r0 < nHeads ? *reinterpret_cast<const unsigned*>(q0) : 0u;
            qa[kk][1] = r1 < nHeads ? *reinterpret_cast<const unsigned*>(q1) : 0u;
            qa[kk][2] = r0 < nHeads ? *reinterpret_cast<const unsigned*>(q0 + 8) : 0u;
            qa[kk][3] = r1 < nHeads ? *reinterpret_cast<const unsigned*>(q1 + 8) : 0u;
        }
    }
    float acc[kDTiles * 4];
#pragma unroll
    for (int i = 0; i < kDTiles * 4; ++i) acc[i] = 0.0f;
    float rowMax[2] = {-INFINITY, -INFINITY};  // log2 units, scale folded in
    float rowSum[2] = {0.0f, 0.0f};            // this lane's partial sums
    const float scaleLog2 = a.scale * flex::kLog2e;

    for (int i = 0; i < myTiles; ++i) {
        if (i + kStages - 1 < myTiles) loadTile(i + kStages - 1);
        flex::cpAsyncCommit();
        flex::cpAsyncWait<kStages - 1>();
        __syncwarp();
        const Elem* tK = ring + (i % kStages) * 2 * kTileElems;
        const Elem* tV = tK + kTileElems;
        const int key0 = kBegin + (warp + i * kDecodeWarps) * kTileKeys;

        // S = Q Kᵀ (16 heads × 16 keys)
        float s[kNTiles * 4];
#pragma unroll
        for (int e = 0; e < kNTiles * 4; ++e) s[e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
            unsigned bk[4];
            flex::ldmatrixX4(bk, tK + flex::swizzle<D>((lane % 8) + (lane / 16) * 8, kk * 16 + ((lane / 8) % 2) * 8));
            Ops::mma(flex::fragment(s, 0), qa[kk], bk[0], bk[1]);
            Ops::mma(flex::fragment(s, 1), qa[kk], bk[2], bk[3]);
        }
#pragma unroll
        for (int e = 0; e < kNTiles * 4; ++e)
            if (flex::fragmentKey(key0, lane, 2 * (e / 4) + e % 2) >= kEnd) s[e] = -INFINITY;
        flex::onlineSoftmax<kNTiles, kDTiles>(s, acc, rowMax, rowSum, scaleLog2);

        // O += P V
        unsigned pa[4];
        flex::probabilityFragment<Elem, kNTiles>(pa, s, 0);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
            unsigned bv[4];
            flex::ldmatrixX4Trans(bv,
                                  tV + flex::swizzle<D>((lane % 8) + ((lane / 8) % 2) * 8, dp * 16 + (lane / 16) * 8));
            Ops::mma(flex::fragment(acc, 2 * dp), pa, bv[0], bv[1]);
            Ops::mma(flex::fragment(acc, 2 * dp + 1), pa, bv[2], bv[3]);
        }
        __syncwarp();  // every lane is done with this stage before a later load refills it
    }
    flex::cpAsyncWait<0>();
    __syncthreads();  // the ring becomes the combine scratch

    // Combine the 4 warps: per warp and head row m (log2 units), l and o.
    float* sO = reinterpret_cast<float*>(sharedRaw);   // [warp][16][D]
    float* sM = sO + kDecodeWarps * kHeadsPerCta * D;  // [warp][16]
    float* sL = sM + kDecodeWarps * kHeadsPerCta;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        float l = rowSum[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        const int row = warp * kHeadsPerCta + lane / 4 + 8 * r;
        if (lane % 4 == 0) {
            sM[row] = rowMax[r];
            sL[row] = l;
        }
#pragma unroll
        for (int t = 0; t < kDTiles; ++t) {
            sO[row * D + t * 8 + (lane % 4) * 2] = acc[4 * t + 2 * r];
            sO[row * D + t * 8 + (lane % 4) * 2 + 1] = acc[4 * t + 2 * r + 1];
        }
    }
    __syncthreads();
    const long long headBase = static_cast<long long>(b) * a.heads + h0;  // (b, h0) as a row of O
    for (int item = threadIdx.x; item < nHeads * D; item += kDecodeThreads) {
        const int r = item / D, d = item % D;
        float m = -INFINITY;
#pragma unroll
        for (int w = 0; w < kDecodeWarps; ++w) m = fmaxf(m, sM[w * kHeadsPerCta + r]);
        float l = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < kDecodeWarps; ++w) {
            const float mw = sM[w * kHeadsPerCta + r];
            const float weight = mw == -INFINITY ? 0.0f : exp2f(mw - m);
            l += weight * sL[w * kHeadsPerCta + r];
            o += weight * sO[(w * kHeadsPerCta + r) * D + d];
        }
        if (a.splits == 1) {  // the only slice: this is the result
            static_cast<Elem*>(a.o)[(headBase + r) * D + d] = Ops::fromFloat(l > 0.0f ? o / l : 0.0f);
            if (d == 0) a.lse[headBase + r] = l > 0.0f ? (m + __log2f(l)) * flex::kLn2 : -INFINITY;
        } else {
            float* out = a.partial + ((headBase + r) * a.splits + split) * (D + 2);
            out[d] = o;
            if (d == 0) out[D] = m, out[D + 1] = l;
        }
    }
    if (a.splits == 1) return;

    // The last CTA of this (b, kv head, head chunk) to finish merges every slice.
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned* counter = a.counters + static_cast<long long>(b) * gridDim.y + blockIdx.y;
        const unsigned done = atomicAdd(counter, 1u);
        sIsLast = done == unsigned(a.splits - 1);
        if (sIsLast) atomicExch(counter, 0u);  // every slice has counted: ready for the next launch
    }
    __syncthreads();
    if (!sIsLast) return;
    __threadfence();
    float* sW = reinterpret_cast<float*>(sharedRaw);  // [16][kMaxSplits] slice weights
    float* sHeadM = sW + kHeadsPerCta * kMaxSplits;
    float* sHeadL = sHeadM + kHeadsPerCta;
    for (int r = warp; r < nHeads; r += kDecodeWarps) {
        const float* part = a.partial + (headBase + r) * a.splits * (D + 2);
        float m = -INFINITY;
        for (int sp = lane; sp < a.splits; sp += 32) m = fmaxf(m, __ldcg(part + sp * (D + 2) + D));
#pragma unroll
        for (int off = 16; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        float l = 0.0f;
        for (int sp = lane; sp < a.splits; sp += 32) {
            const float ms = __ldcg(part + sp * (D + 2) + D);
            const float weight = ms == -INFINITY ? 0.0f : exp2f(ms - m);
            sW[r * kMaxSplits + sp] = weight;
            l += weight * __ldcg(part + sp * (D + 2) + D + 1);
        }
#pragma unroll
        for (int off = 16; off > 0; off /= 2) l += __shfl_xor_sync(0xffffffffu, l, off);
        if (lane == 0) sHeadM[r] = m, sHeadL[r] = l;
    }
    __syncthreads();
    for (int item = threadIdx.x; item < nHeads * D; item += kDecodeThreads) {
        const int r = item / D, d = item % D;
        const float* part = a.partial + (headBase + r) * a.splits * (D + 2) + d;
        float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;  // four chains: the loads overlap
        int sp = 0;
        for (; sp + 4 <= a.splits; sp += 4) {
            o0 += sW[r * kMaxSplits + sp] * __ldcg(part + sp * (D + 2));
            o1 += sW[r * kMaxSplits + sp + 1] * __ldcg(part + (sp + 1) * (D + 2));
            o2 += sW[r * kMaxSplits + sp + 2] * __ldcg(part + (sp + 2) * (D + 2));
            o3 += sW[r * kMaxSplits + sp + 3] * __ldcg(part + (sp + 3) * (D + 2));
        }
        for (; sp < a.splits; ++sp) o0 += sW[r * kMaxSplits + sp] * __ldcg(part + sp * (D + 2));
        const float o = (o0 + o1) + (o2 + o3), l = sHeadL[r], m = sHeadM[r];
        static_cast<Elem*>(a.o)[(headBase + r) * D + d] = Ops::fromFloat(l > 0.0f ? o / l : 0.0f);
        if (d == 0) a.lse[headBase + r] = l > 0.0f ? (m + __log2f(l)) * flex::kLn2 : -INFINITY;
    }
}

template <typename Elem, int D>
Status decode(const DecodeArgs& a, cudaStream_t stream, LaunchLog* log) {
    const dim3 grid(a.splits, a.kvHeads * headChunks(a.heads, a.kvHeads), a.batch);
    constexpr int shared = decodeSharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(
        cudaFuncSetAttribute(decodeKernel<Elem, D>, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    decodeKernel<Elem, D><<<grid, kDecodeThreads, shared, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("decodeKernel");
    return recordLaunch(decodeKernel<Elem, D>, "decode_split_kv", grid, dim3(kDecodeThreads), shared, log);
}

}  // namespace

int decodeSplits(int batch, int heads, int kvHeads, int tokens, int smCount) {
    // One wave of kCtasPerSm CTAs per SM over (batch, kv head, head chunk, slice), but no slice
    // shorter than kMinKeysPerSplit keys (each warp then streams at least 4 tiles).
    const long long perSlice =
        static_cast<long long>(batch) * std::max(1, kvHeads) * headChunks(heads, std::max(1, kvHeads));
    const int wanted = int(std::max<long long>(1, kCtasPerSm * static_cast<long long>(smCount) / perSlice));
    const int maxByLength = std::max(1, tokens / kMinKeysPerSplit);
    return std::min({wanted, maxByLength, kMaxSplits});
}

size_t decodeWorkspaceFloats(const DecodeArgs& a) {
    return static_cast<size_t>(a.splits) * a.batch * a.heads * (a.headDim + 2);
}

size_t decodeCounterCount(const DecodeArgs& a) {
    return static_cast<size_t>(a.batch) * a.kvHeads * headChunks(a.heads, a.kvHeads);
}

Status launchDecode(const DecodeArgs& args, cudaStream_t stream, LaunchLog* log) {
    if (args.tokens <= 0 || args.splits <= 0 || args.splits > kMaxSplits || !args.partial ||
        (args.splits > 1 && !args.counters))
        return {ErrorCode::InvalidArgument,
                "decode: tokens, splits (1 .. 256), the workspace and counters must be set"};
    if (args.kvHeads <= 0 || args.heads % args.kvHeads != 0)
        return {ErrorCode::InvalidArgument, "decode: heads must be a multiple of kvHeads"};
    DecodeArgs a = args;
    // Slices of whole 64-key rounds (4 warps × 16 keys); trailing slices may be empty.
    const int round = kDecodeWarps * kTileKeys;
    a.keysPerSplit = ((a.tokens + a.splits - 1) / a.splits + round - 1) / round * round;
    const bool bf16 = a.elem == ElemType::BF16;
    if (a.headDim == 64) return bf16 ? decode<__nv_bfloat16, 64>(a, stream, log) : decode<__half, 64>(a, stream, log);
    if (a.headDim == 128)
        return bf16 ? decode<__nv_bfloat16, 128>(a, stream, log) : decode<__half, 128>(a, stream, log);
    return {ErrorCode::Unsupported, "decode: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
}

}  // namespace attnscope::gpu
