// The profiler's CPU fallback on small synthetic shapes: every variant gets a CPU result, the
// dense baseline scores ratio 1 / error 0 / recall 1, and sliding's error and recall match a
// float64 brute force.
#include <QtTest>

#include "attnscope/profiler.h"
#include "attnscope/trace.h"
#include "brute_attention.h"
#include "trace_fixture.h"

using namespace attnscope;

namespace {
ProfileRequest smallRequest(int64_t tokens, std::vector<std::string> variants, uint64_t seed) {
    ProfileRequest req;
    ShapeSource s;
    s.batch = 1;
    s.heads = 2;
    s.kvHeads = 1;  // GQA: both query heads share kv head 0
    s.tokens = tokens;
    s.headDim = 32;
    s.seed = seed;
    req.shapes = {s};
    req.variants = std::move(variants);
    req.warmup = 1;
    req.stop.minSamples = 2;
    req.stop.maxSamples = 3;
    req.accuracyHeads = 1;
    return req;
}

const VariantResult* find(const ShapeProfile& s, const std::string& label) {
    for (const auto& v : s.variants)
        if (v.label == label) return &v;
    return nullptr;
}
}  // namespace

class TestProfilerCpu : public QObject {
    Q_OBJECT

private slots:
    void everyVariantLabelledCpu() {
        const std::vector<std::string> variants = {"causal", "sliding:64", "alibi",  "softcap:20", "document:4",
                                                   "topk:1", "linear",     "decode", "full"};
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, smallRequest(512, variants, QRandomGenerator::global()->generate64()));
        QVERIFY2(rep.ok(), rep.message().c_str());
        QCOMPARE(rep->backend, std::string("CPU"));
        QCOMPARE(rep->shapes.size(), size_t(1));
        const ShapeProfile& s = rep->shapes[0];
        QCOMPARE(s.denseLabel, std::string("causal"));
        QCOMPARE(s.variants.size(), variants.size());  // causal was asked for: not added twice
        for (const auto& v : s.variants) {
            QVERIFY2(v.error.empty(), (v.label + ": " + v.error).c_str());
            QCOMPARE(v.backend, std::string("CPU"));
            QVERIFY(v.stats.n >= 2 && v.stats.n <= 3);
            QVERIFY(v.stats.median > 0);
            QVERIFY(v.ratioToDense > 0);
            QVERIFY(v.tflops > 0 && v.gbps > 0);
            // Linear attention is not an approximation of softmax attention: no rel error, a note.
            QVERIFY(v.label == "linear" ? v.relError < 0 && !v.accuracyNote.empty() : v.relError >= 0);
            QVERIFY(!v.kernels.empty());
            QCOMPARE(v.kernels[0].launches, v.stats.n);
        }
        const VariantResult* dense = find(s, "causal");
        QVERIFY(dense && dense->isDense);
        QCOMPARE(dense->ratioToDense, 1.0);
        QCOMPARE(dense->relError, 0.0);
        QVERIFY(std::abs(dense->recall - 1.0) < 1e-9);
        QCOMPARE(find(s, "decode")->relError, 0.0);  // decode is the dense last row, exactly
        QVERIFY(std::abs(find(s, "full")->recall - 1.0) < 1e-9);
        QVERIFY(find(s, "full")->relError > 0);
        QCOMPARE(find(s, "linear")->recall, -1.0);  // no mask: recall undefined
        const VariantResult* topk = find(s, "topk:1");
        QVERIFY(topk->recall > 0 && topk->recall < 1);
        QVERIFY(topk->density < dense->density);
        QVERIFY(find(s, "sliding:64")->density < dense->density);
        // Records: one per sample, tagged with their variant.
        QCOMPARE(s.records.size(), [&] {
            size_t n = 0;
            for (const auto& v : s.variants) n += size_t(v.stats.n);
            return n;
        }());
    }

    void denseAddedWhenMissing() {
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, smallRequest(256, {"sliding:32"}, 7));
        QVERIFY2(rep.ok(), rep.message().c_str());
        const auto& s = rep->shapes[0];
        QCOMPARE(s.variants.size(), size_t(2));
        QCOMPARE(s.variants[0].label, std::string("causal"));
        QVERIFY(s.variants[0].isDense);
    }

    // Sliding-window error and recall against float64 brute force on fresh random data.
    void slidingMatchesBruteForce_data() {
        QTest::addColumn<int>("tokens");
        QTest::addColumn<int>("window");
        QTest::newRow("T=192 W=16") << 192 << 16;
        QTest::newRow("T=300 W=100") << 300 << 100;
        QTest::newRow("T=512 W=200") << 512 << 200;
    }
    void slidingMatchesBruteForce() {
        QFETCH(int, tokens);
        QFETCH(int, window);
        const std::string label = "sliding:" + std::to_string(window);
        const uint64_t seed = QRandomGenerator::global()->generate64();
        auto cpu = createCpuProfilerBackend();
        ProfileRequest req = smallRequest(tokens, {"causal", label}, seed);
        req.accuracyRows = tokens;  // all rows: the brute force covers the whole head
        auto rep = runProfileWith(*cpu, req);
        QVERIFY2(rep.ok(), rep.message().c_str());
        const VariantResult* sw = find(rep->shapes[0], label);
        QVERIFY(sw && sw->error.empty());

        auto in = loadProfileInputs(req.shapes[0]);
        QVERIFY(in.ok());
        const MatrixRM q = in->headMatrix(0, 0, Which::Q), k = in->headMatrix(0, 0, Which::K),
                       v = in->headMatrix(0, 0, Which::V);
        AttentionSpec causal;
        causal.scale = in->problem.scale;
        causal.mask.causal = true;
        AttentionSpec sliding = causal;
        sliding.mask.window = window;
        const auto bc = testing::bruteAttention(q, k, causal);
        const auto bs = testing::bruteAttention(q, k, sliding);
        const MatrixRMd oc = bc.p * v.cast<double>(), os = bs.p * v.cast<double>();
        const double err = (os - oc).norm() / oc.norm();
        double inside = 0;
        for (int i = 0; i < tokens; ++i)
            for (int j = std::max(0, i - window + 1); j <= i; ++j) inside += bc.p(i, j);
        const double recall = inside / tokens;
        QVERIFY2(std::abs(sw->relError - err) < 1e-4 * std::max(1.0, err),
                 qPrintable(QString("rel error %1 vs brute %2").arg(sw->relError).arg(err)));
        QVERIFY2(std::abs(sw->recall - recall) < 1e-5,
                 qPrintable(QString("recall %1 vs brute %2").arg(sw->recall).arg(recall)));
        QVERIFY(sw->recall < 1.0);  // random data spreads mass beyond the window
    }

    void learnedSinksReachTheReferences() {
        // A trace layer with learned sinks (v2): the inputs carry each head's logit, and the
        // accuracy of sliding:W is measured against references with the sink (float64 brute
        // force: p = exp(s - L'), O = P V).
        constexpr int64_t kT = 200;
        constexpr int kWindow = 40;
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        TraceMetadata m = testfixture::smallMetadata(1, 2, 1, 32, kT);
        m.layers[0].sinks = {1.5f, 3.0f};
        const std::string path = dir.filePath(QStringLiteral("sinks.attn.safetensors")).toStdString();
        QVERIFY(
            testfixture::randomTrace(m, DType::F32, uint32_t(QRandomGenerator::global()->generate())).write(path).ok());
        auto trace = Trace::open(path);
        QVERIFY2(trace.ok(), trace.message().c_str());
        ShapeSource all;
        all.trace = *trace;
        all.layer = 0;
        all.head = -1;
        auto inAll = loadProfileInputs(all);
        QVERIFY2(inAll.ok(), inAll.message().c_str());
        QVERIFY(inAll->sinks == m.layers[0].sinks);
        ShapeSource one = all;
        one.head = 1;
        auto inOne = loadProfileInputs(one);
        QVERIFY(inOne.ok());
        QCOMPARE(inOne->sinks, std::vector<float>{3.0f});

        ProfileRequest req = smallRequest(kT, {"causal", "sliding:" + std::to_string(kWindow)}, 1);
        req.shapes = {one};
        req.accuracyRows = kT;
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, req);
        QVERIFY2(rep.ok(), rep.message().c_str());
        const VariantResult* sw = find(rep->shapes[0], "sliding:" + std::to_string(kWindow));
        QVERIFY(sw && sw->error.empty());
        const MatrixRM q = inOne->headMatrix(0, 0, Which::Q), k = inOne->headMatrix(0, 0, Which::K),
                       v = inOne->headMatrix(0, 0, Which::V);
        AttentionSpec causal;
        causal.scale = inOne->problem.scale;
        causal.mask.causal = true;
        causal.sinkLogit = 3.0f;
        AttentionSpec sliding = causal;
        sliding.mask.window = kWindow;
        const MatrixRMd oc = testing::bruteAttention(q, k, causal).p * v.cast<double>();
        const MatrixRMd os = testing::bruteAttention(q, k, sliding).p * v.cast<double>();
        const double err = (os - oc).norm() / oc.norm();
        QVERIFY2(std::abs(sw->relError - err) < 1e-4 * std::max(1.0, err),
                 qPrintable(QString("rel error %1 vs brute force with the sink %2").arg(sw->relError).arg(err)));
    }

    void fallsBackToCpuWithTheCallersReason() {
        // The caller picks the backend; without a GPU one, Auto runs on the CPU and says why.
        const std::string reason = "no usable GPU: none in this test";
        auto rep = runProfile(smallRequest(128, {"causal"}, 3), nullptr, reason);
        QVERIFY2(rep.ok(), rep.message().c_str());
        QCOMPARE(rep->backend, std::string("CPU"));
        QCOMPARE(rep->fallbackReason, reason);
        // Demanding the GPU without one is the caller's reason as an error, not a CPU run.
        ProfileRequest gpuOnly = smallRequest(128, {"causal"}, 3);
        gpuOnly.backend = BackendChoice::Gpu;
        auto refused = runProfile(gpuOnly, nullptr, reason);
        QCOMPARE(refused.status().code(), ErrorCode::Unsupported);
        QCOMPARE(refused.message(), reason);
    }

    void metricsExplainWhyMissingOnCpu() {
        ProfileRequest req = smallRequest(128, {"causal"}, 4);
        req.metrics = true;
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, req);
        QVERIFY(rep.ok());
        QVERIFY(!rep->shapes[0].variants[0].metrics.collected);
        QVERIFY(rep->metricsNote.find("CUPTI") != std::string::npos);
    }

    void badRequests_data() {
        QTest::addColumn<QString>("variant");
        QTest::addColumn<QString>("shape");
        QTest::addColumn<QString>("expect");
        QTest::newRow("unknown variant") << "bogus"
                                         << "1,1,64,16"
                                         << "bogus";
        QTest::newRow("bad shape") << "causal"
                                   << "1,1,x,16"
                                   << "shape";
        QTest::newRow("short shape") << "causal"
                                     << "1,64,16"
                                     << "B,H,T,D";
        QTest::newRow("gqa mismatch") << "causal"
                                      << "1,3,2,64,16"
                                      << "multiple";
    }
    void badRequests() {
        QFETCH(QString, variant);
        QFETCH(QString, shape);
        QFETCH(QString, expect);
        auto s = parseShape(shape.toStdString());
        if (!s) {
            QVERIFY2(s.message().find(expect.toStdString()) != std::string::npos, s.message().c_str());
            return;
        }
        ProfileRequest req;
        req.shapes = {*s};
        req.variants = {variant.toStdString()};
        auto cpu = createCpuProfilerBackend();
        auto rep = runProfileWith(*cpu, req);
        QVERIFY(!rep.ok());
        QVERIFY2(rep.message().find(expect.toStdString()) != std::string::npos, rep.message().c_str());
    }

    void cancellation() {
        auto cpu = createCpuProfilerBackend();
        auto rep =
            runProfileWith(*cpu, smallRequest(128, {"causal"}, 5), [](double, std::string_view) { return false; });
        QVERIFY(!rep.ok());
        QCOMPARE(rep.status().code(), ErrorCode::Cancelled);
    }
};

QTEST_GUILESS_MAIN(TestProfilerCpu)
#include "tst_profiler_cpu.moc"
