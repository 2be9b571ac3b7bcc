#pragma once
// Register-fragment pieces shared by the passes that keep S in mma.sync registers
// (analysis_mma.cu: stats, estimate, masked, lse; map_mma.cu: the map's pooling): the m16n8
// fragment view, the ballot-compacted tile list and S = Q·Kᵀ for a warp's 16 rows × 64 keys.
// Each thread holds rows lane/4 and lane/4 + 8, columns 8j + 2(lane%4) + {0, 1} of n8 tile j
// (flex_common.cuh's accumulator layout).
#include "analysis_device.cuh"

namespace attnscope::gpu::frag {

using flex::ElemOps;
using pass::kKeys;
using pass::kThreads;
using pass::kWarps;

constexpr int kNT = kKeys / 8;  ///< n8 score tiles of a warp's 16 × 64 strip

/// Reinterprets four consecutive accumulators as one m16n8 fragment.
__device__ __forceinline__ float (&frag(float* x, int tile))[4] { return *reinterpret_cast<float(*)[4]>(x + 4 * tile); }

/// The key tiles a CTA visits, found kThreads candidates at a time (one per thread, compacted
/// with ballots). Every thread calls take() at the same point (the barriers inside).
struct TileList {
    int* list;       ///< [kThreads] tile indices
    int* warpCount;  ///< [kWarps]
    int next, end;   ///< candidates [next, end)
    int count = 0, pos = 0;

    template <typename Visit>
    __device__ __forceinline__ int take(const Visit& visit) {
        if (pos >= count) {
            count = 0, pos = 0;
            while (count == 0 && next < end) {
                const int t = next + int(threadIdx.x);
                const bool v = t < end && visit(t);
                const unsigned ballot = __ballot_sync(0xffffffffu, v);
                const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                __syncthreads();  // the readers of the previous list and counts are done
                if (lane == 0) warpCount[warp] = __popc(ballot);
                __syncthreads();
                int base = 0, total = 0;
#pragma unroll
                for (int w = 0; w < kWarps; ++w) {
                    base += w < warp ? warpCount[w] : 0;
                    total += warpCount[w];
                }
                if (v) list[base + __popc(ballot & ((1u << lane) - 1u))] = t;
                __syncthreads();
                count = total;
                next += kThreads;
            }
            if (count == 0) return -1;
        }
        return list[pos++];
    }
};

/// S (16 rows of the warp × 64 keys) = Q·Kᵀ.
template <typename Elem, int D>
__device__ __forceinline__ void scoreFragments(float (&s)[kNT * 4], const Elem* sQ, const Elem* sK, int warp,
                                               int lane) {
    using Ops = ElemOps<Elem>;
    constexpr int ld = D + 8;
#pragma unroll
    for (int x = 0; x < kNT * 4; ++x) s[x] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
        unsigned a[4];
        flex::ldmatrixX4(a, sQ + (warp * 16 + (lane % 8) + ((lane / 8) % 2) * 8) * ld + kk * 16 + (lane / 16) * 8);
#pragma unroll
        for (int np = 0; np < kNT / 2; ++np) {
            unsigned b[4];
            flex::ldmatrixX4(b, sK + (np * 16 + (lane % 8) + (lane / 16) * 8) * ld + kk * 16 + ((lane / 8) % 2) * 8);
            Ops::mma(frag(s, 2 * np), a, b[0], b[1]);
            Ops::mma(frag(s, 2 * np + 1), a, b[2], b[3]);
        }
    }
}

/// The thread's rows and their pass-1 results.
struct Rows {
    int i[2];       ///< query rows
    bool live[2];   ///< in the pass's rows with an allowed key
    float lse2[2];  ///< L_i in log2 units
};

}  // namespace attnscope::gpu::frag
