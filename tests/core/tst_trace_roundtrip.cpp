// Trace writer -> reader round trips: values per dtype, metadata, GQA mapping, weights-only
// traces, and the atomic write.
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <limits>

#include "attnscope/attention.h"
#include "attnscope/trace.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace testfixture;

Q_DECLARE_METATYPE(attnscope::DType)

namespace {

/// Mantissa bits and smallest normal exponent of each storage type.
struct FloatFormat {
    int mantissaBits;
    int minNormalExp;
    double maxFinite;
};

FloatFormat formatOf(DType t) {
    switch (t) {
    case DType::F16: return {10, -14, 65504.0};
    case DType::BF16: return {7, -126, 3.3895313892515355e38};
    case DType::F32: break;
    }
    return {23, -126, std::numeric_limits<float>::max()};
}

/// Half a unit in the last place of `x` in format `f` (the bound of round-to-nearest).
double halfUlp(double x, const FloatFormat& f) {
    const int e = std::max(int(std::floor(std::log2(std::fabs(x)))), f.minNormalExp);
    return std::ldexp(0.5, e - f.mantissaBits);
}

/// Values spanning many magnitudes, including subnormals of the target format and zero.
std::vector<float> wideValues(size_t n, uint32_t seed, double maxAbs) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> exponent(-30.0, std::log2(maxAbs) - 0.01);
    std::uniform_int_distribution<int> sign(0, 1);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = float((sign(rng) ? -1.0 : 1.0) * std::exp2(exponent(rng)));
    v[0] = 0.f;
    v[1] = -0.f;
    return v;
}

}  // namespace

class TestTraceRoundtrip : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;
    std::string file(const char* name) const { return m_dir.filePath(name).toStdString(); }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void valuesPerDtype_data() {
        QTest::addColumn<DType>("dtype");
        QTest::newRow("F32") << DType::F32;
        QTest::newRow("F16") << DType::F16;
        QTest::newRow("BF16") << DType::BF16;
    }
    void valuesPerDtype() {
        QFETCH(DType, dtype);
        const FloatFormat f = formatOf(dtype);
        const int heads = 4, kv = 2, d = 16;
        const int64_t T = 37;
        TraceMetadata m = smallMetadata(2, heads, kv, d, T);
        TraceWriter w(m);
        std::vector<std::vector<float>> stored;  // what went in, per tensor, in insertion order
        uint32_t seed = 100;
        for (int l = 0; l < 2; ++l)
            for (auto [slot, h] : {std::pair{"q", heads}, std::pair{"k", kv}, std::pair{"v", kv}}) {
                stored.push_back(wideValues(size_t(h * T * d), seed++, std::min(f.maxFinite, 1e30)));
                w.addTensor("layers." + std::to_string(l) + "." + slot, dtype, {h, T, d}, stored.back());
            }
        const std::string path = file("values.attn.safetensors");
        QVERIFY(w.write(path).ok());

        auto trace = Trace::open(path, OpenOptions{.scanValues = true});
        QVERIFY2(trace.ok(), trace.message().c_str());
        const Trace& t = **trace;
        QCOMPARE(t.dtype(), dtype);
        QCOMPARE(t.tokens(), T);
        QCOMPARE(t.numLayers(), 2);
        QVERIFY(t.hasQK());
        QVERIFY(t.nonFinite().empty());

        size_t tensorIndex = 0;
        for (int l = 0; l < 2; ++l)
            for (Which which : {Which::Q, Which::K, Which::V}) {
                const std::vector<float>& in = stored[tensorIndex++];
                const int nh = which == Which::Q ? heads : kv;
                for (int h = 0; h < nh; ++h) {
                    // head() takes the query head; kv head h is used by query head h * heads/kv.
                    const int queryHead = which == Which::Q ? h : h * (heads / kv);
                    auto hm = t.head(l, queryHead, which);
                    QVERIFY2(hm.ok(), hm.message().c_str());
                    QCOMPARE(hm->m.rows(), T);
                    QCOMPARE(hm->m.cols(), int64_t(d));
                    QCOMPARE(hm->nonFinite, int64_t(0));
                    for (int64_t i = 0; i < T * d; ++i) {
                        const double x = in[size_t(h * T * d + i)];
                        const double y = hm->m.data()[i];
                        if (dtype == DType::F32) {
                            QVERIFY2(y == x,
                                     qPrintable(QString("element %1: %2 != %3").arg(i).arg(y).arg(x)));  // exact
                        } else if (x == 0) {
                            QCOMPARE(y, 0.0);
                        } else if (!(std::fabs(y - x) <= halfUlp(x, f))) {
                            QFAIL(qPrintable(
                                QString("layer %1 head %2 element %3: stored %4 read %5, error %6 > half ulp %7")
                                    .arg(l)
                                    .arg(h)
                                    .arg(i)
                                    .arg(x, 0, 'g', 17)
                                    .arg(y, 0, 'g', 17)
                                    .arg(std::fabs(y - x))
                                    .arg(halfUlp(x, f))));
                        }
                    }
                }
            }
        // TensorView::at agrees with head().
        const TensorView& k1 = t.layer(1).k;
        auto hk = t.head(1, heads - 1, Which::K);
        QVERIFY(hk.ok());
        QCOMPARE(k1.numel(), int64_t(kv * T * d));
        QVERIFY(k1.at((kv - 1) * T * d + 5) == hk->m.data()[5]);
    }

    void roundingIsNearestEven_data() {
        QTest::addColumn<DType>("dtype");
        QTest::addColumn<float>("input");
        QTest::addColumn<float>("expected");
        const float inf = std::numeric_limits<float>::infinity();
        QTest::newRow("f16 tie down to even") << DType::F16 << 1.0f + std::ldexp(1.f, -11) << 1.0f;
        QTest::newRow("f16 tie up to even")
            << DType::F16 << 1.0f + 3 * std::ldexp(1.f, -11) << 1.0f + std::ldexp(1.f, -9);
        QTest::newRow("f16 above tie") << DType::F16 << 1.0f + std::ldexp(1.f, -11) + std::ldexp(1.f, -20)
                                       << 1.0f + std::ldexp(1.f, -10);
        QTest::newRow("f16 max") << DType::F16 << 65504.f << 65504.f;
        QTest::newRow("f16 below overflow tie") << DType::F16 << 65519.f << 65504.f;
        QTest::newRow("f16 overflow tie to inf") << DType::F16 << 65520.f << inf;
        QTest::newRow("f16 huge") << DType::F16 << -1e10f << -inf;
        QTest::newRow("f16 smallest subnormal") << DType::F16 << std::ldexp(1.f, -24) << std::ldexp(1.f, -24);
        QTest::newRow("f16 half subnormal tie to zero") << DType::F16 << std::ldexp(1.f, -25) << 0.f;
        QTest::newRow("f16 1.5 subnormal tie to 2") << DType::F16 << 3 * std::ldexp(1.f, -25) << std::ldexp(1.f, -23);
        QTest::newRow("f16 subnormal to normal carry")
            << DType::F16 << std::ldexp(1.f, -14) - std::ldexp(1.f, -26) << std::ldexp(1.f, -14);
        QTest::newRow("f16 inf") << DType::F16 << inf << inf;
        QTest::newRow("bf16 tie down to even") << DType::BF16 << 1.0f + std::ldexp(1.f, -8) << 1.0f;
        QTest::newRow("bf16 tie up to even")
            << DType::BF16 << 1.0f + 3 * std::ldexp(1.f, -8) << 1.0f + std::ldexp(1.f, -6);
        QTest::newRow("bf16 overflow") << DType::BF16 << std::numeric_limits<float>::max() << inf;
        QTest::newRow("bf16 -inf") << DType::BF16 << -inf << -inf;
    }
    void roundingIsNearestEven() {
        QFETCH(DType, dtype);
        QFETCH(float, input);
        QFETCH(float, expected);
        TraceMetadata m = smallMetadata(1, 1, 1, 1, 1);
        TraceWriter w(m);
        for (const char* s : {"layers.0.q", "layers.0.k", "layers.0.v"}) w.addTensor(s, dtype, {1, 1, 1}, {input});
        const std::string path = file("rounding.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY2(t.ok(), t.message().c_str());
        const float got = (*t)->layer(0).q.at(0);
        QVERIFY2(got == expected && std::signbit(got) == std::signbit(expected),
                 qPrintable(QString("read %1, expected %2").arg(got, 0, 'g', 9).arg(expected, 0, 'g', 9)));
    }

    void nanSurvivesConversion_data() { valuesPerDtype_data(); }
    void nanSurvivesConversion() {
        QFETCH(DType, dtype);
        TraceMetadata m = smallMetadata(1, 1, 1, 2, 2);
        TraceWriter w(m);
        const float nan = std::numeric_limits<float>::quiet_NaN();
        w.addTensor("layers.0.q", dtype, {1, 2, 2}, {nan, 1.f, -std::numeric_limits<float>::infinity(), 2.f});
        w.addTensor("layers.0.k", dtype, {1, 2, 2}, {1.f, 1.f, 1.f, 1.f});
        w.addTensor("layers.0.v", dtype, {1, 2, 2}, {1.f, 1.f, 1.f, 1.f});
        const std::string path = file("nan.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY(t.ok());
        auto q = (*t)->head(0, 0, Which::Q);
        QVERIFY(q.ok());
        QVERIFY(std::isnan(q->m(0, 0)));
        QVERIFY(std::isinf(q->m(1, 0)) && q->m(1, 0) < 0);
        QCOMPARE(q->nonFinite, int64_t(2));
    }

    void metadataRoundTrip() {
        TraceMetadata m = smallMetadata(3, 4, 1, 8, 5);
        m.model = "Qwen/Qwen2.5-0.5B \"quoted\"";
        m.source = "attnscope_capture 0.1 (transformers 4.46)";
        m.kind = TraceKind::Vision;
        m.patchRows = 2;
        m.patchCols = 2;
        m.text = "Line one\nline two\twith tab — and “quotes” 中文 😀";
        m.tokens = {"<|begin|>", "▁Hello", "Ġwörld", "\n", "😀\"\\"};
        m.tokenIds = {151643, 9707, -1, 0, 9007199254740991};
        m.documents = {0, 0, 1, 1, 2};
        m.extraJson = R"({"prompt_id":7,"nested":{"a":[1,2.5,"x"]}})";
        m.layers[0].scale = 0.125;
        m.layers[1].scale = 1.0 / 3.0;  // not exactly representable: must survive bit-exactly
        m.layers[1].causal = false;
        m.layers[1].slidingWindow = 4096;
        m.layers[1].softcap = 50.0;
        m.layers[2].alibi = true;
        m.layers[2].positional = "alibi";
        m.layers[0].positional = "rope-applied";
        m.layers[1].positional = "learned";
        TraceWriter w = randomTrace(m, DType::BF16);
        const std::string path = file("meta.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY2(t.ok(), t.message().c_str());
        const TraceMetadata& r = (*t)->metadata();
        QCOMPARE(r.format, std::string("attnscope.trace"));
        QCOMPARE(r.version, 1);
        QCOMPARE(r.model, m.model);
        QCOMPARE(r.source, m.source);
        QCOMPARE(r.kind, TraceKind::Vision);
        QCOMPARE(r.patchRows, 2);
        QCOMPARE(r.patchCols, 2);
        QCOMPARE(r.text, m.text);
        QCOMPARE(r.tokens, m.tokens);
        QCOMPARE(r.tokenIds, m.tokenIds);
        QCOMPARE(r.documents, m.documents);
        QCOMPARE(r.extraJson, m.extraJson);
        QCOMPARE(r.layers.size(), m.layers.size());
        for (size_t i = 0; i < m.layers.size(); ++i) {
            const LayerConfig &a = m.layers[i], &b = r.layers[i];
            QCOMPARE(b.heads, a.heads);
            QCOMPARE(b.kvHeads, a.kvHeads);
            QCOMPARE(b.headDim, a.headDim);
            QVERIFY(b.scale == a.scale);  // bit-exact, not fuzzy
            QCOMPARE(b.causal, a.causal);
            QCOMPARE(b.slidingWindow, a.slidingWindow);
            QCOMPARE(b.softcap, a.softcap);
            QCOMPARE(b.alibi, a.alibi);
            QCOMPARE(b.positional, a.positional);
        }
        QVERIFY((*t)->warnings().empty());
    }

    void learnedSinksRoundTrip() {
        // v2: layers with sinks get layers.N.sinks [heads] F32; the file says version 2, the
        // values come back bit-exactly, layers without sinks stay without.
        TraceMetadata m = smallMetadata(2, 4, 2, 8, 5);
        m.layers[1].sinks = {0.25f, -1.5f, 3.0f / 7.0f, 12.0f};
        m.captureCheck = {true, "mismatch", 0.0123, "probabilities", 1e-4, 1, 5};
        TraceWriter w = randomTrace(m, DType::F16);
        const std::string path = file("sinks.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY2(t.ok(), t.message().c_str());
        const TraceMetadata& r = (*t)->metadata();
        QCOMPARE(r.version, 2);
        QVERIFY(!r.layers[0].hasSinks());
        QVERIFY(!(*t)->layer(0).sinks.has_value());
        QVERIFY(r.layers[1].hasSinks());
        QVERIFY(r.layers[1].sinks == m.layers[1].sinks);  // bit-exact
        QVERIFY((*t)->layer(1).sinks.has_value());
        QCOMPARE((*t)->layer(1).sinks->dtype, DType::F32);
        QVERIFY((*t)->warnings().empty());
        // The capture check comes back as written.
        const CaptureCheck& c = r.captureCheck;
        QVERIFY(c.present);
        QCOMPARE(c.status, std::string("mismatch"));
        QCOMPARE(c.maxAbsDelta, 0.0123);
        QCOMPARE(c.compared, std::string("probabilities"));
        QCOMPARE(c.tolerance, 1e-4);
        QCOMPARE(c.worstLayer, 1);
        QCOMPARE(c.rowsChecked, int64_t(5));
        QVERIFY(!c.passed());
        // The sink logits reach the spec of each head; a head of a layer without sinks has none.
        QCOMPARE(specForLayer(r.layers[1], 2).sinkLogit, 3.0f / 7.0f);
        QVERIFY(!specForLayer(r.layers[0], 2).hasSink());
    }

    void alibiSlopesRoundTrip() {
        // v2: a layer's own ALiBi slopes (Falcon's standard slopes times 1/sqrt(d), BLOOM's for 6
        // heads) come back bit-exactly and reach each head's spec; an ALiBi layer without them keeps
        // the standard 2^(-8(h+1)/H), and a file with no own slopes stays v1 (versionOneStaysVersionOne).
        TraceMetadata m = smallMetadata(2, 4, 1, 8, 5);
        for (LayerConfig& c : m.layers) c.alibi = true, c.positional = "alibi";
        m.layers[1].alibiSlopes = {0.5f / std::sqrt(8.0f), 0.25f / 3.0f, 1e-3f, 0.0f};
        TraceWriter w = randomTrace(m, DType::F32);
        const std::string path = file("alibi-slopes.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY2(t.ok(), t.message().c_str());
        const TraceMetadata& r = (*t)->metadata();
        QCOMPARE(r.version, 2);
        QVERIFY(r.layers[0].alibiSlopes.empty());
        QVERIFY(r.layers[1].alibiSlopes == m.layers[1].alibiSlopes);  // bit-exact
        QVERIFY((*t)->warnings().empty());
        for (int h = 0; h < 4; ++h) {
            QCOMPARE(specForLayer(r.layers[0], h).alibiSlope, alibiSlope(h, 4));
            QCOMPARE(specForLayer(r.layers[1], h).alibiSlope, m.layers[1].alibiSlopes[size_t(h)]);
        }
        // Written back by layerConfigJson (info --json and the writer) under the format's key.
        const Json back = layerConfigJson(r.layers[1]);
        QVERIFY(back.find("alibi_slopes") && back.find("alibi_slopes")->asArray().size() == 4);
        QVERIFY(!layerConfigJson(r.layers[0]).find("alibi_slopes"));
    }

    void versionOneStaysVersionOne() {
        // A trace without v2 content is written as v1, which every earlier reader opens.
        TraceMetadata m = smallMetadata(1, 2, 2, 4, 3);
        TraceWriter w = randomTrace(m, DType::F32);
        const std::string path = file("v1.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY2(t.ok(), t.message().c_str());
        QCOMPARE((*t)->metadata().version, 1);
        QVERIFY(!(*t)->metadata().captureCheck.present);
        QVERIFY((*t)->metadata().captureCheck.passed());
    }

    void safetensorsLayout() {
        TraceMetadata m = smallMetadata(1, 2, 2, 3, 3);  // odd sizes: F16 tensors of 18 elements
        TraceWriter w = randomTrace(m, DType::F16);
        const std::vector<std::byte> bytes = w.serialize();
        uint64_t n = 0;
        for (int i = 0; i < 8; ++i) n |= uint64_t(std::to_integer<uint8_t>(bytes[size_t(i)])) << (8 * i);
        QCOMPARE((8 + n) % 8, uint64_t(0));  // data section aligned
        const FileImage img = splitImage(bytes);
        QVERIFY(img.header.find("__metadata__")->isObject());
        for (const auto& [k, v] : img.header.find("__metadata__")->asObject()) QVERIFY2(v.isString(), k.c_str());
        // Tensors are contiguous, in insertion order.
        uint64_t expect = 0;
        for (const char* name : {"layers.0.q", "layers.0.k", "layers.0.v"}) {
            const Json* e = img.header.find(name);
            QVERIFY(e);
            QCOMPARE(e->find("dtype")->asString(), std::string("F16"));
            QCOMPARE(e->find("data_offsets")->asArray()[0].asNumber(), double(expect));
            expect += 2 * 2 * 3 * 3;
            QCOMPARE(e->find("data_offsets")->asArray()[1].asNumber(), double(expect));
        }
        QCOMPARE(uint64_t(img.data.size()), expect);
    }

    void gqaMapping() {
        TraceMetadata m = smallMetadata(1, 6, 2, 4, 3);
        const std::string path = file("gqa.attn.safetensors");
        QVERIFY(randomTrace(m, DType::F32, 7).write(path).ok());
        auto t = Trace::open(path);
        QVERIFY(t.ok());
        for (int h = 0; h < 6; ++h) {
            const int kvHead = h / 3;
            auto k = (*t)->head(0, h, Which::K);
            auto v = (*t)->head(0, h, Which::V);
            QVERIFY(k.ok() && v.ok());
            for (int64_t i = 0; i < 12; ++i) {
                QVERIFY(k->m.data()[i] == (*t)->layer(0).k.at(kvHead * 12 + i));
                QVERIFY(v->m.data()[i] == (*t)->layer(0).v.at(kvHead * 12 + i));
            }
        }
        // Out-of-range layer/head are refused with the range.
        auto bad = (*t)->head(0, 6, Which::Q);
        QVERIFY(!bad.ok());
        QCOMPARE(bad.status().code(), ErrorCode::InvalidArgument);
        QVERIFY(bad.message().find("has 6 heads") != std::string::npos);
        QCOMPARE((*t)->head(1, 0, Which::Q).status().code(), ErrorCode::InvalidArgument);
        QCOMPARE((*t)->head(-1, 0, Which::Q).status().code(), ErrorCode::InvalidArgument);
    }

    void weightsOnlyTrace() {
        const int heads = 2;
        const int64_t T = 4;
        TraceMetadata m = smallMetadata(2, heads, heads, 8, T);
        TraceWriter w(m);
        std::vector<float> attn(size_t(heads * T * T));
        for (size_t i = 0; i < attn.size(); ++i) attn[i] = float(i) / float(attn.size());
        w.addTensor("layers.0.attn", DType::F32, {heads, T, T}, attn);
        w.addTensor("layers.1.attn", DType::F16, {heads, T, T}, attn);
        w.addTensor("layers.1.out", DType::F32, {heads, T, 8}, randomValues(size_t(heads * T * 8), 3));
        const std::string path = file("weights.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path, OpenOptions{.scanValues = true});
        QVERIFY2(t.ok(), t.message().c_str());
        QVERIFY(!(*t)->hasQK());
        QCOMPARE((*t)->dtype(), DType::F32);
        QVERIFY((*t)->layer(1).out.has_value());
        QVERIFY(!(*t)->layer(0).out.has_value());
        auto rows = (*t)->storedAttention(0, 1, 1, 3);
        QVERIFY2(rows.ok(), rows.message().c_str());
        QCOMPARE(rows->rows(), int64_t(2));
        QCOMPARE(rows->cols(), T);
        for (int64_t r = 0; r < 2; ++r)
            for (int64_t c = 0; c < T; ++c) QVERIFY((*rows)(r, c) == attn[size_t((1 * T + 1 + r) * T + c)]);
        auto q = (*t)->head(0, 0, Which::Q);
        QVERIFY(!q.ok());
        QCOMPARE(q.status().code(), ErrorCode::Unsupported);
        QVERIFY(q.message().find("weights-only") != std::string::npos);
        QCOMPARE((*t)->storedAttention(0, 0, 3, 5).status().code(), ErrorCode::InvalidArgument);
    }

    void storedAttentionAbsent() {
        const std::string path = file("noattn.attn.safetensors");
        QVERIFY(randomTrace(smallMetadata(1, 1, 1, 2, 2), DType::F32).write(path).ok());
        auto t = Trace::open(path);
        QVERIFY(t.ok());
        auto a = (*t)->storedAttention(0, 0, 0, 1);
        QCOMPARE(a.status().code(), ErrorCode::Unsupported);
        QVERIFY(a.message().find("layers.0.attn") != std::string::npos);
    }

    void atomicWriteReplacesAndLeavesNoTemporaries() {
        QTemporaryDir dir;
        const std::string path = dir.filePath("out.txt").toStdString();
        QVERIFY(writeFileAtomic(path, std::string("first")).ok());
        QVERIFY(writeFileAtomic(path, std::string("second")).ok());
        QFile f(QString::fromStdString(path));
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll(), QByteArray("second"));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files | QDir::Hidden).size(), 1);

        const std::string missing = dir.filePath("no/such/dir/out.txt").toStdString();
        Status st = writeFileAtomic(missing, std::string("x"));
        QCOMPARE(st.code(), ErrorCode::IoError);
        QVERIFY(st.message().find(missing) != std::string::npos);
    }

    void scanIsOptIn() {
        // Without scanValues the data section is not read at open, so NaNs are not counted.
        TraceMetadata m = smallMetadata(1, 1, 1, 4, 4);
        TraceWriter w(m);
        std::vector<float> nans(16, std::numeric_limits<float>::quiet_NaN());
        for (const char* s : {"layers.0.q", "layers.0.k", "layers.0.v"}) w.addTensor(s, DType::F32, {1, 4, 4}, nans);
        const std::string path = file("lazy.attn.safetensors");
        QVERIFY(w.write(path).ok());
        auto t = Trace::open(path);
        QVERIFY(t.ok());
        QVERIFY((*t)->nonFinite().empty());
        QCOMPARE((*t)->fileSize(), uint64_t(QFileInfo(QString::fromStdString(path)).size()));
    }
};

QTEST_GUILESS_MAIN(TestTraceRoundtrip)
#include "tst_trace_roundtrip.moc"
