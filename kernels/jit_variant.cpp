// NVRTC compilation of user variants (jit_variant.h): NVRTC is opened at run time (dlopen), so
// the binaries start and the built-in variants run where it is missing; the error then says so.
#include "jit_variant.h"

#include <dlfcn.h>
#include <nvrtc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <vector>

#include "attnscope/trace.h"
#include "attnscope/variant_expr.h"
#include "cuda_check.h"

namespace attnscope::gpu {
namespace {

// ---- NVRTC, opened at run time -----------------------------------------------------------------
struct Nvrtc {
    decltype(&nvrtcCreateProgram) create = nullptr;
    decltype(&nvrtcAddNameExpression) addName = nullptr;
    decltype(&nvrtcCompileProgram) compile = nullptr;
    decltype(&nvrtcGetProgramLogSize) logSize = nullptr;
    decltype(&nvrtcGetProgramLog) log = nullptr;
    decltype(&nvrtcGetCUBINSize) cubinSize = nullptr;
    decltype(&nvrtcGetCUBIN) cubin = nullptr;
    decltype(&nvrtcGetLoweredName) lowered = nullptr;
    decltype(&nvrtcDestroyProgram) destroy = nullptr;
    decltype(&nvrtcGetErrorString) errorString = nullptr;
    decltype(&nvrtcVersion) version = nullptr;
    std::string libraryPath;
    std::string includeDir;  ///< CUDA's include directory (cuda_bf16.h, cuda_fp16.h)
    std::string error;       ///< why NVRTC is unusable ("" when usable)
    int major = 0, minor = 0;
};

bool fileExists(const std::string& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0;
}

std::string dirName(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

const Nvrtc& nvrtc() {
    static const Nvrtc lib = [] {
        Nvrtc n;
        void* handle = nullptr;
        for (const char* name :
             {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so"})
            if ((handle = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
        if (!handle) {
            n.error =
                "NVRTC (libnvrtc.so, the CUDA runtime compiler) was not found: user variants (custom:, expr:) "
                "need it on the GPU; install the CUDA toolkit's NVRTC or add its lib64 to LD_LIBRARY_PATH";
            return n;
        }
        auto sym = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(handle, name));
            if (!fn && n.error.empty()) n.error = std::string("NVRTC: symbol ") + name + " missing";
        };
        sym(n.create, "nvrtcCreateProgram");
        sym(n.addName, "nvrtcAddNameExpression");
        sym(n.compile, "nvrtcCompileProgram");
        sym(n.logSize, "nvrtcGetProgramLogSize");
        sym(n.log, "nvrtcGetProgramLog");
        sym(n.cubinSize, "nvrtcGetCUBINSize");
        sym(n.cubin, "nvrtcGetCUBIN");
        sym(n.lowered, "nvrtcGetLoweredName");
        sym(n.destroy, "nvrtcDestroyProgram");
        sym(n.errorString, "nvrtcGetErrorString");
        sym(n.version, "nvrtcVersion");
        if (!n.error.empty()) return n;
        n.version(&n.major, &n.minor);
        Dl_info info{};
        if (dladdr(reinterpret_cast<void*>(n.create), &info) && info.dli_fname) n.libraryPath = info.dli_fname;
        // cuda_bf16.h / cuda_fp16.h: next to the library (lib64/../include, or the targets/ layout),
        // or where CUDA_HOME / CUDA_PATH say.
        std::vector<std::string> dirs;
        if (const char* e = std::getenv("ATTNSCOPE_CUDA_INCLUDE")) dirs.push_back(e);
        for (const char* var : {"CUDA_HOME", "CUDA_PATH"})
            if (const char* e = std::getenv(var)) dirs.push_back(std::string(e) + "/include");
        if (!n.libraryPath.empty()) {
            const std::string lib = dirName(n.libraryPath);
            dirs.push_back(lib + "/../include");
            dirs.push_back(lib + "/../../include");
        }
        dirs.push_back("/usr/local/cuda/include");
        for (const auto& d : dirs)
            if (fileExists(d + "/cuda_bf16.h")) {
                n.includeDir = d;
                break;
            }
        if (n.includeDir.empty())
            n.error = "NVRTC found (" + n.libraryPath +
                      ") but not CUDA's headers (cuda_bf16.h): set CUDA_HOME or "
                      "ATTNSCOPE_CUDA_INCLUDE to the toolkit's include directory";
        return n;
    }();
    return lib;
}

// ---- the disk cache ----------------------------------------------------------------------------
uint64_t fnv1a(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

void makeDirectories(const std::string& path) {
    for (size_t i = 1; i <= path.size(); ++i)
        if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
}

bool readFile(const std::string& path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream s;
    s << in.rdbuf();
    out = s.str();
    return !in.bad();
}

/// Writes through core's one atomic writer (a unique temporary beside the file, fsync, rename), so
/// a reader never sees half a file. An unwritable cache only costs the next run a compile, so the
/// error is dropped.
void writeFileAtomically(const std::string& path, const std::string& bytes) {
    (void)attnscope::writeFileAtomic(path, bytes);
}

// ---- modules -----------------------------------------------------------------------------------
constexpr const char* kPrelude = "#ifndef INFINITY\n#define INFINITY __int_as_float(0x7f800000)\n#endif\n";

/// The block classifier for user masks: like classifyBlocksKernel, but over every head when the
/// mask reads h (a block is full only if full for all heads, empty only if empty for all).
constexpr const char* kClassifier = R"(
namespace attnscope::flex {
__global__ void userClassifyKernel(UserMask mask, int tokens, int numKvBlocks, int heads, unsigned char* state) {
    const int kb = blockIdx.x, qb = blockIdx.y;
    bool any = false, all = true;
    for (int h = 0; h < heads; ++h)
        for (int i = threadIdx.x; i < kMaskBlock * kMaskBlock; i += blockDim.x) {
            const int q = qb * kMaskBlock + i / kMaskBlock, kv = kb * kMaskBlock + i % kMaskBlock;
            if (q >= tokens) continue;
            const bool ok = kv < tokens && mask(0, h, q, kv);
            any = any || ok;
            all = all && ok;
        }
    any = __syncthreads_or(any);
    all = __syncthreads_and(all);
    if (threadIdx.x == 0) state[qb * numKvBlocks + kb] = any ? (all ? kBlockFull : kBlockPartial) : kBlockEmpty;
}
}  // namespace attnscope::flex
)";

constexpr const char* kSizes = R"(
extern "C" __device__ unsigned attnscopeUserSizes[2] = {sizeof(attnscope::flex::UserMask), sizeof(attnscope::flex::UserScore)};
)";

constexpr const char* kProgramTraits = R"(
namespace attnscope::flex {
template <>
struct MaskTraits<UserMask> {
    static constexpr bool kProgram = true;
};

/// The user mask on a partial tile (found by overload resolution from scoreAndMask, like the
/// ProgramMask overload in flex_common.cuh): what reads only q once per row of the thread, what
/// reads only k once per column, the rest per element.
template <int NT>
__device__ __forceinline__ void applyMask(const UserMask& mask, float (&s)[NT * 4], int tokens, int b, int h,
                                          int row0, int key0, int lane) {
    UserMask::Row rows[2];
    UserMask::Col cols[2 * NT];
#pragma unroll
    for (int r = 0; r < 2; ++r) rows[r] = mask.row(b, h, row0 + 8 * r);
#pragma unroll
    for (int c = 0; c < 2 * NT; ++c) cols[c] = mask.col(b, h, fragmentKey(key0, lane, c));
    forEachElement<NT>(row0, key0, lane, [&](int i, int q, int kv, int r, int c) {
        if (!(kv < tokens && mask.pair(b, h, q, kv, rows[r], cols[c]))) s[i] = -INFINITY;
    });
}
}  // namespace attnscope::flex
)";

struct Module {
    cudaLibrary_t library = nullptr;
    std::vector<cudaKernel_t> kernels;  ///< in the order of the names asked for
    unsigned maskBytes = 0, scoreBytes = 0;
};

std::string elemName(ElemType e) { return e == ElemType::BF16 ? "__nv_bfloat16" : "__half"; }

Result<std::string> deviceArch(bool wgmma) {
    int device = 0, major = 0, minor = 0;
    ATTNSCOPE_CUDA_TRY(cudaGetDevice(&device));
    ATTNSCOPE_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    ATTNSCOPE_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return "sm_" + std::to_string(major) + std::to_string(minor) + (wgmma ? "a" : "");
}

std::mutex& timingsMutex() {
    static std::mutex m;
    return m;
}
std::vector<JitTiming>& timings() {
    static std::vector<JitTiming> t;
    return t;
}
void noteTiming(JitTiming t) {
    std::lock_guard lock(timingsMutex());
    timings().push_back(std::move(t));
}

/// Compiles `source` for `arch` (or loads it from the disk cache) and resolves `names`.
Result<Module> loadModule(const std::string& source, const std::string& arch, const std::vector<std::string>& names,
                          const std::string& what) {
    const Nvrtc& nv = nvrtc();
    if (!nv.error.empty()) return Status{ErrorCode::Unsupported, nv.error};
    const auto start = std::chrono::steady_clock::now();
    std::string headers;
    for (int i = 0; i < kJitHeaderCount; ++i) headers += kJitHeaders[i].text;
    const std::string key = source + "\n" + headers + "\n" + arch + "\nnvrtc " + std::to_string(nv.major) + "." +
                            std::to_string(nv.minor) + "\nattnscope " + ATTNSCOPE_VERSION;
    char hex[32];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(key)));
    const std::string dir = jitCacheDirectory();
    const std::string cubinPath = dir + "/" + hex + ".cubin", namesPath = dir + "/" + hex + ".names";
    std::string cubin, lowered;
    JitTiming timing;
    timing.what = what;
    timing.source = JitTiming::Source::DiskCache;
    if (!readFile(cubinPath, cubin) || !readFile(namesPath, lowered) || cubin.empty()) {
        timing.source = JitTiming::Source::Compiled;
        std::vector<const char*> texts, headerNames;
        for (int i = 0; i < kJitHeaderCount; ++i)
            texts.push_back(kJitHeaders[i].text), headerNames.push_back(kJitHeaders[i].name);
        nvrtcProgram prog = nullptr;
        if (nv.create(&prog, source.c_str(), "attnscope_user_variant.cu", kJitHeaderCount, texts.data(),
                      headerNames.data()) != NVRTC_SUCCESS)
            return Status{ErrorCode::Internal, "NVRTC: cannot create a program for the user variant"};
        for (const auto& n : names) nv.addName(prog, n.c_str());
        const std::string archOpt = "-arch=" + arch, include = "--include-path=" + nv.includeDir;
        const char* options[] = {archOpt.c_str(), "-std=c++17", include.c_str(), "-DNDEBUG", "-default-device"};
        const nvrtcResult rc = nv.compile(prog, int(sizeof options / sizeof options[0]), options);
        if (rc != NVRTC_SUCCESS) {
            size_t n = 0;
            nv.logSize(prog, &n);
            std::string log(n, '\0');
            nv.log(prog, log.data());
            nv.destroy(&prog);
            constexpr size_t kLogChars = 2000;
            return Status{ErrorCode::Internal, "NVRTC could not compile the user variant for " + arch + " (" +
                                                   nv.errorString(rc) + "): " + log.substr(0, kLogChars)};
        }
        for (const auto& n : names) {
            const char* l = nullptr;
            nv.lowered(prog, n.c_str(), &l);
            lowered += std::string(l ? l : "") + "\n";
        }
        size_t size = 0;
        nv.cubinSize(prog, &size);
        cubin.resize(size);
        nv.cubin(prog, cubin.data());
        nv.destroy(&prog);
        makeDirectories(dir);
        writeFileAtomically(cubinPath, cubin);
        writeFileAtomically(namesPath, lowered);
    }
    Module m;
    ATTNSCOPE_CUDA_TRY(cudaLibraryLoadData(&m.library, cubin.data(), nullptr, nullptr, 0, nullptr, nullptr, 0));
    std::istringstream lines(lowered);
    std::string line;
    for (size_t i = 0; i < names.size(); ++i) {
        if (!std::getline(lines, line) || line.empty())
            return Status{ErrorCode::Internal, "NVRTC: no lowered name for " + names[i] + " (cache " + cubinPath + ")"};
        cudaKernel_t k = nullptr;
        ATTNSCOPE_CUDA_TRY(cudaLibraryGetKernel(&k, m.library, line.c_str()));
        m.kernels.push_back(k);
    }
    void* sizes = nullptr;
    size_t bytes = 0;
    ATTNSCOPE_CUDA_TRY(cudaLibraryGetGlobal(&sizes, &bytes, m.library, "attnscopeUserSizes"));
    unsigned host[2] = {0, 0};
    ATTNSCOPE_CUDA_TRY(cudaMemcpy(host, sizes, sizeof host, cudaMemcpyDeviceToHost));
    m.maskBytes = host[0], m.scoreBytes = host[1];
    timing.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    noteTiming(timing);
    return m;
}

/// A functor argument: the common members first, the rest (bind()'s per-head values) zero.
std::vector<unsigned char> functorBytes(const JitArrays& a, unsigned size) {
    std::vector<unsigned char> b(std::max<size_t>(size, sizeof(JitArrays)), 0);
    std::memcpy(b.data(), &a, sizeof a);
    return b;
}

}  // namespace

class JitProgram {
public:
    JitProgram(std::string functors, uint8_t maskDeps) : m_functors(std::move(functors)), m_maskDeps(maskDeps) {}

    Result<Module*> mask() {
        std::lock_guard lock(m_mutex);
        if (m_mask) {
            noteTiming({JitTiming::Source::Memory, 0, "mask"});
            return &*m_mask;
        }
        auto arch = deviceArch(false);
        if (!arch) return arch.status();
        const std::string src =
            std::string(kPrelude) + "#include \"flex_forward.cuh\"\n" + m_functors + kClassifier + kSizes;
        auto m = loadModule(src, *arch, {"attnscope::flex::userClassifyKernel", "attnscope::flex::packBlocksKernel<0>"},
                            "mask");
        if (!m) return m.status();
        m_mask = std::move(*m);
        return &*m_mask;
    }

    Result<Module*> forward(ElemType elem, int headDim, ForwardPath path) {
        std::lock_guard lock(m_mutex);
        const bool wgmma = path == ForwardPath::Wgmma;
        const std::string what = std::string("forward ") + (elem == ElemType::BF16 ? "bf16" : "f16") +
                                 " D=" + std::to_string(headDim) + (wgmma ? " wgmma" : " mma.sync");
        auto it = m_forward.find(what);
        if (it != m_forward.end()) {
            noteTiming({JitTiming::Source::Memory, 0, what});
            return &it->second;
        }
        auto arch = deviceArch(wgmma);
        if (!arch) return arch.status();
        const std::string kernel = std::string("attnscope::flex::") +
                                   (wgmma ? "flexForwardSm90Kernel" : "flexForwardKernel") + "<" + elemName(elem) +
                                   ", " + std::to_string(headDim) +
                                   ", attnscope::flex::UserMask, attnscope::flex::UserScore>";
        // A user mask counts as a mask program (HopperConfig::kMinBlocks: one CTA per SM, the
        // register budget the built-in programs get), so it runs as its built-in twin does.
        const std::string src = std::string(kPrelude) + "#include \"" +
                                (wgmma ? "flex_forward_sm90.cuh" : "flex_forward.cuh") + "\"\n" + m_functors +
                                kProgramTraits + kSizes + "// " + what + "\n";
        auto m = loadModule(src, *arch, {kernel}, what);
        if (!m) return m.status();
        return &m_forward.emplace(what, std::move(*m)).first->second;
    }

    uint8_t maskDeps() const { return m_maskDeps; }

private:
    std::string m_functors;
    uint8_t m_maskDeps;
    std::mutex m_mutex;
    std::optional<Module> m_mask;
    std::map<std::string, Module> m_forward;
};

Result<std::shared_ptr<JitProgram>> jitProgram(const VariantExpr& expr) {
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<JitProgram>> programs;
    const std::string functors = variantExprCudaSource(expr);
    std::lock_guard lock(mutex);
    auto& p = programs[functors];
    if (!p) p = std::make_shared<JitProgram>(functors, expr.maskDeps());
    return p;
}

Status jitBuildBlockMask(JitProgram& program, const JitArrays& arrays, unsigned char* state,
                         const flex::BlockMaskView& view, cudaStream_t stream, LaunchLog* log) {
    auto m = program.mask();
    if (!m) return m.status();
    const int nq = view.numQBlocks, nk = view.numKvBlocks;
    if (program.maskDeps() & kDepBatch) {
        // The BlockMask is shared by every batch entry: a mask that differs per batch entry can
        // only be honoured by evaluating it in every block.
        constexpr unsigned char kPartial = 1;
        ATTNSCOPE_CUDA_TRY(cudaMemsetAsync(state, kPartial, size_t(nq) * nk, stream));
    } else {
        std::vector<unsigned char> mask = functorBytes(arrays, (*m)->maskBytes);
        int tokens = arrays.tokens, numKv = nk, heads = (program.maskDeps() & kDepHead) ? arrays.heads : 1;
        void* args[] = {mask.data(), &tokens, &numKv, &heads, &state};
        constexpr int kThreads = 256;
        const dim3 grid(nk, nq);
        ATTNSCOPE_CUDA_TRY(
            cudaLaunchKernel(reinterpret_cast<const void*>((*m)->kernels[0]), grid, dim3(kThreads), args, 0, stream));
        if (log) log->push_back({"user_block_mask_classify", grid, dim3(kThreads), 0, 0});
    }
    int numQ = nq, numKv = nk;
    int *kvNum = const_cast<int*>(view.kvNum), *kvIdx = const_cast<int*>(view.kvIdx);
    int *fullNum = const_cast<int*>(view.fullNum), *fullIdx = const_cast<int*>(view.fullIdx);
    const unsigned char* cstate = state;
    void* args[] = {&cstate, &numQ, &numKv, &kvNum, &kvIdx, &fullNum, &fullIdx};
    constexpr int kThreads = 128;
    const dim3 grid((nq + kThreads - 1) / kThreads);
    ATTNSCOPE_CUDA_TRY(
        cudaLaunchKernel(reinterpret_cast<const void*>((*m)->kernels[1]), grid, dim3(kThreads), args, 0, stream));
    if (log) log->push_back({"flex_block_mask_pack", grid, dim3(kThreads), 0, 0});
    return {};
}

Status jitLaunchForward(JitProgram& program, const ForwardArgs& a, const JitArrays& arrays, cudaStream_t stream,
                        LaunchLog* log) {
    if (a.headDim != 64 && a.headDim != 128)
        return {ErrorCode::Unsupported,
                "flex forward: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
    auto m = program.forward(a.elem, a.headDim, a.path);
    if (!m) return m.status();
    // Threads and shared memory of the kernel family, from the same headers (jit_config.cu).
    const bool wgmma = a.path == ForwardPath::Wgmma;
    const JitLaunchShape shape = jitLaunchShape(a.path, a.headDim);
    const int threads = shape.threads, shared = shape.sharedBytes;
    cudaKernel_t kernel = (*m)->kernels[0];
    int device = 0;
    ATTNSCOPE_CUDA_TRY(cudaGetDevice(&device));
    ATTNSCOPE_CUDA_TRY(
        cudaKernelSetAttributeForDevice(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared, device));
    flex::FlexParams params = a.params;
    std::vector<unsigned char> mask = functorBytes(arrays, (*m)->maskBytes);
    std::vector<unsigned char> score = functorBytes(arrays, (*m)->scoreBytes);
    void* args[] = {&params, mask.data(), score.data()};
    const dim3 grid(a.params.mask.numQBlocks, a.params.heads, a.params.batch);
    ATTNSCOPE_CUDA_TRY(
        cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, dim3(threads), args, size_t(shared), stream));
    if (log) {
        cudaFuncAttributes attr{};
        const bool known = cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(kernel)) == cudaSuccess;
        if (!known) (void)cudaGetLastError();  // registers are a detail of the record, not an error
        log->push_back({std::string(wgmma ? "flex_forward_sm90" : "flex_forward") + "<user>", grid, dim3(threads),
                        known ? attr.numRegs : 0, shared + (known ? int(attr.sharedSizeBytes) : 0)});
    }
    return {};
}

std::vector<JitTiming> takeJitTimings() {
    std::lock_guard lock(timingsMutex());
    std::vector<JitTiming> t;
    t.swap(timings());
    return t;
}

std::string jitCacheDirectory() {
    if (const char* d = std::getenv("ATTNSCOPE_CACHE_DIR"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/attnscope/kernels";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/attnscope/kernels";
    return "/tmp/attnscope-kernels";
}

}  // namespace attnscope::gpu
