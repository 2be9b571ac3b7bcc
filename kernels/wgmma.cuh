#pragma once
// Hopper (sm_90a) warpgroup-MMA plumbing: shared-memory matrix descriptors for the 128-byte
// swizzled layout, the fence / commit / wait instructions, and the proxy fence that makes
// cp.async writes visible to wgmma. The MMA wrappers themselves are generated (wgmma_ops.cuh).
//
// Tile layout ("K-major, 128-byte swizzle", the canonical layout wgmma reads): a [rows × D] tile
// of 16-bit elements is stored as D/64 column panels of [rows × 64]; row r of a panel is 128 bytes
// whose 16-byte chunks are XOR-permuted by r % 8. Eight rows (1 KiB) form one swizzle atom, so
// panels and tiles start on 1 KiB boundaries.
#include "wgmma_ops.cuh"

namespace attnscope::flex {

/// Byte offset of the 16-byte chunk `chunk` (= column / 8) of row `row` in a swizzled tile.
template <int ROWS>
__device__ __forceinline__ unsigned swizzledChunkOffset(int row, int chunk) {
    return static_cast<unsigned>((chunk >> 3) * ROWS * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4));
}

/// wgmma shared-memory descriptor: start address, leading / stride byte offsets, 128B swizzle.
__device__ __forceinline__ unsigned long long smemDescriptor(const void* smem, unsigned leadingBytes,
                                                             unsigned strideBytes) {
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    return static_cast<unsigned long long>((address & 0x3FFFF) >> 4) |
           (static_cast<unsigned long long>(leadingBytes >> 4) << 16) |
           (static_cast<unsigned long long>(strideBytes >> 4) << 32) | (1ull << 62);
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmmaWait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/// Generic-proxy writes (cp.async, st.shared) become visible to the async proxy (wgmma).
__device__ __forceinline__ void fenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#else
__device__ __forceinline__ void wgmmaFence() {}
__device__ __forceinline__ void wgmmaCommit() {}
template <int N>
__device__ __forceinline__ void wgmmaWait() {}
__device__ __forceinline__ void fenceProxyAsync() {}
#endif

/// Named barriers (ids 1..15; 0 is __syncthreads) over `threads` threads: sync waits, arrive
/// only signals. Two warpgroups take turns with them (ping-pong scheduling).
__device__ __forceinline__ void namedBarrierSync(int id, int threads) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void namedBarrierArrive(int id, int threads) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

/// Keeps the compiler from moving reads of wgmma accumulators above the wait that completes them.
template <int N>
__device__ __forceinline__ void fenceRegisters(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i]));
}

/// The same for A fragments an asynchronous MMA reads from registers.
template <int N>
__device__ __forceinline__ void fenceRegisters(unsigned (&r)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(r[i][j]));
}

}  // namespace attnscope::flex
