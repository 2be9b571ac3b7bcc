// Device allocations and host-side bf16/fp16 conversion.
#include "device_memory.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "attnscope/memory.h"

namespace attnscope::gpu {

namespace {
/// ATTNSCOPE_GPU_MEMORY_LIMIT in bytes (0: not set or not a size).
size_t memoryLimit() {
    const char* text = std::getenv("ATTNSCOPE_GPU_MEMORY_LIMIT");
    if (!text || !*text) return 0;
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    double scale = 1;
    if (end && (*end == 'K' || *end == 'k')) scale = 1024.0;
    if (end && (*end == 'M' || *end == 'm')) scale = 1024.0 * 1024;
    if (end && (*end == 'G' || *end == 'g')) scale = 1024.0 * 1024 * 1024;
    return v > 0 ? size_t(v * scale) : 0;
}
}  // namespace

bool deviceMemory(size_t& freeBytes, size_t& totalBytes) {
    freeBytes = totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    if (const size_t limit = memoryLimit(); limit > 0)
        freeBytes = std::min(freeBytes, limit), totalBytes = std::min(totalBytes, limit);
    return true;
}

Status checkDeviceFits(double needBytes, const std::string& what, double share) {
    size_t freeBytes = 0, totalBytes = 0;
    if (!deviceMemory(freeBytes, totalBytes) || needBytes <= share * double(freeBytes)) return {};
    return {ErrorCode::OutOfMemory, what + " needs " + humanBytes(uint64_t(needBytes)) + " of GPU memory; " +
                                        humanBytes(freeBytes) + " of " + humanBytes(totalBytes) + " is free"};
}

Status DeviceArray::allocate(size_t bytes, const std::string& what) {
    if (m_ptr && m_bytes >= bytes) return {};
    release();
    const cudaError_t err = cudaMalloc(&m_ptr, bytes == 0 ? 1 : bytes);
    if (err != cudaSuccess) {
        m_ptr = nullptr;
        size_t freeBytes = 0, totalBytes = 0;
        cudaGetLastError();
        deviceMemory(freeBytes, totalBytes);
        return {err == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Device,
                "cudaMalloc of " + std::to_string(bytes) + " bytes for " + what + " failed (" +
                    std::to_string(freeBytes >> 20) + " MiB free of " + std::to_string(totalBytes >> 20) +
                    " MiB): " + cudaGetErrorString(err)};
    }
    m_bytes = bytes;
    return {};
}

Status DeviceArray::upload(const void* host, size_t bytes, const std::string& what) {
    ATTNSCOPE_TRY_STATUS(allocate(bytes, what));
    if (bytes > 0) ATTNSCOPE_CUDA_TRY(cudaMemcpy(m_ptr, host, bytes, cudaMemcpyHostToDevice));
    return {};
}

void DeviceArray::release() {
    if (m_ptr) cudaFree(m_ptr);
    m_ptr = nullptr;
    m_bytes = 0;
}

namespace {
uint16_t bits(float x, GpuDType t) {
    uint16_t out;
    if (t == GpuDType::BF16) {
        const __nv_bfloat16 h = __float2bfloat16_rn(x);
        std::memcpy(&out, &h, sizeof out);
    } else {
        const __half h = __float2half_rn(x);
        std::memcpy(&out, &h, sizeof out);
    }
    return out;
}
float widen(uint16_t b, GpuDType t) {
    if (t == GpuDType::BF16) {
        __nv_bfloat16 h;
        std::memcpy(&h, &b, sizeof b);
        return __bfloat162float(h);
    }
    __half h;
    std::memcpy(&h, &b, sizeof b);
    return __half2float(h);
}
}  // namespace

std::vector<uint16_t> toDType(const std::vector<float>& x, GpuDType t) {
    std::vector<uint16_t> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = bits(x[i], t);
    return out;
}

std::vector<float> fromDType(const std::vector<uint16_t>& x, GpuDType t) {
    std::vector<float> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = widen(x[i], t);
    return out;
}

float roundToDType(float x, GpuDType t) { return widen(bits(x, t), t); }
uint16_t toDTypeBits(float x, GpuDType t) { return bits(x, t); }
float fromDTypeBits(uint16_t b, GpuDType t) { return widen(b, t); }

const char* dtypeLabel(GpuDType t) { return t == GpuDType::BF16 ? "bf16" : "f16"; }

}  // namespace attnscope::gpu
