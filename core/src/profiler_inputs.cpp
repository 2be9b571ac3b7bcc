// Profiler inputs: shapes (synthetic or from a trace), host Q/K/V, FLOP and byte counts.
#include <cmath>
#include <random>

#include "attnscope/memory.h"
#include "attnscope/profiler.h"

namespace attnscope {
namespace {
constexpr int64_t kLinearChunk = 128;  // chunk of the Lightning-2 style linear attention kernel
constexpr double kAttentionFlopsPerMac = 2.0;

size_t dtypeBytes(GpuDType t) { return t == GpuDType::BF16 || t == GpuDType::F16 ? 2 : 4; }

const char* gpuDtypeName(GpuDType t) { return t == GpuDType::F16 ? "f16" : "bf16"; }

Result<std::vector<long long>> parseInts(const std::string& text) {
    std::vector<long long> out;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t comma = text.find(',', pos);
        std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end = nullptr;
        long long x = std::strtoll(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || x <= 0)
            return Result<std::vector<long long>>(
                ErrorCode::InvalidArgument,
                "shape '" + text + "': expected positive integers B,H,T,D, got '" + part + "'");
        out.push_back(x);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return out;
}
}  // namespace

std::vector<std::string> defaultMetricNames() {
    return {"gpu__time_duration.sum",
            "dram__bytes_read.sum",
            "dram__bytes_write.sum",
            "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
            "sm__warps_active.avg.pct_of_peak_sustained_active",
            "sm__throughput.avg.pct_of_peak_sustained_elapsed"};
}

Result<ShapeSource> parseShape(const std::string& text) {
    auto ints = parseInts(text);
    if (!ints) return ints.status();
    const auto& v = *ints;
    if (v.size() != 4 && v.size() != 5)
        return Result<ShapeSource>(
            ErrorCode::InvalidArgument,
            "shape '" + text + "': expected B,H,T,D or B,H,Hkv,T,D (" + std::to_string(v.size()) + " numbers given)");
    ShapeSource s;
    s.batch = int(v[0]);
    s.heads = int(v[1]);
    s.kvHeads = v.size() == 5 ? int(v[2]) : s.heads;
    s.tokens = v[v.size() - 2];
    s.headDim = int(v.back());
    if (s.heads % s.kvHeads != 0)
        return Result<ShapeSource>(ErrorCode::InvalidArgument,
                                   "shape '" + text + "': heads (" + std::to_string(s.heads) +
                                       ") must be a multiple of kv heads (" + std::to_string(s.kvHeads) + ")");
    return s;
}

MatrixRM ProfileInputs::headMatrix(int b, int h, Which which) const {
    const auto& p = problem;
    const int64_t T = p.tokens;
    const int group = p.heads / p.kvHeads;
    const int hh = which == Which::Q ? h : h / group;
    const int heads = which == Which::Q ? p.heads : p.kvHeads;
    const std::vector<float>& src = which == Which::Q ? q : which == Which::K ? k : v;
    const size_t offset = (size_t(b) * heads + hh) * size_t(T) * p.headDim;
    return Eigen::Map<const MatrixRM>(src.data() + offset, T, p.headDim);
}

Result<ProfileProblem> profileProblem(const ShapeSource& s) {
    ProfileProblem out;
    AttentionProblem& p = out.problem;
    p.dtype = s.dtype;
    if (!s.trace) {
        if (s.batch <= 0 || s.heads <= 0 || s.kvHeads <= 0 || s.tokens <= 0 || s.headDim <= 0 || s.heads % s.kvHeads)
            return Result<ProfileProblem>(ErrorCode::InvalidArgument,
                                          "synthetic shape: expected positive B, H, T, D with H % Hkv == 0");
        p.batch = s.batch;
        p.heads = s.heads;
        p.kvHeads = s.kvHeads;
        p.tokens = s.tokens;
        p.headDim = s.headDim;
        p.scale = float(1.0 / std::sqrt(double(s.headDim)));
        out.description = "synthetic B=" + std::to_string(p.batch) + " H=" + std::to_string(p.heads) +
                          (p.kvHeads != p.heads ? " Hkv=" + std::to_string(p.kvHeads) : std::string()) +
                          " T=" + std::to_string(p.tokens) + " D=" + std::to_string(p.headDim) + " " +
                          gpuDtypeName(p.dtype);
        out.causal = true;
    } else {
        const Trace& t = *s.trace;
        if (!t.hasQK())
            return Result<ProfileProblem>(ErrorCode::Unsupported,
                                          t.path() + ": weights-only trace has no Q/K/V to profile");
        if (s.layer < 0 || s.layer >= t.numLayers())
            return Result<ProfileProblem>(ErrorCode::InvalidArgument, t.path() + ": layer " + std::to_string(s.layer) +
                                                                          " out of range [0, " +
                                                                          std::to_string(t.numLayers()) + ")");
        const LayerConfig& cfg = t.config(s.layer);
        if (s.head >= cfg.heads)
            return Result<ProfileProblem>(
                ErrorCode::InvalidArgument,
                t.path() + ": head " + std::to_string(s.head) + " out of range [0, " + std::to_string(cfg.heads) + ")");
        const bool all = s.head < 0;
        p.batch = 1;
        p.heads = all ? cfg.heads : 1;
        p.kvHeads = all ? cfg.kvHeads : 1;
        p.tokens = t.tokens();
        p.headDim = cfg.headDim;
        p.scale = float(cfg.scale > 0 ? cfg.scale : 1.0 / std::sqrt(double(cfg.headDim)));
        out.causal = cfg.causal;
        out.description = t.path() + ": layer " + std::to_string(s.layer) +
                          (all ? " all heads" : " head " + std::to_string(s.head)) + " T=" + std::to_string(p.tokens) +
                          " D=" + std::to_string(p.headDim) + " " + gpuDtypeName(p.dtype);
    }
    // Q, K, V as float32 on the host (doubles: no overflow for absurd shapes).
    const double elems = double(p.batch) * double(p.tokens) * double(p.headDim) * (double(p.heads) + 2.0 * p.kvHeads);
    constexpr double kMaxBytes = 9.0e18;  // beyond any machine, and below uint64_t's range
    if (elems * sizeof(float) > kMaxBytes)
        return Result<ProfileProblem>(ErrorCode::OutOfMemory,
                                      out.description + ": the inputs would need more than 8 EiB");
    out.hostBytes = uint64_t(elems * sizeof(float));
    return out;
}

Result<ProfileInputs> loadProfileInputs(const ShapeSource& s) {
    auto problem = profileProblem(s);
    if (!problem) return problem.status();
    // Refused before anything is generated or read: a huge shape must fail at once, not swap.
    if (Status st = checkHostMemory(problem->hostBytes, problem->description + ": Q, K, V as float32"); !st) return st;
    ProfileInputs in;
    in.problem = problem->problem;
    in.description = problem->description;
    in.causal = problem->causal;
    const AttentionProblem& p = in.problem;
    const size_t qn = size_t(p.batch) * p.heads * p.tokens * p.headDim;
    const size_t kn = size_t(p.batch) * p.kvHeads * p.tokens * p.headDim;
    try {
        in.q.resize(qn);
        in.k.resize(kn);
        in.v.resize(kn);
    } catch (const std::bad_alloc&) {
        return Result<ProfileInputs>(ErrorCode::OutOfMemory, in.description + ": cannot allocate " +
                                                                 humanBytes(problem->hostBytes) + " of inputs");
    }
    if (!s.trace) {
        std::mt19937_64 rng(s.seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        for (auto* vec : {&in.q, &in.k, &in.v})
            for (float& x : *vec) x = normal(rng);
        return in;
    }
    const Trace& t = *s.trace;
    const LayerConfig& cfg = t.config(s.layer);
    const bool all = s.head < 0;
    const size_t headElems = size_t(p.tokens) * p.headDim;
    auto copyHead = [&](int qHead, Which w, std::vector<float>& dst, int slot) -> Status {
        auto m = t.head(s.layer, qHead, w);
        if (!m) return m.status();
        if (m->m.rows() != p.tokens || m->m.cols() != p.headDim)
            return {ErrorCode::Shape,
                    t.path() + ": layer " + std::to_string(s.layer) + " head matrix shape differs from [T, d]"};
        std::copy(m->m.data(), m->m.data() + headElems, dst.begin() + size_t(slot) * headElems);
        return Status::success();
    };
    const int group = cfg.heads / std::max(1, cfg.kvHeads);
    if (cfg.hasSinks()) in.sinks = all ? cfg.sinks : std::vector<float>{cfg.sinks[size_t(s.head)]};
    for (int h = 0; h < p.heads; ++h)
        if (Status st = copyHead(all ? h : s.head, Which::Q, in.q, h); !st) return st;
    for (int kh = 0; kh < p.kvHeads; ++kh) {
        const int qHead = all ? kh * group : s.head;
        if (Status st = copyHead(qHead, Which::K, in.k, kh); !st) return st;
        if (Status st = copyHead(qHead, Which::V, in.v, kh); !st) return st;
    }
    return in;
}

double variantFlops(const VariantSpec& v, const AttentionProblem& p) {
    const double bh = double(p.batch) * p.heads, T = double(p.tokens), D = double(p.headDim);
    // Two matmuls (S = QKᵀ, O = PV), each T·T·D multiply-adds.
    const double dense = 2 * kAttentionFlopsPerMac * bh * T * T * D;
    switch (v.kind) {
    case VariantKind::Decode: return 2 * kAttentionFlopsPerMac * bh * T * D;
    case VariantKind::LinearAttention: {
        // Per chunk: intra-chunk masked (QKᵀ)V (half of C×C×D twice), inter-chunk Q·state
        // (C×D×D) and the state update Kᵀ V (C×D×D).
        const double chunks = std::ceil(T / double(kLinearChunk));
        const double C = double(kLinearChunk);
        const double perChunk = kAttentionFlopsPerMac * (C * C * D + 2 * C * D * D);
        return bh * chunks * perChunk;
    }
    default: return dense * blockDensity(v, p.tokens);
    }
}

double variantBytes(const VariantSpec& v, const AttentionProblem& p) {
    const double e = double(dtypeBytes(p.dtype));
    const double Tq = v.kind == VariantKind::Decode ? 1.0 : double(p.tokens);
    const double q = double(p.batch) * p.heads * Tq * p.headDim * e;
    const double kv = 2.0 * p.batch * p.kvHeads * double(p.tokens) * p.headDim * e;
    const double o = q;
    const double lse = double(p.batch) * p.heads * Tq * sizeof(float);
    return q + kv + o + lse;
}

}  // namespace attnscope
