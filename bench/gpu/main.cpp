// attnscope-bench: times every GPU variant at the shapes of gpu-notes.md with CUDA events
// (median of many runs) and prints TFLOP/s (dense-equivalent FLOPs of the computed blocks) and
// the speed ratio to PyTorch anchors measured in the same run (torch_anchors.py JSON lines).
// Decode rows also time a device-to-device copy of as many bytes as decode's K and V in the same
// run and print decode's K+V read rate over the copy's read+write rate.
//   attnscope-bench --anchors anchors.jsonl --json bench.json
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if ATTNSCOPE_BENCH_CUDA
#include <cuda_runtime.h>
#endif

#include "attnscope/gpu.h"
#include "attnscope/json.h"
#include "attnscope/trace.h"
#include "attnscope/variants.h"

using namespace attnscope;

namespace {

constexpr const char* kDefaultShapes = "2,16,8192,128;1,16,32768,128;2,32,8192,64;8,16,1024,128";
constexpr const char* kDefaultVariants =
    "full,causal,sliding:1024,document:8,prefix:1024,alibi,softcap:30,relbias:0.01,dilated:512:2,"
    "sliding:1024&document:8,linear,linear:0.01,decode";
constexpr double kDenseFlopsPerPair = 4.0;  ///< QKᵀ and PV: 2 FLOPs each per (q, k, d)
constexpr int kExitUsage = 2;

struct Shape {
    int batch = 0, heads = 0, tokens = 0, dim = 0;
    std::string text() const {
        return std::to_string(batch) + "," + std::to_string(heads) + "," + std::to_string(tokens) + "," +
               std::to_string(dim);
    }
};

struct Options {
    std::vector<Shape> shapes;
    std::vector<std::string> variants;
    std::string anchors, json;
    int warmup = 5, reps = 30;
    std::vector<int> kvRatios{1};
    GpuDType dtype = GpuDType::BF16;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string part; std::getline(ss, part, sep);)
        if (!part.empty()) out.push_back(part);
    return out;
}

bool parseShapes(const std::string& text, std::vector<Shape>& out) {
    for (const auto& s : split(text, ';')) {
        Shape sh;
        if (std::sscanf(s.c_str(), "%d,%d,%d,%d", &sh.batch, &sh.heads, &sh.tokens, &sh.dim) != 4 || sh.batch <= 0 ||
            sh.heads <= 0 || sh.tokens <= 0 || sh.dim <= 0)
            return false;
        out.push_back(sh);
    }
    return !out.empty();
}

void usage() {
    std::printf(
        "usage: attnscope-bench [--shapes \"B,H,T,D;...\"] [--variants a,b,...] [--anchors FILE] [--json FILE]\n"
        "                       [--reps N] [--warmup N] [--dtype bf16|f16] [--gqa RATIO[,RATIO...]]\n"
        "--gqa: query heads per kv head (a list runs every shape at each ratio); decode rows add a copy of\n"
        "the same bytes: 'copy TB/s' counts bytes read + written, decode's 'TB/s' the unique K+V bytes read\n"
        "defaults: --shapes \"%s\"\n          --variants %s\n",
        kDefaultShapes, kDefaultVariants);
}

/// Anchor times by "impl|variant|B,H,T,D" from torch_anchors.py output.
std::map<std::string, double> readAnchors(const std::string& path, std::string& error) {
    std::map<std::string, double> out;
    std::ifstream in(path);
    if (!in) {
        error = "cannot open anchor file " + path;
        return out;
    }
    int lineNo = 0;
    for (std::string line; std::getline(in, line);) {
        ++lineNo;
        if (line.empty() || line[0] != '{') continue;  // torch warnings may be interleaved
        auto j = Json::parse(line, path + ":" + std::to_string(lineNo));
        if (!j) continue;
        const Json *impl = j->find("impl"), *variant = j->find("variant"), *ms = j->find("ms");
        const Json *b = j->find("B"), *h = j->find("H"), *t = j->find("T"), *d = j->find("D");
        if (!impl || !variant || !ms || !b || !h || !t || !d || !ms->isNumber()) continue;
        Shape s{int(b->asNumber()), int(h->asNumber()), int(t->asNumber()), int(d->asNumber())};
        out[impl->asString() + "|" + variant->asString() + "|" + s.text()] = ms->asNumber();
    }
    return out;
}

/// The torch_anchors.py name of a variant with the same mask and score mod, or "".
std::string anchorName(const VariantSpec& v) {
    if (v.other) return "";
    switch (v.kind) {
    case VariantKind::Full: return "full";
    case VariantKind::Causal: return "causal";
    case VariantKind::Sliding: return "sliding";
    case VariantKind::Document: return "document";
    case VariantKind::PrefixLM: return "prefix";
    case VariantKind::Alibi: return "alibi";
    case VariantKind::Softcap: return "softcap";
    default: return "";
    }
}

std::vector<float> randomInputs(size_t n, uint64_t seed) {
    // A fast deterministic generator (uniform in [-1.5, 1.5)): inputs only need to be non-trivial.
    // Blocks of 2^24 values have their own stream, filled in parallel (decode at T = 1M is GBs).
    std::vector<float> x(n);
    constexpr size_t kBlock = size_t(1) << 24;
    const size_t blocks = (n + kBlock - 1) / kBlock;
    const unsigned workers = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), 16));
    auto fill = [&](unsigned w) {
        constexpr float kSpan = 3.0f, kHalf = 1.5f, kInv24 = 1.0f / 16777216.0f;
        for (size_t blk = w; blk < blocks; blk += workers) {
            uint64_t s = (seed + 7919 * blk) * 0x9E3779B97F4A7C15ull + 1;
            for (size_t i = blk * kBlock; i < std::min(n, (blk + 1) * kBlock); ++i) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                x[i] = float(s >> 40) * kInv24 * kSpan - kHalf;
            }
        }
    };
    std::vector<std::thread> pool;
    for (unsigned w = 1; w < workers; ++w) pool.emplace_back(fill, w);
    fill(0);
    for (auto& t : pool) t.join();
    return x;
}

/// Median time of a device-to-device copy of `bytes` (the decode rows' bandwidth reference), or
/// NaN without the CUDA runtime. The buffers are freed before returning.
double copyMs(size_t bytes, int warmup, int reps, std::string& error) {
#if ATTNSCOPE_BENCH_CUDA
    void *src = nullptr, *dst = nullptr;
    cudaStream_t stream = nullptr;
    std::vector<cudaEvent_t> events(2 * size_t(reps), nullptr);
    std::vector<float> ms;
    cudaError_t err = cudaMalloc(&src, bytes);
    if (err == cudaSuccess) err = cudaMalloc(&dst, bytes);
    if (err == cudaSuccess) err = cudaMemset(src, 0x3c, bytes);  // not zeros: bf16 0x3c3c = 0.0115
    if (err == cudaSuccess) err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    for (auto& e : events)
        if (err == cudaSuccess) err = cudaEventCreate(&e);
    for (int i = 0; i < warmup && err == cudaSuccess; ++i)
        err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
    for (int i = 0; i < reps && err == cudaSuccess; ++i) {
        err = cudaEventRecord(events[2 * i], stream);
        if (err == cudaSuccess) err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream);
        if (err == cudaSuccess) err = cudaEventRecord(events[2 * i + 1], stream);
    }
    if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
    for (int i = 0; i < reps && err == cudaSuccess; ++i) {
        float t = 0;
        err = cudaEventElapsedTime(&t, events[2 * i], events[2 * i + 1]);
        ms.push_back(t);
    }
    for (auto& e : events)
        if (e) cudaEventDestroy(e);
    if (stream) cudaStreamDestroy(stream);
    cudaFree(src);
    cudaFree(dst);
    if (err != cudaSuccess) {
        error = std::string("device copy of ") + std::to_string(bytes) + " bytes: " + cudaGetErrorString(err);
        return NAN;
    }
    std::nth_element(ms.begin(), ms.begin() + ms.size() / 2, ms.end());
    return ms[ms.size() / 2];
#else
    (void)bytes, (void)warmup, (void)reps;
    error = "built without the CUDA runtime: no copy reference";
    return NAN;
#endif
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    std::string shapes = kDefaultShapes, variants = kDefaultVariants;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "--help" || a == "-h") {
            usage();
            return 0;
        } else if (a == "--shapes")
            shapes = next();
        else if (a == "--variants")
            variants = next();
        else if (a == "--anchors")
            o.anchors = next();
        else if (a == "--json")
            o.json = next();
        else if (a == "--reps")
            o.reps = std::atoi(next().c_str());
        else if (a == "--warmup")
            o.warmup = std::atoi(next().c_str());
        else if (a == "--gqa") {
            o.kvRatios.clear();
            for (const auto& r : split(next(), ',')) o.kvRatios.push_back(std::atoi(r.c_str()));
        } else if (a == "--dtype") {
            const std::string t = next();
            if (t != "bf16" && t != "f16") {
                std::fprintf(stderr, "attnscope-bench: --dtype must be bf16 or f16\n");
                return kExitUsage;
            }
            o.dtype = t == "bf16" ? GpuDType::BF16 : GpuDType::F16;
        } else {
            std::fprintf(stderr, "attnscope-bench: unknown option %s\n", a.c_str());
            usage();
            return kExitUsage;
        }
    }
    if (!parseShapes(shapes, o.shapes) || o.reps <= 0 || o.warmup < 0 || o.kvRatios.empty() ||
        *std::min_element(o.kvRatios.begin(), o.kvRatios.end()) <= 0) {
        std::fprintf(stderr, "attnscope-bench: bad --shapes (B,H,T,D;...), --reps, --warmup or --gqa\n");
        return kExitUsage;
    }
    o.variants = splitVariantList(variants);
    std::map<std::string, double> anchors;
    if (!o.anchors.empty()) {
        std::string error;
        anchors = readAnchors(o.anchors, error);
        if (!error.empty()) std::fprintf(stderr, "attnscope-bench: %s (ratios omitted)\n", error.c_str());
    }
    auto engine = createGpuEngine();
    const GpuInfo info = engine->info();
    if (!info.available) {
        std::fprintf(stderr, "attnscope-bench: no GPU: %s\n", info.reason.c_str());
        return kExitUsage;
    }
    std::printf("GPU %s, %d SMs, SM clock %d MHz, forward kernel %s; median of %d runs after %d warm-ups, %s\n",
                info.name.c_str(), info.smCount, info.smClockMHz, info.forwardKernel.c_str(), o.reps, o.warmup,
                o.dtype == GpuDType::BF16 ? "bf16" : "f16");
    std::printf("%-16s %-24s %9s %9s %8s %9s %9s %9s\n", "B,H,T,D", "variant", "ms", "TFLOP/s", "density", "x cuDNN",
                "x FA2", "x flex");
    Json rows = Json::array();
    int failures = 0;
    for (const int kvRatio : o.kvRatios)
        for (const Shape& s : o.shapes) {
            if (s.heads % kvRatio != 0) continue;
            AttentionProblem p;
            p.batch = s.batch, p.heads = s.heads, p.kvHeads = s.heads / kvRatio, p.tokens = s.tokens, p.headDim = s.dim;
            p.dtype = o.dtype;
            const size_t qn = size_t(s.batch) * s.heads * s.tokens * s.dim;
            const size_t kvn = size_t(s.batch) * p.kvHeads * s.tokens * s.dim;
            std::unique_ptr<GpuBuffers> prefill, decode;
            for (const std::string& name : o.variants) {
                auto v = parseVariant(name);
                if (!v) {
                    std::fprintf(stderr, "attnscope-bench: %s\n", v.message().c_str());
                    ++failures;
                    continue;
                }
                const bool isDecode = v->kind == VariantKind::Decode;
                std::unique_ptr<GpuBuffers>& buffers = isDecode ? decode : prefill;
                if (!buffers) {
                    AttentionProblem bp = p;
                    bp.queryTokens = isDecode ? 1 : 0;
                    auto up = engine->upload(bp, randomInputs(isDecode ? qn / s.tokens : qn, 1), randomInputs(kvn, 2),
                                             randomInputs(kvn, 3));
                    if (!up) {
                        std::fprintf(stderr, "attnscope-bench: %s: %s\n", s.text().c_str(), up.message().c_str());
                        ++failures;
                        continue;
                    }
                    buffers = std::move(*up);
                }
                auto ms = engine->timeVariant(*v, *buffers, o.warmup, o.reps);
                if (!ms) {
                    std::fprintf(stderr, "attnscope-bench: %s %s: %s\n", s.text().c_str(), name.c_str(),
                                 ms.message().c_str());
                    ++failures;
                    continue;
                }
                const bool softmax = !isDecode && v->kind != VariantKind::LinearAttention;
                const double density = softmax ? blockDensity(*v, s.tokens) : 0.0;
                const double flops =
                    kDenseFlopsPerPair * s.batch * s.heads * double(s.tokens) * s.tokens * s.dim * density;
                const double tflops = softmax ? flops / *ms / 1e9 : NAN;
                Json row = Json::object();
                row.set("shape", s.text());
                row.set("variant", name);
                row.set("ms", *ms);
                row.set("block_density", density);
                if (softmax) row.set("tflops", tflops);
                double copyTbps = NAN, decodeTbps = NAN;
                if (isDecode) {
                    const size_t kvBytes = 2 * kvn * 2;  // K and V, 16-bit elements, each read once
                    decodeTbps = double(kvBytes) / (*ms * 1e9);
                    row.set("kv_heads", p.kvHeads);
                    row.set("kv_gbps", decodeTbps * 1e3);
                    std::string error;
                    const double cms = copyMs(kvBytes, o.warmup, o.reps, error);
                    if (std::isnan(cms)) {
                        std::fprintf(stderr, "attnscope-bench: %s\n", error.c_str());
                    } else {
                        copyTbps = 2.0 * double(kvBytes) / (cms * 1e9);  // read + written
                        row.set("copy_ms", cms);
                        row.set("copy_tbps", copyTbps);
                        row.set("x_copy", decodeTbps / copyTbps);
                    }
                }
                const std::string an = anchorName(*v);
                double ratio[3] = {NAN, NAN, NAN};
                const char* const impls[3] = {"sdpa-cudnn", "sdpa-flash2", "flex"};
                for (int i = 0; i < 3; ++i) {
                    if (an.empty() || (i < 2 && an != "full" && an != "causal")) continue;
                    auto it = anchors.find(std::string(impls[i]) + "|" + an + "|" + s.text());
                    if (it == anchors.end()) continue;
                    ratio[i] = it->second / *ms;  // > 1: we are faster
                    row.set(std::string("x_") + impls[i], ratio[i]);
                    row.set(std::string("ms_") + impls[i], it->second);
                }
                rows.push(row);
                auto cell = [](double x) {
                    char b[32];
                    if (std::isnan(x))
                        std::snprintf(b, sizeof b, "%9s", "-");
                    else
                        std::snprintf(b, sizeof b, "%9.2f", x);
                    return std::string(b);
                };
                std::printf("%-16s %-24s %9.3f %s %8.3f %s %s %s\n", s.text().c_str(), name.c_str(), *ms,
                            cell(tflops).c_str(), density, cell(ratio[0]).c_str(), cell(ratio[1]).c_str(),
                            cell(ratio[2]).c_str());
                if (isDecode)
                    std::printf(
                        "%-16s   kv heads %d: decode %.2f TB/s of K+V read; copy of the same bytes %.2f TB/s "
                        "(read+write): x copy %.2f\n",
                        s.text().c_str(), p.kvHeads, decodeTbps, copyTbps, decodeTbps / copyTbps);
                std::fflush(stdout);
            }
        }
    if (!o.json.empty()) {
        Json doc = Json::object();
        doc.set("gpu", info.name);
        doc.set("forward_kernel", info.forwardKernel);
        doc.set("dtype", o.dtype == GpuDType::BF16 ? "bf16" : "f16");
        doc.set("reps", o.reps);
        doc.set("rows", rows);
        Status st = writeFileAtomic(o.json, doc.dump(1));
        if (!st) {
            std::fprintf(stderr, "attnscope-bench: %s\n", st.message().c_str());
            return 1;
        }
    }
    return failures > 0 ? 1 : 0;
}
