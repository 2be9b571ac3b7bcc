#pragma once
// Owning device allocations and host-side dtype conversion for the engine.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/gpu.h"
#include "cuda_check.h"

namespace attnscope::gpu {

/// A cudaMalloc'd block freed on destruction (move-only).
class DeviceArray {
public:
    DeviceArray() = default;
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
    DeviceArray(DeviceArray&& o) noexcept : m_ptr(o.m_ptr), m_bytes(o.m_bytes) { o.m_ptr = nullptr, o.m_bytes = 0; }
    DeviceArray& operator=(DeviceArray&& o) noexcept {
        if (this != &o) {
            release();
            m_ptr = o.m_ptr, m_bytes = o.m_bytes;
            o.m_ptr = nullptr, o.m_bytes = 0;
        }
        return *this;
    }
    ~DeviceArray() { release(); }

    /// Allocates `bytes` (reuses the block when it is already that large); the error names `what`.
    Status allocate(size_t bytes, const std::string& what);
    /// Allocates and copies host data (synchronous).
    Status upload(const void* host, size_t bytes, const std::string& what);

    void* get() const { return m_ptr; }
    template <typename T>
    T* as() const {
        return static_cast<T*>(m_ptr);
    }
    size_t bytes() const { return m_bytes; }

private:
    void release();
    void* m_ptr = nullptr;
    size_t m_bytes = 0;
};

/// Free and total device memory (cudaMemGetInfo), both capped by ATTNSCOPE_GPU_MEMORY_LIMIT when
/// it is set (bytes, or with a K, M or G suffix: as if the GPU had that much; tests use it to
/// reach the out-of-memory refusals at sizes a test can afford). False when CUDA cannot say.
bool deviceMemory(size_t& freeBytes, size_t& totalBytes);
/// Refuses work before anything is allocated when `needBytes` exceed `share` of the free device
/// memory: OutOfMemory "<what> needs X of GPU memory; Y of Z is free". Success when CUDA cannot
/// say (the allocation then reports).
Status checkDeviceFits(double needBytes, const std::string& what, double share = 0.9);

/// Rounds floats to the dtype (round to nearest even) and packs them as 16-bit words.
std::vector<uint16_t> toDType(const std::vector<float>& x, GpuDType t);
/// Widens 16-bit words of the dtype to floats.
std::vector<float> fromDType(const std::vector<uint16_t>& x, GpuDType t);
/// The float the dtype stores for x (what the GPU computes with).
float roundToDType(float x, GpuDType t);
/// One value: the dtype's 16-bit word for x (round to nearest even) and back.
uint16_t toDTypeBits(float x, GpuDType t);
float fromDTypeBits(uint16_t bits, GpuDType t);
const char* dtypeLabel(GpuDType t);

}  // namespace attnscope::gpu
