#pragma once
// CUDA error handling: every runtime call is wrapped so a failure becomes a Status naming the
// call, the file:line and the CUDA error (nvbench cuda_call style).
#include <cuda_runtime_api.h>

#include <string>

#include "attnscope/status.h"

namespace attnscope::gpu {

inline Status cudaStatus(cudaError_t err, const char* what, const char* file, int line) {
    if (err == cudaSuccess) return {};
    const ErrorCode code = err == cudaErrorMemoryAllocation ? ErrorCode::OutOfMemory : ErrorCode::Device;
    return {code, std::string(what) + " failed at " + file + ":" + std::to_string(line) + ": " + cudaGetErrorName(err) +
                      " (" + cudaGetErrorString(err) + ")"};
}

}  // namespace attnscope::gpu

/// Evaluates a CUDA runtime call; on failure returns its Status from the enclosing function.
#define ATTNSCOPE_CUDA_TRY(call)                                                                                    \
    do {                                                                                                            \
        ::attnscope::Status attnscopeCudaStatus_ = ::attnscope::gpu::cudaStatus((call), #call, __FILE__, __LINE__); \
        if (!attnscopeCudaStatus_) return attnscopeCudaStatus_;                                                     \
    } while (0)

/// Checks the last kernel launch (configuration errors surface here, not at the <<<>>>).
#define ATTNSCOPE_CUDA_TRY_LAUNCH(name)                                                              \
    do {                                                                                             \
        ::attnscope::Status attnscopeCudaStatus_ =                                                   \
            ::attnscope::gpu::cudaStatus(cudaGetLastError(), "launch of " name, __FILE__, __LINE__); \
        if (!attnscopeCudaStatus_) return attnscopeCudaStatus_;                                      \
    } while (0)

/// Returns a Status from the enclosing function when it is an error.
#define ATTNSCOPE_TRY_STATUS(expr)                      \
    do {                                                \
        ::attnscope::Status attnscopeStatus_ = (expr);  \
        if (!attnscopeStatus_) return attnscopeStatus_; \
    } while (0)
