// Profiler exports: Chrome/Perfetto trace JSON checked against its rules, JSON and CSV content.
#include <QtTest>

#include <map>
#include <set>

#include "attnscope/profiler.h"
#include "kernel_record.h"

using namespace attnscope;

namespace {
/// A timed kernel with the names, ids and launch configuration the exports write.
KernelRecord record(int variant, int sample, uint32_t stream, double start, double dur, const char* name) {
    KernelRecord r = testing::kernelRecord(variant, stream, start, dur);
    r.name = name;
    r.sample = sample;
    r.correlationId = uint32_t(100 + sample);
    r.externalId = uint64_t(sample + 1);
    r.grid[0] = 64;
    r.block[0] = 128;
    r.registers = 168;
    r.dynamicSharedBytes = 65536;
    return r;
}

/// A hand-built report: two shapes; variant 1 of shape 0 launches on two streams.
ProfileReport handReport() {
    ProfileReport rep;
    rep.backend = "GPU";
    rep.backendDescription = "test device";
    rep.mode = "hot";
    rep.environment = Json::object();
    for (int s = 0; s < 2; ++s) {
        ShapeProfile sh;
        sh.description = s == 0 ? "synthetic B=1, H=2" : "trace: layer 0 head 1";
        sh.denseLabel = "causal";
        for (const char* label : {"causal", "sliding:64", "linear"}) {
            VariantResult v;
            v.label = label;
            v.backend = "GPU";
            v.isDense = std::string(label) == "causal";
            v.samples = {1.0, 1.5, 2.0};
            v.stats = computeStats(v.samples);
            v.ratioToDense = 1.0;
            v.density = 0.5;
            v.relError = v.isDense ? 0.0 : 0.25;
            v.recall = std::string(label) == "linear" ? -1.0 : 1.0;
            sh.variants.push_back(v);
        }
        double t = 10.0 + 1000 * s;
        for (int sample = 0; sample < 3; ++sample)
            for (int v = 0; v < 3; ++v) {
                sh.records.push_back(record(v, sample, 7, t, 2.5, "flash_fwd<128>"));
                if (v == 1) sh.records.push_back(record(v, sample, 9, t, 1.25, "reduce_kernel"));  // other stream
                t += 3.0;
            }
        rep.shapes.push_back(sh);
    }
    return rep;
}

/// Checks the trace-event rules; returns "" or the first violation.
QString perfettoViolation(const Json& trace) {
    const Json* events = trace.find("traceEvents");
    if (!events || !events->isArray()) return "no traceEvents array";
    std::set<int> pidsNamed;
    std::set<std::pair<int, int>> tidsNamed;
    std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> slices;
    std::map<std::pair<int, int>, std::string> trackKey;
    for (const Json& e : events->asArray()) {
        const Json* ph = e.find("ph");
        if (!ph || !ph->isString()) return "event without ph";
        const Json* pid = e.find("pid");
        if (!pid || !pid->isNumber()) return "event without numeric pid";
        if (ph->asString() == "M") {
            const Json* name = e.find("name");
            const Json* args = e.find("args");
            if (!name || !args) return "M event without name/args";
            if (name->asString() == "process_name") pidsNamed.insert(int(pid->asNumber()));
            if (name->asString() == "thread_name") {
                if (!e.find("tid") || !args->find("name") || !args->find("name")->isString())
                    return "thread_name without tid or args.name";
                tidsNamed.insert({int(pid->asNumber()), int(e.find("tid")->asNumber())});
            }
        } else if (ph->asString() == "X") {
            const Json* ts = e.find("ts");
            const Json* dur = e.find("dur");
            const Json* tid = e.find("tid");
            if (!ts || !ts->isNumber() || !dur || !dur->isNumber()) return "X event without numeric ts/dur";
            if (!tid || !tid->isNumber()) return "X event without numeric tid";
            if (ts->asNumber() < 0 || dur->asNumber() < 0) return "negative ts/dur";
            if (!e.find("name") || !e.find("name")->isString()) return "X event without name";
            const auto key = std::make_pair(int(pid->asNumber()), int(tid->asNumber()));
            slices[key].push_back({ts->asNumber(), ts->asNumber() + dur->asNumber()});
            const Json* args = e.find("args");
            if (!args || !args->find("grid") || !args->find("block") || !args->find("registers per thread"))
                return "X event without kernel args";
            const std::string track =
                args->find("variant")->asString() + "/" + std::to_string(int(args->find("stream")->asNumber()));
            if (trackKey.count(key) && trackKey[key] != track) return "two tracks share one tid";
            trackKey[key] = track;
        } else {
            return "unexpected phase " + QString::fromStdString(ph->asString());
        }
    }
    std::set<std::string> tracksSeen;
    for (auto& [key, list] : slices) {
        if (!pidsNamed.count(key.first)) return "pid without process_name";
        if (!tidsNamed.count(key)) return "tid without thread_name";
        if (!tracksSeen.insert(std::to_string(key.first) + ":" + trackKey[key]).second)
            return "one track spread over two tids";
        std::sort(list.begin(), list.end());
        for (size_t i = 1; i < list.size(); ++i)
            if (list[i].first < list[i - 1].second - 1e-9) return "overlapping X slices on one tid";
    }
    return {};
}
}  // namespace

class TestProfilerExport : public QObject {
    Q_OBJECT

private slots:
    void perfettoRules() {
        const ProfileReport rep = handReport();
        const std::string text = profileToPerfetto(rep).dump();
        auto parsed = Json::parse(text, "perfetto");
        QVERIFY2(parsed.ok(), parsed.message().c_str());
        const QString v = perfettoViolation(*parsed);
        QVERIFY2(v.isEmpty(), qPrintable(v));
        // ts/dur are microseconds straight from the records; one X per record.
        int x = 0;
        bool sawFirst = false;
        for (const Json& e : parsed->find("traceEvents")->asArray()) {
            if (e.find("ph")->asString() != "X") continue;
            ++x;
            if (e.find("ts")->asNumber() == 10.0 && e.find("pid")->asNumber() == 0) {
                QCOMPARE(e.find("dur")->asNumber(), 2.5);
                QCOMPARE(e.find("args")->find("registers per thread")->asNumber(), 168.0);
                QCOMPARE(e.find("args")->find("shared memory")->asNumber(), 65536.0);
                sawFirst = true;
            }
        }
        size_t records = 0;
        for (const auto& s : rep.shapes) records += s.records.size();
        QCOMPARE(size_t(x), records);
        QVERIFY(sawFirst);
        QCOMPARE(parsed->find("displayTimeUnit")->asString(), std::string("ns"));
    }

    // The checker itself must catch broken traces, or the test above proves nothing.
    void checkerCatchesOverlap() {
        ProfileReport rep = handReport();
        rep.shapes[0].records.push_back(record(0, 9, 7, 10.5, 1.0, "late"));  // overlaps the first slice
        auto parsed = Json::parse(profileToPerfetto(rep).dump());
        QVERIFY(parsed.ok());
        QCOMPARE(perfettoViolation(*parsed), QString("overlapping X slices on one tid"));
    }

    void cpuRunPerfetto() {
        ProfileRequest req;
        auto shape = parseShape("1,1,1,128,16");  // B,H,Hkv,T,D as profile --shape takes it
        QVERIFY2(shape.ok(), shape.message().c_str());
        req.shapes = {*shape};
        req.variants = {"causal", "sliding:32", "linear"};
        req.warmup = 0;
        req.stop.minSamples = 2;
        req.stop.maxSamples = 3;
        req.accuracy = false;
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, req);
        QVERIFY2(rep.ok(), rep.message().c_str());
        auto parsed = Json::parse(profileToPerfetto(*rep).dump());
        QVERIFY(parsed.ok());
        const QString v = perfettoViolation(*parsed);
        QVERIFY2(v.isEmpty(), qPrintable(v));
    }

    void jsonContent() {
        const ProfileReport rep = handReport();
        auto parsed = Json::parse(profileToJson(rep).dump(1));
        QVERIFY2(parsed.ok(), parsed.message().c_str());
        QCOMPARE(parsed->find("format")->asString(), std::string("attnscope.profile"));
        QCOMPARE(parsed->find("backend")->asString(), std::string("GPU"));
        const auto& shapes = parsed->find("shapes")->asArray();
        QCOMPARE(shapes.size(), size_t(2));
        const auto& variants = shapes[0].find("variants")->asArray();
        QCOMPARE(variants.size(), size_t(3));
        QCOMPARE(variants[1].find("variant")->asString(), std::string("sliding:64"));
        QCOMPARE(variants[1].find("stats")->find("medianMs")->asNumber(), 1.5);
        QCOMPARE(variants[1].find("stats")->find("n")->asNumber(), 3.0);
        QCOMPARE(variants[1].find("samplesMs")->size(), size_t(3));
        QCOMPARE(variants[1].find("relError")->asNumber(), 0.25);
        QVERIFY(variants[2].find("recall")->isNull());  // linear: recall undefined
        QCOMPARE(shapes[0].find("records")->size(), rep.shapes[0].records.size());
        QCOMPARE(shapes[0].find("records")->asArray()[0].find("registers")->asNumber(), 168.0);
    }

    void csvContent() {
        const ProfileReport rep = handReport();
        const QString csv = QString::fromStdString(profileToCsv(rep));
        const QStringList lines = csv.split('\n', Qt::SkipEmptyParts);
        QCOMPARE(lines.size(), 1 + 6);
        QVERIFY(lines[0].startsWith("shape,variant,backend,median_ms"));
        const int columns = lines[0].count(',');
        // Descriptions with a comma are quoted, so each data row has the header's field count.
        QVERIFY(lines[1].startsWith("\"synthetic B=1, H=2\",causal,GPU,1.5,1,2,"));
        for (int i = 1; i < lines.size(); ++i) QCOMPARE(lines[i].count(',') - (i <= 3 ? 1 : 0), columns);
        QVERIFY(lines[3].contains(",linear,GPU,"));
        QVERIFY(lines[3].contains(",0.25,,"));  // rel error 0.25, recall empty
    }

    void writeRejectsUnknownFormat() {
        const Status st = writeProfile(handReport(), QDir::tempPath().toStdString() + "/x.prof", "xml");
        QVERIFY(!st.ok());
        QVERIFY(st.message().find("unknown format") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestProfilerExport)
#include "tst_profiler_export.moc"
