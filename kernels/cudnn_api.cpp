// Run-time loading of cuDNN for the cudnn:* variants: candidates, dlopen/dlsym, version check.
#include "cudnn_api.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "attnscope/gpu.h"

namespace attnscope::gpu {
namespace {

constexpr const char* kSoname = "libcudnn.so.9";
constexpr size_t kLastErrorBytes = 1024;

/// Where to look: ATTNSCOPE_CUDNN_LIB alone when set (a wrong path must fail, not fall back);
/// otherwise the loader's own search (LD_LIBRARY_PATH, RUNPATH, ld.so.cache), then the usual
/// installation directories.
std::vector<std::string> candidates() {
    if (const char* forced = std::getenv("ATTNSCOPE_CUDNN_LIB"); forced && *forced) return {forced};
    std::vector<std::string> c = {kSoname};
    for (const char* var : {"CUDNN_PATH", "CUDNN_HOME"})
        if (const char* dir = std::getenv(var); dir && *dir) {
            c.push_back(std::string(dir) + "/lib/" + kSoname);
            c.push_back(std::string(dir) + "/lib64/" + kSoname);
        }
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
        if (const char* dir = std::getenv(var); dir && *dir) c.push_back(std::string(dir) + "/lib64/" + kSoname);
    c.push_back(std::string("/usr/local/cuda/lib64/") + kSoname);
    c.push_back(std::string("/usr/lib/x86_64-linux-gnu/") + kSoname);
    return c;
}

template <typename F>
bool resolve(void* lib, const char* name, F& slot, std::string& missing) {
    slot = reinterpret_cast<F>(dlsym(lib, name));
    if (!slot && missing.empty()) missing = name;
    return slot != nullptr;
}

/// dlopens one candidate and fills the API; the error names the file and what failed.
Result<std::unique_ptr<CudnnApi>> open(const std::string& path) {
    dlerror();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char* e = dlerror();
        return Status{ErrorCode::IoError, path + ": " + (e ? e : "dlopen failed")};  // a miss: try the next
    }
    auto api = std::make_unique<CudnnApi>();
    std::string missing;
    resolve(lib, "cudnnGetVersion", api->getVersion, missing);
    resolve(lib, "cudnnGetErrorString", api->getErrorString, missing);
    resolve(lib, "cudnnCreate", api->create, missing);
    resolve(lib, "cudnnDestroy", api->destroy, missing);
    resolve(lib, "cudnnSetStream", api->setStream, missing);
    resolve(lib, "cudnnBackendCreateDescriptor", api->createDescriptor, missing);
    resolve(lib, "cudnnBackendDestroyDescriptor", api->destroyDescriptor, missing);
    resolve(lib, "cudnnBackendSetAttribute", api->setAttribute, missing);
    resolve(lib, "cudnnBackendGetAttribute", api->getAttribute, missing);
    resolve(lib, "cudnnBackendFinalize", api->finalize, missing);
    resolve(lib, "cudnnBackendExecute", api->execute, missing);
    std::string optional;
    resolve(lib, "cudnnGetLastErrorString", api->getLastErrorString, optional);
    if (!api->getVersion) return Status{ErrorCode::Unsupported, path + " is not cuDNN: it exports no cudnnGetVersion"};
    api->path = path;
    api->version = api->getVersion();
    if (api->version < kMinCudnnVersion)
        return Status{ErrorCode::Unsupported, "cuDNN " + cudnnVersionString(api->version) + " at " + path +
                                                  " is too old: the cudnn:* variants need cuDNN " +
                                                  cudnnVersionString(kMinCudnnVersion) +
                                                  " or newer (backend graph API)"};
    if (!missing.empty())
        return Status{ErrorCode::Unsupported,
                      "cuDNN " + cudnnVersionString(api->version) + " at " + path + " exports no " + missing};
    return api;
}

}  // namespace

std::string cudnnVersionString(size_t v) {
    return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::string CudnnApi::describe(cudnnStatus_t status) const {
    std::string s = getErrorString ? getErrorString(status) : ("cudnnStatus " + std::to_string(int(status)));
    if (getLastErrorString) {
        char buf[kLastErrorBytes] = {};
        getLastErrorString(buf, sizeof buf);
        if (buf[0]) s += std::string(": ") + buf;
    }
    return s;
}

Result<const CudnnApi*> loadCudnn() {
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<CudnnApi>> loaded;  // by candidate list; never unloaded
    static std::map<std::string, Status> failed;
    const std::vector<std::string> tried = candidates();
    std::string key;
    for (const auto& c : tried) key += c + "\n";
    std::lock_guard lock(mutex);
    if (auto it = loaded.find(key); it != loaded.end()) return static_cast<const CudnnApi*>(it->second.get());
    if (auto it = failed.find(key); it != failed.end()) return it->second;
    std::string why;
    for (const auto& path : tried) {
        auto api = open(path);
        if (api) return static_cast<const CudnnApi*>((loaded[key] = std::move(*api)).get());
        // A library that loads but is wrong (too old, not cuDNN) is the answer, not a miss.
        if (api.status().code() != ErrorCode::IoError) return failed[key] = api.status();
        why += (why.empty() ? "" : "; ") + api.message();
    }
    const bool forced = tried.size() == 1 && std::getenv("ATTNSCOPE_CUDNN_LIB");
    return failed[key] = Status{ErrorCode::Unsupported,
                                forced ? "cuDNN not found: ATTNSCOPE_CUDNN_LIB names " + why
                                       : "cuDNN not found (tried " + why +
                                             "); set ATTNSCOPE_CUDNN_LIB to the path of libcudnn.so.9 (PyTorch ships "
                                             "one in site-packages/nvidia/cudnn/lib)"};
}

}  // namespace attnscope::gpu

namespace attnscope {

VendorLibraryInfo probeCudnn() {
    VendorLibraryInfo info;
    auto api = gpu::loadCudnn();
    if (!api) {
        info.reason = api.message();
        return info;
    }
    info.available = true;
    info.path = (*api)->path;
    info.version = gpu::cudnnVersionString((*api)->version);
    return info;
}

}  // namespace attnscope
