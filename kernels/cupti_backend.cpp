// The GPU profiler backend: the CUDA engine's kernels timed from CUPTI activity records, one
// external correlation id per variant run; metrics from the range profiler in a separate pass.
#include <algorithm>
#include <cmath>

#include <cuda_runtime.h>

#include "cupti_session.h"
#include "device_memory.h"
#include "attnscope/memory.h"
#include "attnscope/profiler.h"

namespace attnscope {
namespace {
using gpu::CuptiActivity;

constexpr int kDevice = 0;  // the engine drives device 0

/// One head's rows [q0, q1) of a [B, H, Tq, D] float output.
MatrixRM sliceHead(const std::vector<float>& out, const AttentionProblem& p, int64_t tq, int b, int h, int64_t q0,
                   int64_t q1) {
    const size_t offset = ((size_t(b) * p.heads + h) * size_t(tq) + size_t(q0)) * p.headDim;
    return Eigen::Map<const MatrixRM>(out.data() + offset, q1 - q0, p.headDim);
}

class CuptiProfilerBackend final : public ProfilerBackend {
public:
    explicit CuptiProfilerBackend(std::unique_ptr<GpuEngine> engine)
        : m_engine(std::move(engine)), m_info(m_engine->info()) {}
    ~CuptiProfilerBackend() override { (void)CuptiActivity::instance().disable(); }

    std::string label() const override { return "GPU"; }
    std::string description() const override {
        return m_info.name + " (sm_" + std::to_string(m_info.computeMajor) + std::to_string(m_info.computeMinor) +
               ", " + std::to_string(m_info.smCount) + " SMs, SM clock " + std::to_string(m_info.smClockMHz) +
               " MHz), CUPTI activity kernel timing";
    }
    Json environment() const override {
        Json e = Json::object();
        e.set("backend", "GPU");
        e.set("device", m_info.name);
        e.set("computeCapability", std::to_string(m_info.computeMajor) + "." + std::to_string(m_info.computeMinor));
        e.set("smCount", m_info.smCount);
        e.set("memoryBytes", m_info.memoryBytes);
        e.set("l2Bytes", m_info.l2Bytes);
        e.set("driverVersion", m_info.driverVersion);
        e.set("runtimeVersion", m_info.runtimeVersion);
        e.set("smClockMHz", m_info.smClockMHz);
        e.set("memClockMHz", m_info.memClockMHz);
        e.set("timing",
              "CUPTI CONCURRENT_KERNEL records (CUpti_ActivityKernel10): first start to last end of the "
              "variant run's kernels");
        e.set("droppedRecords", uint64_t(CuptiActivity::instance().droppedRecords()));
        e.set("samplesWithoutExternalCorrelation", m_uncorrelatedSamples);
        // The library behind the cudnn:* rows (loaded at run time), or why there is none.
        const VendorLibraryInfo cudnn = probeCudnn();
        Json c = Json::object();
        c.set("available", cudnn.available);
        if (cudnn.available)
            c.set("version", cudnn.version), c.set("path", cudnn.path);
        else
            c.set("reason", cudnn.reason);
        e.set("cudnn", std::move(c));
        return e;
    }

    Status checkFits(const AttentionProblem& p) const override {
        // Q, K, V and O in 16 bits, the lse in float32, and room for block masks and workspace.
        const double q = double(p.batch) * p.heads * p.tokens * p.headDim;
        const double kv = double(p.batch) * p.kvHeads * p.tokens * p.headDim;
        const double need = (2 * q + 2 * kv) * 2 + double(p.batch) * p.heads * p.tokens * sizeof(float);
        Status fits = gpu::checkDeviceFits(need, "Q, K, V, O and lse of the problem");
        if (!fits) return {fits.code(), fits.message() + " on " + m_info.name};
        return fits;
    }

    Status prepare(const ProfileInputs& inputs) override {
        m_inputs = &inputs;
        m_decode.reset();
        m_downloadedOf.clear();
        auto b = m_engine->upload(inputs.problem, inputs.q, inputs.k, inputs.v);
        if (!b) return b.status();
        m_buffers = std::move(*b);
        return Status::success();
    }

    Result<BackendSample> runSample(const VariantSpec& v, uint64_t externalId, bool cold) override {
        auto buf = buffersFor(v);
        if (!buf) return buf.status();
        auto& act = CuptiActivity::instance();
        if (cold) {
            if (Status st = m_engine->flushL2(); !st) return st;
        }
        if (Status st = act.pushExternalId(externalId); !st) return st;
        auto launches = m_engine->run(v, **buf);
        if (Status st = act.popExternalId(); !st) return st;
        if (!launches) return launches.status();
        if (Status st = m_engine->synchronize(); !st) return st;
        if (Status st = act.flush(); !st) return st;
        BackendSample s;
        double first = 0, last = 0;
        std::vector<KernelRecord> taken = act.take();
        // Normally the external id picks this run's kernels out of the flush and other work; if
        // CUPTI delivered no correlation records at all, every kernel of this sample is the run's
        // (the store is emptied after each sample).
        const bool joined =
            std::any_of(taken.begin(), taken.end(), [](const KernelRecord& r) { return r.externalId != 0; });
        if (!joined) m_uncorrelatedSamples++;
        for (auto& r : taken) {
            if (joined && r.externalId != externalId) continue;
            r.externalId = externalId;
            if (s.kernels.empty()) first = r.startUs, last = r.startUs + r.durationUs;
            first = std::min(first, r.startUs);
            last = std::max(last, r.startUs + r.durationUs);
            s.kernels.push_back(std::move(r));
        }
        if (s.kernels.empty())
            return Result<BackendSample>(ErrorCode::Device, "CUPTI delivered no kernel record for \"" + v.label +
                                                                "\" (" + std::to_string(launches->size()) +
                                                                " launches, " + std::to_string(act.droppedRecords()) +
                                                                " records dropped)");
        s.ms = (last - first) * 1e-3;
        return s;
    }

    Result<MatrixRM> headOutput(const VariantSpec& v, int b, int h, int64_t q0, int64_t q1) override {
        auto buf = buffersFor(v);
        if (!buf) return buf.status();
        if (m_downloadedOf != v.label || m_out.empty()) {
            // Poison first so rows the kernel skipped show up as NaN instead of stale values.
            if (Status st = m_engine->poisonOutput(**buf); !st) return st;
            auto launches = m_engine->run(v, **buf);
            if (!launches) return launches.status();
            if (Status st = m_engine->synchronize(); !st) return st;
            if (Status st = m_engine->download(**buf, m_out, m_lse); !st) return st;
            (void)CuptiActivity::instance().flush();
            (void)CuptiActivity::instance().take();  // these runs are not samples
            m_downloadedOf = v.label;
        }
        const auto& p = m_inputs->problem;
        const int64_t tq = v.kind == VariantKind::Decode ? 1 : p.tokens;
        if (v.kind == VariantKind::Decode) q0 = 0, q1 = 1;
        MatrixRM out = sliceHead(m_out, p, tq, b, h, q0, q1);
        // A learned sink: the kernels' O and L have none; O' = O·exp(L − L') (softmax variants).
        if (size_t(h) < m_inputs->sinks.size() && v.kind != VariantKind::LinearAttention)
            applySinkToOutput(out, m_lse.data() + (size_t(b) * p.heads + h) * size_t(tq) + size_t(q0),
                              m_inputs->sinks[size_t(h)]);
        return out;
    }

    Result<std::vector<double>> blockMass(int b, int h, const AttentionSpec& spec, int64_t blockSize) override {
        return m_engine->blockMass(m_inputs->headMatrix(b, h, Which::Q), m_inputs->headMatrix(b, h, Which::K), spec,
                                   blockSize);
    }

    MetricsResult collectMetrics(const VariantSpec& v, const std::vector<std::string>& names) override {
        auto buf = buffersFor(v);
        if (!buf) {
            MetricsResult m;
            m.reason = buf.message();
            return m;
        }
        // Replay serialises kernels and perturbs timing: activity tracing is off meanwhile.
        auto& act = CuptiActivity::instance();
        (void)act.disable();
        MetricsResult m = gpu::measureRangeMetrics(kDevice, names, [&]() -> Status {
            auto launches = m_engine->run(v, **buf);
            if (!launches) return launches.status();
            return m_engine->synchronize();
        });
        (void)act.take();
        if (Status st = act.enable(); !st && m.reason.empty()) m.reason = st.message();
        return m;
    }

private:
    Result<GpuBuffers*> buffersFor(const VariantSpec& v) {
        if (!m_inputs || !m_buffers)
            return Result<GpuBuffers*>(ErrorCode::Internal, "GPU profiler: prepare() was not called");
        if (v.kind != VariantKind::Decode) return m_buffers.get();
        if (!m_decode) {
            // Decode: one query per head (the last token) against the whole KV.
            AttentionProblem p = m_inputs->problem;
            p.queryTokens = 1;
            std::vector<float> q(size_t(p.batch) * p.heads * p.headDim);
            for (int b = 0; b < p.batch; ++b)
                for (int h = 0; h < p.heads; ++h) {
                    const MatrixRM head = m_inputs->headMatrix(b, h, Which::Q);
                    std::copy(head.data() + (p.tokens - 1) * p.headDim, head.data() + p.tokens * p.headDim,
                              q.begin() + (size_t(b) * p.heads + h) * p.headDim);
                }
            auto d = m_engine->upload(p, q, m_inputs->k, m_inputs->v);
            if (!d) return d.status();
            m_decode = std::move(*d);
        }
        return m_decode.get();
    }

    std::unique_ptr<GpuEngine> m_engine;
    GpuInfo m_info;
    const ProfileInputs* m_inputs = nullptr;
    std::unique_ptr<GpuBuffers> m_buffers, m_decode;
    std::string m_downloadedOf;  // the variant whose output m_out holds
    std::vector<float> m_out, m_lse;
    int m_uncorrelatedSamples = 0;
};
}  // namespace

Result<std::unique_ptr<ProfilerBackend>> createGpuProfilerBackend() {
    auto engine = createGpuEngine();
    const GpuInfo info = engine->info();
    if (!info.available) return Status{ErrorCode::Unsupported, "no usable GPU: " + info.reason};
    if (Status st = CuptiActivity::instance().enable(); !st)
        return Status{ErrorCode::Unsupported, "CUPTI activity tracing is unavailable (" + st.message() + ")"};
    return std::unique_ptr<ProfilerBackend>(std::make_unique<CuptiProfilerBackend>(std::move(engine)));
}

Result<OverheadReport> measureCuptiOverhead(const ShapeSource& shape, const std::vector<std::string>& variants,
                                            int rounds, int reps, const ProgressFn& progress) {
    constexpr int kWarmup = 3;
    auto engine = createGpuEngine();
    if (!engine->info().available) return Status{ErrorCode::Unsupported, "no usable GPU: " + engine->info().reason};
    auto inputs = loadProfileInputs(shape);
    if (!inputs) return inputs.status();
    auto buffers = engine->upload(inputs->problem, inputs->q, inputs->k, inputs->v);
    if (!buffers) return buffers.status();
    std::vector<VariantSpec> specs;
    OverheadReport rep;
    rep.rounds = rounds;
    rep.repsPerRound = reps;
    for (const auto& t : variants) {
        auto v = parseVariant(t);
        if (!v) return v.status();
        // Block lists need a derived mask and decode other buffers; both use the same kernels.
        if (v->kind == VariantKind::BlockSparse || v->kind == VariantKind::Decode) continue;
        specs.push_back(*v);
        rep.rows.push_back({t, 0, 0, 0});
    }
    auto& act = CuptiActivity::instance();
    std::vector<std::vector<double>> without(specs.size()), with(specs.size());
    ProgressReporter reporter(progress);
    for (int r = 0; r < rounds; ++r) {
        for (size_t i = 0; i < specs.size(); ++i) {
            // Alternate which setting goes first so drift does not favour one.
            for (int pass = 0; pass < 2; ++pass) {
                const bool on = (pass == 0) == (r % 2 == 1);
                if (Status st = on ? act.enable() : act.disable(); !st) return st;
                auto ms = engine->timeVariant(specs[i], **buffers, kWarmup, reps);
                if (!ms) return ms.status();
                (on ? with : without)[i].push_back(*ms);
                if (on) {
                    if (Status st = act.flush(); !st) return st;
                    (void)act.take();
                }
            }
        }
        if (!reporter.report(double(r + 1) / rounds, "CUPTI overhead"))
            return Status{ErrorCode::Cancelled, "cancelled"};
    }
    (void)act.disable();
    double sum = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
        rep.rows[i].msWithout = computeStats(without[i]).median;
        rep.rows[i].msWith = computeStats(with[i]).median;
        rep.rows[i].percent = (rep.rows[i].msWith - rep.rows[i].msWithout) / rep.rows[i].msWithout * 100.0;
        sum += rep.rows[i].percent;
    }
    rep.meanPercent = specs.empty() ? 0 : sum / double(specs.size());
    return rep;
}

}  // namespace attnscope
