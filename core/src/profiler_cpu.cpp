// The CPU fallback backend: runs the reference implementations with wall-clock timing so the
// profiler works on every machine. Results are labelled "CPU".
#include <chrono>
#include <thread>

#include "attnscope/parallel.h"
#include "profiler_internal.h"

namespace attnscope {
namespace {
using namespace profiler_detail;

// Larger than the last-level cache of common desktop and server CPUs, so a cold sample starts
// from DRAM like a cold GPU sample starts with an empty L2.
constexpr size_t kCacheFlushBytes = size_t(64) << 20;

class CpuProfilerBackend final : public ProfilerBackend {
public:
    std::string label() const override { return "CPU"; }
    std::string description() const override {
        return "CPU reference (" + std::to_string(workerCount()) + " threads, float32, wall clock)";
    }
    Json environment() const override {
        Json e = Json::object();
        e.set("backend", "CPU");
        e.set("threads", workerCount());
        e.set("hardwareConcurrency", int(std::thread::hardware_concurrency()));
        e.set("timing", "std::chrono::steady_clock around the reference call");
        return e;
    }
    Status prepare(const ProfileInputs& inputs) override {
        m_inputs = &inputs;
        return Status::success();
    }
    Result<BackendSample> runSample(const VariantSpec& v, uint64_t externalId, bool cold) override {
        if (!m_inputs) return Result<BackendSample>(ErrorCode::Internal, "CPU profiler: prepare() was not called");
        if (std::string why = variantNeedsGpu(v); !why.empty())
            return Result<BackendSample>(ErrorCode::Unsupported, why);
        if (cold) flushCache();
        const auto& p = m_inputs->problem;
        const double t0 = steadyMicros();
        for (int b = 0; b < p.batch; ++b)
            for (int h = 0; h < p.heads; ++h) {
                const int64_t T = p.tokens;
                auto out = referenceRows(v, *m_inputs, b, h, 0, T);
                if (!out) return out.status();
            }
        const double t1 = steadyMicros();
        BackendSample s;
        s.ms = (t1 - t0) / 1000.0;
        KernelRecord r;
        r.name = std::string(v.kind == VariantKind::LinearAttention ? "cpu::linearAttentionReference"
                                                                    : "cpu::referenceAttention") +
                 " [" + v.label + "]";
        r.externalId = externalId;
        r.startUs = t0;
        r.durationUs = t1 - t0;
        // The CPU's "launch": one item per head, run by the worker threads.
        r.grid[0] = p.batch * p.heads, r.grid[1] = 1, r.grid[2] = 1;
        r.block[0] = workerCount(), r.block[1] = 1, r.block[2] = 1;
        s.kernels.push_back(std::move(r));
        return s;
    }
    Result<MatrixRM> headOutput(const VariantSpec& v, int b, int h, int64_t q0, int64_t q1) override {
        if (!m_inputs) return Result<MatrixRM>(ErrorCode::Internal, "CPU profiler: prepare() was not called");
        if (std::string why = variantNeedsGpu(v); !why.empty()) return Result<MatrixRM>(ErrorCode::Unsupported, why);
        return referenceRows(v, *m_inputs, b, h, q0, q1);
    }
    Result<std::vector<double>> blockMass(int b, int h, const AttentionSpec& spec, int64_t blockSize) override {
        if (!m_inputs)
            return Result<std::vector<double>>(ErrorCode::Internal, "CPU profiler: prepare() was not called");
        return cpuBlockMass(*m_inputs, b, h, spec, blockSize);
    }
    MetricsResult collectMetrics(const VariantSpec&, const std::vector<std::string>&) override {
        MetricsResult m;
        m.reason = "hardware metrics come from the CUPTI range profiler on a GPU; the CPU backend has none";
        return m;
    }

private:
    void flushCache() {
        if (m_flush.empty()) m_flush.assign(kCacheFlushBytes, 0);
        ++m_flushValue;
        for (size_t i = 0; i < m_flush.size(); i += 64) m_flush[i] = m_flushValue;  // one write per line
    }
    const ProfileInputs* m_inputs = nullptr;
    std::vector<uint8_t> m_flush;
    uint8_t m_flushValue = 0;
};
}  // namespace

std::unique_ptr<ProfilerBackend> createCpuProfilerBackend() { return std::make_unique<CpuProfilerBackend>(); }

}  // namespace attnscope
