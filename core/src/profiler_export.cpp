// Profile exports: JSON (everything), CSV (the table), Chrome/Perfetto trace JSON, text table.
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "attnscope/profiler.h"

namespace attnscope {
namespace {
Json triple(const int v[3]) {
    Json a = Json::array();
    for (int i = 0; i < 3; ++i) a.push(v[i]);
    return a;
}

Json statsJson(const SampleStats& s) {
    Json j = Json::object();
    j.set("n", s.n);
    j.set("medianMs", s.median);
    j.set("minMs", s.min);
    j.set("maxMs", s.max);
    j.set("meanMs", s.mean);
    j.set("stddevMs", s.stddev);
    j.set("q1Ms", s.q1);
    j.set("q3Ms", s.q3);
    j.set("iqrMs", s.iqr);
    j.set("relStdDev", s.relStdDev);
    return j;
}

Json recordJson(const KernelRecord& r) {
    Json j = Json::object();
    j.set("name", r.name);
    j.set("variantIndex", r.variantIndex);
    j.set("sample", r.sample);
    j.set("externalId", r.externalId);
    j.set("correlationId", int64_t(r.correlationId));
    j.set("deviceId", int64_t(r.deviceId));
    j.set("streamId", int64_t(r.streamId));
    j.set("startUs", r.startUs);
    j.set("durationUs", r.durationUs);
    j.set("grid", triple(r.grid));
    j.set("block", triple(r.block));
    j.set("registers", r.registers);
    j.set("staticSharedBytes", r.staticSharedBytes);
    j.set("dynamicSharedBytes", r.dynamicSharedBytes);
    return j;
}

Json variantJson(const VariantResult& v) {
    Json j = Json::object();
    j.set("variant", v.label);
    j.set("backend", v.backend);
    j.set("dense", v.isDense);
    if (!v.error.empty()) j.set("error", v.error);
    j.set("stats", statsJson(v.stats));
    j.set("stop", stopReasonName(v.stop));
    Json samples = Json::array();
    for (double s : v.samples) samples.push(s);
    j.set("samplesMs", std::move(samples));
    j.set("flops", v.flops);
    j.set("bytes", v.bytes);
    j.set("tflops", v.tflops);
    j.set("gbps", v.gbps);
    j.set("ratioToDense", v.ratioToDense);
    j.set("blockDensity", v.density);
    j.set("relError", v.relError >= 0 ? Json(v.relError) : Json());
    if (!v.accuracyNote.empty()) j.set("accuracyNote", v.accuracyNote);
    j.set("recall", v.recall >= 0 ? Json(v.recall) : Json());
    Json kernels = Json::array();
    for (const auto& k : v.kernels) {
        Json kj = Json::object();
        kj.set("name", k.name);
        kj.set("grid", triple(k.grid));
        kj.set("block", triple(k.block));
        kj.set("registers", k.registers);
        kj.set("staticSharedBytes", k.staticSharedBytes);
        kj.set("dynamicSharedBytes", k.dynamicSharedBytes);
        kj.set("launches", k.launches);
        kj.set("medianUs", k.medianUs);
        kernels.push(std::move(kj));
    }
    j.set("kernels", std::move(kernels));
    Json m = Json::object();
    m.set("collected", v.metrics.collected);
    if (!v.metrics.reason.empty()) m.set("reason", v.metrics.reason);
    m.set("passes", v.metrics.passes);
    Json values = Json::object();
    for (const auto& mv : v.metrics.values) {
        Json x = Json::object();
        x.set("value", mv.value);
        x.set("unit", mv.unit);
        values.set(mv.name, std::move(x));
    }
    m.set("values", std::move(values));
    j.set("metrics", std::move(m));
    return j;
}

std::string csvField(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
}

std::string num(double v, int precision = 6) {
    if (!std::isfinite(v)) return "";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    return buf;
}
}  // namespace

Json profileToJson(const ProfileReport& report) {
    Json j = Json::object();
    j.set("format", "attnscope.profile");
    j.set("version", 1);
    j.set("backend", report.backend);
    j.set("backendDescription", report.backendDescription);
    if (!report.fallbackReason.empty()) j.set("fallbackReason", report.fallbackReason);
    j.set("mode", report.mode);
    if (!report.metricsNote.empty()) j.set("metricsNote", report.metricsNote);
    j.set("wallSeconds", report.wallSeconds);
    j.set("environment", report.environment);
    Json shapes = Json::array();
    for (const auto& s : report.shapes) {
        Json sj = Json::object();
        sj.set("description", s.description);
        Json p = Json::object();
        p.set("batch", s.problem.batch);
        p.set("heads", s.problem.heads);
        p.set("kvHeads", s.problem.kvHeads);
        p.set("tokens", int64_t(s.problem.tokens));
        p.set("headDim", s.problem.headDim);
        p.set("dtype", s.problem.dtype == GpuDType::F16 ? "f16" : "bf16");
        sj.set("problem", std::move(p));
        sj.set("dense", s.denseLabel);
        Json vs = Json::array();
        for (const auto& v : s.variants) vs.push(variantJson(v));
        sj.set("variants", std::move(vs));
        Json rs = Json::array();
        for (const auto& r : s.records) rs.push(recordJson(r));
        sj.set("records", std::move(rs));
        shapes.push(std::move(sj));
    }
    j.set("shapes", std::move(shapes));
    return j;
}

std::string profileToCsv(const ProfileReport& report) {
    std::ostringstream o;
    o << "shape,variant,backend,median_ms,min_ms,max_ms,iqr_ms,rel_std,n,stop,tflops,gbps,ratio_to_dense,"
         "block_density,rel_error,recall,error\n";
    for (const auto& s : report.shapes)
        for (const auto& v : s.variants) {
            o << csvField(s.description) << ',' << csvField(v.label) << ',' << v.backend << ',' << num(v.stats.median)
              << ',' << num(v.stats.min) << ',' << num(v.stats.max) << ',' << num(v.stats.iqr) << ','
              << num(v.stats.relStdDev) << ',' << v.stats.n << ',' << stopReasonName(v.stop) << ',' << num(v.tflops)
              << ',' << num(v.gbps) << ',' << num(v.ratioToDense) << ',' << num(v.density) << ','
              << (v.relError >= 0 ? num(v.relError) : "") << ',' << (v.recall >= 0 ? num(v.recall) : "") << ','
              << csvField(v.error) << '\n';
        }
    return o.str();
}

Json profileToPerfetto(const ProfileReport& report) {
    Json events = Json::array();
    for (size_t si = 0; si < report.shapes.size(); ++si) {
        const ShapeProfile& s = report.shapes[si];
        const int pid = int(si);
        Json pname = Json::object();
        pname.set("name", "process_name");
        pname.set("ph", "M");
        pname.set("pid", pid);
        Json pargs = Json::object();
        pargs.set("name", report.backend + " · " + s.description);
        pname.set("args", std::move(pargs));
        events.push(std::move(pname));
        // One track per (variant, stream): a variant's runs are sequential on its stream, so
        // slices on one track never overlap.
        std::map<std::pair<int, uint32_t>, int> tids;
        for (const auto& r : s.records) {
            auto key = std::make_pair(r.variantIndex, r.streamId);
            if (tids.count(key)) continue;
            const int tid = int(tids.size()) + 1;
            tids[key] = tid;
            Json tname = Json::object();
            tname.set("name", "thread_name");
            tname.set("ph", "M");
            tname.set("pid", pid);
            tname.set("tid", tid);
            Json targs = Json::object();
            const bool known = r.variantIndex >= 0 && size_t(r.variantIndex) < s.variants.size();
            const std::string label = known ? s.variants[size_t(r.variantIndex)].label : std::string("?");
            targs.set("name", label + " (stream " + std::to_string(r.streamId) + ")");
            tname.set("args", std::move(targs));
            events.push(std::move(tname));
            Json sort = Json::object();
            sort.set("name", "thread_sort_index");
            sort.set("ph", "M");
            sort.set("pid", pid);
            sort.set("tid", tid);
            Json sargs = Json::object();
            sargs.set("sort_index", tid);
            sort.set("args", std::move(sargs));
            events.push(std::move(sort));
        }
        for (const auto& r : s.records) {
            Json e = Json::object();
            e.set("ph", "X");
            e.set("cat", "kernel");
            e.set("name", r.name);
            e.set("pid", pid);
            e.set("tid", tids[{r.variantIndex, r.streamId}]);
            e.set("ts", r.startUs);
            e.set("dur", r.durationUs);
            Json a = Json::object();
            const bool known = r.variantIndex >= 0 && size_t(r.variantIndex) < s.variants.size();
            a.set("variant", known ? Json(s.variants[size_t(r.variantIndex)].label) : Json());
            a.set("sample", r.sample);
            a.set("correlation", int64_t(r.correlationId));
            a.set("external id", r.externalId);
            a.set("device", int64_t(r.deviceId));
            a.set("stream", int64_t(r.streamId));
            a.set("grid", triple(r.grid));
            a.set("block", triple(r.block));
            a.set("registers per thread", r.registers);
            a.set("shared memory", r.staticSharedBytes + r.dynamicSharedBytes);
            e.set("args", std::move(a));
            events.push(std::move(e));
        }
    }
    Json j = Json::object();
    j.set("traceEvents", std::move(events));
    j.set("displayTimeUnit", "ns");
    return j;
}

std::string profileToText(const ProfileReport& report) {
    std::ostringstream o;
    char line[512];
    o << "backend: " << report.backend << " — " << report.backendDescription << " (" << report.mode << ")\n";
    if (!report.fallbackReason.empty()) o << "CPU fallback: " << report.fallbackReason << "\n";
    if (!report.metricsNote.empty()) o << "metrics: " << report.metricsNote << "\n";
    for (const auto& s : report.shapes) {
        o << "\n" << s.description << "  (dense = " << s.denseLabel << ")\n";
        std::snprintf(line, sizeof line, "%-16s %-4s %10s %10s %9s %7s %4s %8s %8s %7s %7s %9s %7s\n", "variant", "bk",
                      "median ms", "min ms", "IQR ms", "relstd", "n", "TFLOP/s", "GB/s", "ratio", "density", "rel err",
                      "recall");
        o << line;
        for (const auto& v : s.variants) {
            if (!v.error.empty()) {
                o << v.label << ": " << v.error << "\n";
                continue;
            }
            const std::string err = v.relError >= 0 ? num(v.relError, 3) : v.accuracyNote.empty() ? "-" : "n/a";
            const std::string rec = v.recall >= 0 ? num(v.recall, 4) : "-";
            std::snprintf(
                line, sizeof line, "%-16s %-4s %10.4f %10.4f %9.4f %6.2f%% %4d %8.3g %8.4g %7.3f %7.3f %9s %7s\n",
                v.label.c_str(), v.backend.c_str(), v.stats.median, v.stats.min, v.stats.iqr, v.stats.relStdDev * 100,
                v.stats.n, v.tflops, v.gbps, v.ratioToDense, v.density, err.c_str(), rec.c_str());
            o << line;
        }
        for (const auto& v : s.variants)
            if (v.error.empty() && !v.accuracyNote.empty()) o << v.label << ": rel err " << v.accuracyNote << "\n";
        o << (report.backend == "GPU" ? "kernels (demangled; grid, block, registers/thread, shared memory):\n"
                                      : "reference calls (CPU: no launch configuration):\n");
        for (const auto& v : s.variants)
            for (const auto& k : v.kernels) {
                std::string name = k.name.size() > 90 ? k.name.substr(0, 87) + "..." : k.name;
                if (v.backend == "GPU")
                    std::snprintf(
                        line, sizeof line,
                        "  %-14s %s  grid [%d,%d,%d] block [%d,%d,%d] regs %d smem %d B, %d launches, median %.2f us\n",
                        v.label.c_str(), name.c_str(), k.grid[0], k.grid[1], k.grid[2], k.block[0], k.block[1],
                        k.block[2], k.registers, k.staticSharedBytes + k.dynamicSharedBytes, k.launches, k.medianUs);
                else  // registers, shared memory and the launch grid exist on the GPU only
                    std::snprintf(line, sizeof line, "  %-14s %s  %d calls, median %.2f us\n", v.label.c_str(),
                                  name.c_str(), k.launches, k.medianUs);
                o << line;
            }
        bool anyMetrics = false;
        for (const auto& v : s.variants) anyMetrics |= v.metrics.collected;
        if (anyMetrics) {
            o << "metrics (range profiler, replay pass):\n";
            for (const auto& v : s.variants) {
                if (!v.metrics.collected) continue;
                o << "  " << v.label << ":";
                for (const auto& m : v.metrics.values) o << " " << m.name << "=" << num(m.value, 4) << m.unit;
                o << "\n";
            }
        }
    }
    return o.str();
}

Status writeProfile(const ProfileReport& report, const std::string& path, const std::string& format) {
    if (format == "json") return writeFileAtomic(path, profileToJson(report).dump(1));
    if (format == "csv") return writeFileAtomic(path, profileToCsv(report));
    if (format == "perfetto") return writeFileAtomic(path, profileToPerfetto(report).dump());
    return {ErrorCode::InvalidArgument,
            "profile export '" + path + "': unknown format '" + format + "' (expected json, csv or perfetto)"};
}

}  // namespace attnscope
