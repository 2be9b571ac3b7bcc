#pragma once
// Warp-level building blocks for sm_80+ tensor-core kernels: cp.async, ldmatrix, mma.sync
// m16n8k16 (bf16/fp16 in, fp32 accumulate) and the fast special functions.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace attnscope::flex {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// ---- asynchronous copies ---------------------------------------------------------------------
/// 16-byte global -> shared copy; when !valid the destination is zero-filled (rows beyond T).
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid) {
    const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    const int bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// ---- shared -> register fragments --------------------------------------------------------------
__device__ __forceinline__ void ldmatrixX4(unsigned (&r)[4], const void* smem) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldmatrixX4Trans(unsigned (&r)[4], const void* smem) {
    const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

// ---- element types ---------------------------------------------------------------------------
template <typename Elem>
struct ElemOps;

template <>
struct ElemOps<__nv_bfloat16> {
    __device__ __forceinline__ static unsigned pack(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<unsigned*>(&v);
    }
    __device__ __forceinline__ static float toFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
    __device__ __forceinline__ static __nv_bfloat16 fromFloat(float x) { return __float2bfloat16(x); }
    /// D (16×8) += A (16×16, row) · B (16×8, col)
    __device__ __forceinline__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

template <>
struct ElemOps<__half> {
    __device__ __forceinline__ static unsigned pack(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<unsigned*>(&v);
    }
    __device__ __forceinline__ static float toFloat(__half x) { return __half2float(x); }
    __device__ __forceinline__ static __half fromFloat(float x) { return __float2half(x); }
    __device__ __forceinline__ static void mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

/// Loads N consecutive elements (N·2 bytes, 16-byte aligned) as floats.
template <typename Elem, int N>
__device__ __forceinline__ void loadFloats(float (&out)[N], const Elem* src) {
    static_assert(N % 8 == 0, "whole 16-byte vectors");
#pragma unroll
    for (int v = 0; v < N / 8; ++v) {
        const uint4 raw = reinterpret_cast<const uint4*>(src)[v];
        const Elem* e = reinterpret_cast<const Elem*>(&raw);
#pragma unroll
        for (int i = 0; i < 8; ++i) out[v * 8 + i] = ElemOps<Elem>::toFloat(e[i]);
    }
}

// ---- special functions -------------------------------------------------------------------------
/// 2^x with the SFU (ex2.approx(-inf) = 0, which maps masked scores to probability 0).
__device__ __forceinline__ float fastExp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
/// tanh with the SFU (sm_75+), max relative error about 2^-11.
__device__ __forceinline__ float fastTanh(float x) {
    float y;
    asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

}  // namespace attnscope::flex
