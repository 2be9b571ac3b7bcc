// Split-KV decode (flash-decoding): one query per (batch, head) against a long KV. Each CTA
// reduces one slice of the keys to a partial (m, l, o); a merge kernel combines the slices with
// the associative online-softmax rule and writes O and lse.
#include <algorithm>

#include "cuda_check.h"
#include "launch.h"
#include "mma.cuh"

namespace attnscope::gpu {
namespace {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = kDecodeWarps * 32;
constexpr int kLanesPerKey = 8;                       ///< lanes sharing one key's dot product
constexpr int kKeysPerWarp = 32 / kLanesPerKey;       ///< keys a warp handles per step
constexpr int kGroups = kDecodeWarps * kKeysPerWarp;  ///< independent (m, l, o) accumulators per CTA
/// Keys each group takes per step. Their K and V rows are all loaded before any is used, so a
/// warp keeps 2·kUnroll 16-to-32-byte loads per lane in flight: decode is a pure HBM stream and
/// one key's load → reduce → load V chain per step left the bandwidth mostly idle.
constexpr int kUnroll = 4;
constexpr int kMinKeysPerSplit = 256;

/// A lane's share of one K or V row, as loaded (16-byte vectors of Elem).
template <int Slice>
struct RawSlice {
    static_assert(Slice % 8 == 0, "whole 16-byte vectors");
    uint4 v[Slice / 8];
};

template <int Slice, typename Elem>
__device__ __forceinline__ void loadRaw(RawSlice<Slice>& r, const Elem* src) {
#pragma unroll
    for (int i = 0; i < Slice / 8; ++i) r.v[i] = __ldcs(reinterpret_cast<const uint4*>(src) + i);  // streamed once
}

template <typename Elem, int Slice>
__device__ __forceinline__ float toFloat(const RawSlice<Slice>& r, int i) {
    return flex::ElemOps<Elem>::toFloat(reinterpret_cast<const Elem*>(r.v)[i]);
}

template <typename Elem, int D>
__global__ void __launch_bounds__(kDecodeThreads) decodePartialKernel(DecodeArgs a) {
    constexpr int kSlice = D / kLanesPerKey;  // elements of q, k, v this lane owns
    // blockIdx.x = split · group + member: the query heads sharing a kv head run side by side on
    // the same key slice, so with GQA their K/V reads after the first come from L2.
    const int groupSize = a.heads / a.kvHeads;
    const int split = blockIdx.x / groupSize, hk = blockIdx.y, b = blockIdx.z;
    const int h = hk * groupSize + blockIdx.x % groupSize;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int group = warp * kKeysPerWarp + lane / kLanesPerKey;
    const int sub = lane % kLanesPerKey;
    const int perSplit = (a.tokens + a.splits - 1) / a.splits;
    const int kBegin = split * perSplit, kEnd = min(a.tokens, kBegin + perSplit);

    const Elem* q = static_cast<const Elem*>(a.q) + (static_cast<long long>(b) * a.heads + h) * D + sub * kSlice;
    const long long kvHead = (static_cast<long long>(b) * a.kvHeads + hk) * a.tokens * D;
    const Elem* kp = static_cast<const Elem*>(a.k) + kvHead + sub * kSlice;
    const Elem* vp = static_cast<const Elem*>(a.v) + kvHead + sub * kSlice;
    float qf[kSlice], o[kSlice];
    flex::loadFloats<Elem, kSlice>(qf, q);
#pragma unroll
    for (int i = 0; i < kSlice; ++i) {
        qf[i] *= a.scale;
        o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    // Every lane of a warp runs the same trip count (the shuffles need the whole warp). Step keys:
    // base + u·kGroups + group, so the groups of a warp read consecutive rows for each u.
    for (int base = kBegin; base < kEnd; base += kGroups * kUnroll) {
        RawSlice<kSlice> kr[kUnroll], vr[kUnroll];
        bool valid[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            const int key = base + u * kGroups + group;
            valid[u] = key < kEnd;
            if (valid[u]) {
                loadRaw(kr[u], kp + static_cast<long long>(key) * D);
                loadRaw(vr[u], vp + static_cast<long long>(key) * D);
            }
        }
        // s_u = scale · q·k_u, summed over the 8 lanes of each key
        float s[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            s[u] = 0.0f;
            if (valid[u]) {
#pragma unroll
                for (int i = 0; i < kSlice; ++i) s[u] += qf[i] * toFloat<Elem>(kr[u], i);
            }
        }
#pragma unroll
        for (int off = kLanesPerKey / 2; off > 0; off /= 2) {
#pragma unroll
            for (int u = 0; u < kUnroll; ++u) s[u] += __shfl_xor_sync(0xffffffffu, s[u], off);
        }
        float mNew = m;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
            if (valid[u]) mNew = fmaxf(mNew, s[u]);
        if (mNew == -INFINITY) continue;  // no valid key in this step for this group
        const float alpha = __expf(m - mNew);
        l *= alpha;
#pragma unroll
        for (int i = 0; i < kSlice; ++i) o[i] *= alpha;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
            if (!valid[u]) continue;
            const float p = __expf(s[u] - mNew);
            l += p;
#pragma unroll
            for (int i = 0; i < kSlice; ++i) o[i] += p * toFloat<Elem>(vr[u], i);
        }
        m = mNew;
    }
    // Combine the CTA's groups through shared memory, then write this split's partial.
    __shared__ float sM[kGroups], sL[kGroups], sO[kGroups][D];
    if (sub == 0) {
        sM[group] = m;
        sL[group] = l;
    }
#pragma unroll
    for (int i = 0; i < kSlice; ++i) sO[group][sub * kSlice + i] = o[i];
    __syncthreads();
    float* out = a.partial + ((static_cast<long long>(split) * a.batch + b) * a.heads + h) * (D + 2);
    for (int d = threadIdx.x; d < D + 2; d += kDecodeThreads) {
        float mMax = -INFINITY;
        for (int g = 0; g < kGroups; ++g) mMax = fmaxf(mMax, sM[g]);
        float lSum = 0.0f, oSum = 0.0f;
        for (int g = 0; g < kGroups; ++g) {
            const float w = sM[g] == -INFINITY ? 0.0f : __expf(sM[g] - mMax);
            lSum += w * sL[g];
            if (d < D) oSum += w * sO[g][d];
        }
        out[d] = d < D ? oSum : (d == D ? mMax : lSum);
    }
}

template <typename Elem, int D>
__global__ void decodeMergeKernel(DecodeArgs a) {
    using Ops = flex::ElemOps<Elem>;
    const int h = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
    const long long stride = static_cast<long long>(a.batch) * a.heads * (D + 2);
    const float* base = a.partial + (static_cast<long long>(b) * a.heads + h) * (D + 2);
    float mMax = -INFINITY;
    for (int s = 0; s < a.splits; ++s) mMax = fmaxf(mMax, base[s * stride + D]);
    float lSum = 0.0f, oSum = 0.0f;
    for (int s = 0; s < a.splits; ++s) {
        const float ms = base[s * stride + D];
        const float w = ms == -INFINITY ? 0.0f : __expf(ms - mMax);
        lSum += w * base[s * stride + D + 1];
        oSum += w * base[s * stride + d];
    }
    const float value = lSum > 0.0f ? oSum / lSum : 0.0f;
    Elem* o = static_cast<Elem*>(a.o) + (static_cast<long long>(b) * a.heads + h) * D;
    o[d] = Ops::fromFloat(value);
    if (d == 0) a.lse[static_cast<long long>(b) * a.heads + h] = lSum > 0.0f ? mMax + logf(lSum) : -INFINITY;
}

template <typename Elem, int D>
Status decode(const DecodeArgs& a, cudaStream_t stream, LaunchLog* log) {
    const dim3 grid(a.splits * (a.heads / a.kvHeads), a.kvHeads, a.batch);
    decodePartialKernel<Elem, D><<<grid, kDecodeThreads, 0, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("decodePartialKernel");
    const dim3 mergeGrid(a.heads, a.batch);
    decodeMergeKernel<Elem, D><<<mergeGrid, D, 0, stream>>>(a);
    ATTNSCOPE_CUDA_TRY_LAUNCH("decodeMergeKernel");
    if (log) {
        cudaFuncAttributes attr{};
        ATTNSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, decodePartialKernel<Elem, D>));
        log->push_back({"decode_split_kv", grid, dim3(kDecodeThreads), attr.numRegs, int(attr.sharedSizeBytes)});
        ATTNSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, decodeMergeKernel<Elem, D>));
        log->push_back({"decode_merge", mergeGrid, dim3(D), attr.numRegs, int(attr.sharedSizeBytes)});
    }
    return {};
}

}  // namespace

int decodeSplits(int batch, int heads, int tokens, int smCount) {
    // About eight 128-thread CTAs per SM (enough loads in flight to stream K and V at HBM speed),
    // but no slice shorter than kMinKeysPerSplit keys.
    const int wanted = std::max(1, 8 * smCount / std::max(1, batch * heads));
    const int maxByLength = std::max(1, tokens / kMinKeysPerSplit);
    return std::min(wanted, maxByLength);
}

size_t decodeWorkspaceFloats(const DecodeArgs& a) {
    return static_cast<size_t>(a.splits) * a.batch * a.heads * (a.headDim + 2);
}

Status launchDecode(const DecodeArgs& a, cudaStream_t stream, LaunchLog* log) {
    if (a.tokens <= 0 || a.splits <= 0 || !a.partial)
        return {ErrorCode::InvalidArgument, "decode: tokens, splits and the workspace must be set"};
    if (a.heads % a.kvHeads != 0) return {ErrorCode::InvalidArgument, "decode: heads must be a multiple of kvHeads"};
    const bool bf16 = a.elem == ElemType::BF16;
    if (a.headDim == 64) return bf16 ? decode<__nv_bfloat16, 64>(a, stream, log) : decode<__half, 64>(a, stream, log);
    if (a.headDim == 128)
        return bf16 ? decode<__nv_bfloat16, 128>(a, stream, log) : decode<__half, 128>(a, stream, log);
    return {ErrorCode::Unsupported, "decode: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
}

}  // namespace attnscope::gpu
