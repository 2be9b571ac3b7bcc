#pragma once
// The few cuDNN entry points the cudnn:* variants call, resolved from libcudnn.so.9 at run time
// (dlopen + dlsym): the binary has no link-time dependency on cuDNN. Types and enum values come
// from cuDNN 9's cudnn_graph.h (the backend graph API).
#include <cudnn_graph.h>

#include <cstddef>
#include <string>

#include "attnscope/status.h"

namespace attnscope::gpu {

/// cuDNN 9.0: the first release with the backend API as used here (and libcudnn.so.9's soname).
constexpr size_t kMinCudnnVersion = 90000;
/// cuDNN 9.2: the first whose SDPA graph accepts a sliding-window (left bound) mask.
constexpr size_t kCudnnSlidingWindowVersion = 90200;

struct CudnnApi {
    std::string path;    ///< the file dlopen loaded
    size_t version = 0;  ///< cudnnGetVersion(): major·10000 + minor·100 + patch

    decltype(&cudnnGetVersion) getVersion = nullptr;
    decltype(&cudnnGetErrorString) getErrorString = nullptr;
    decltype(&cudnnGetLastErrorString) getLastErrorString = nullptr;  ///< optional (cuDNN ≥ 9.0)
    decltype(&cudnnCreate) create = nullptr;
    decltype(&cudnnDestroy) destroy = nullptr;
    decltype(&cudnnSetStream) setStream = nullptr;
    decltype(&cudnnBackendCreateDescriptor) createDescriptor = nullptr;
    decltype(&cudnnBackendDestroyDescriptor) destroyDescriptor = nullptr;
    decltype(&cudnnBackendSetAttribute) setAttribute = nullptr;
    decltype(&cudnnBackendGetAttribute) getAttribute = nullptr;
    decltype(&cudnnBackendFinalize) finalize = nullptr;
    decltype(&cudnnBackendExecute) execute = nullptr;

    /// "CUDNN_STATUS_NOT_SUPPORTED: <cuDNN's last error message>".
    std::string describe(cudnnStatus_t status) const;
};

/// "9.19.0" for 91900.
std::string cudnnVersionString(size_t version);

/// Loads cuDNN once per candidate list (ATTNSCOPE_CUDNN_LIB alone when set, else the usual
/// names and paths) and checks its symbols and version. The error says what was tried and why
/// each failed.
Result<const CudnnApi*> loadCudnn();

}  // namespace attnscope::gpu
