// Reference attention and pass 1 (row logsumexp) against a float64 brute force over the dense
// T×T matrix, on fresh random inputs (seed printed on failure), over shapes × masks × offsets.
// Tolerance: 1e-6 relative (‖O − Oref‖/‖Oref‖, max |lse − ref| / max(1, |ref|)).
#include <QtTest>

#include <QTemporaryDir>

#include "attnscope/attention.h"
#include "attnscope/trace.h"
#include "brute_attention.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace attnscope::testing;

namespace {
constexpr double kTolerance = 1e-6;

/// Worst lse error relative to max(1, |ref|); -inf must match exactly.
double lseError(const std::vector<float>& got, const std::vector<double>& ref, size_t refOffset = 0) {
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const double r = ref[i + refOffset], g = got[i];
        if (std::isinf(r) || std::isinf(g)) {
            if (r != g) return std::numeric_limits<double>::infinity();
            continue;
        }
        worst = std::max(worst, std::abs(g - r) / std::max(1.0, std::abs(r)));
    }
    return worst;
}
}  // namespace

class TestAttention : public QObject {
    Q_OBJECT
private slots:
    void referenceMatchesBruteForce_data();
    void referenceMatchesBruteForce();
    void rowLogSumExpMatches_data() { referenceMatchesBruteForce_data(); }
    void rowLogSumExpMatches();
    void gqaHeadsOfATrace_data();
    void gqaHeadsOfATrace();
    void emptyRowsGiveZero();
    void sinkRescalesAnOutputWithout_data();
    void sinkRescalesAnOutputWithout();
    void maskSemantics();
    void specForLayerUsesLayerSettings();
    void badInputIsRefused();
    void cancellation();
};

void TestAttention::referenceMatchesBruteForce_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<int>("queries");  // < tokens: decode-style qOffset = tokens - queries
    const int dims[] = {16, 64, 128};
    int n = 0;
    for (const auto& kind : specKinds())
        for (int t : {1, 7, 128, 300, 1000}) {
            const int d = dims[n++ % 3];
            QTest::addRow("%s T=%d d=%d", kind.c_str(), t, d) << QString::fromStdString(kind) << t << d << t;
        }
    for (int d : dims) QTest::addRow("causal T=513 d=%d", d) << "causal" << 513 << d << 513;
    for (const char* kind : {"causal", "window", "documents", "alibi", "combo"})
        for (int tq : {1, 37}) QTest::addRow("decode %s Tq=%d", kind, tq) << kind << 700 << 64 << tq;
}

void TestAttention::referenceMatchesBruteForce() {
    QFETCH(QString, kind);
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, queries);
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    const AttentionSpec spec = makeSpec(kind.toStdString(), tokens, dim, rng);
    const MatrixRM q = randomMatrix(rng, queries, dim), k = randomMatrix(rng, tokens, dim);
    const MatrixRM v = randomMatrix(rng, tokens, dim);
    const int64_t offset = tokens - queries;
    auto r = referenceAttention(q, k, v, spec, {}, offset);
    QVERIFY2(r.ok(), r.message().c_str());
    const BruteAttention ref = bruteAttention(q, k, spec, offset);
    const MatrixRMd oRef = ref.p * v.cast<double>();
    const double oErr = relativeError(r->out.cast<double>(), oRef);
    const double lErr = lseError(r->lse, ref.lse);
    const QByteArray msg = QString("seed %1: O error %2, lse error %3").arg(seed).arg(oErr).arg(lErr).toUtf8();
    QVERIFY2(oErr <= kTolerance, msg.constData());
    QVERIFY2(lErr <= kTolerance, msg.constData());
}

void TestAttention::rowLogSumExpMatches() {
    QFETCH(QString, kind);
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, queries);
    if (queries != tokens) QSKIP("rowLogSumExp has no query offset");
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    const AttentionSpec spec = makeSpec(kind.toStdString(), tokens, dim, rng);
    const MatrixRM q = randomMatrix(rng, tokens, dim), k = randomMatrix(rng, tokens, dim);
    const int64_t q0 = std::uniform_int_distribution<int64_t>(0, tokens - 1)(rng);
    const int64_t q1 = std::uniform_int_distribution<int64_t>(q0 + 1, tokens)(rng);
    auto lse = rowLogSumExp(q, k, spec, q0, q1);
    QVERIFY2(lse.ok(), lse.message().c_str());
    QCOMPARE(int64_t(lse->size()), q1 - q0);
    const BruteAttention ref = bruteAttention(q, k, spec);
    const double err = lseError(*lse, ref.lse, size_t(q0));
    QVERIFY2(err <= kTolerance,
             QString("seed %1 rows [%2,%3): lse error %4").arg(seed).arg(q0).arg(q1).arg(err).toUtf8());
}

void TestAttention::gqaHeadsOfATrace_data() {
    QTest::addColumn<int>("heads");
    QTest::addColumn<int>("kvHeads");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<bool>("alibi");
    QTest::newRow("MHA 2/2 T=130") << 2 << 2 << 130 << false;
    QTest::newRow("GQA 4/2 T=257") << 4 << 2 << 257 << false;
    QTest::newRow("GQA 8/2 T=200 alibi window") << 8 << 2 << 200 << true;
    QTest::newRow("MQA 3/1 T=64") << 3 << 1 << 64 << false;
}

void TestAttention::gqaHeadsOfATrace() {
    // Heads of a written-and-read trace with the layer's native settings (specForLayer): query head
    // h uses kv head h / (heads / kvHeads).
    QFETCH(int, heads);
    QFETCH(int, kvHeads);
    QFETCH(int, tokens);
    QFETCH(bool, alibi);
    const int d = 32;
    TraceMetadata meta = testfixture::smallMetadata(1, heads, kvHeads, d, tokens);
    meta.layers[0].alibi = alibi;
    meta.layers[0].slidingWindow = alibi ? tokens / 3 : 0;
    const uint32_t seed = uint32_t(freshSeed());
    QTemporaryDir dir;
    const std::string path = dir.filePath("gqa.attn.safetensors").toStdString();
    QVERIFY(testfixture::randomTrace(meta, DType::F32, seed).write(path).ok());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    const int group = heads / kvHeads;
    for (int h = 0; h < heads; ++h) {
        auto q = (*trace)->head(0, h, Which::Q), k = (*trace)->head(0, h, Which::K), v = (*trace)->head(0, h, Which::V);
        QVERIFY(q.ok() && k.ok() && v.ok());
        auto kvFirst = (*trace)->head(0, (h / group) * group, Which::K);  // first query head of the group
        QVERIFY(kvFirst.ok());
        QCOMPARE(k->m, kvFirst->m);
        if (h >= group) {  // another group: another kv head
            auto k0 = (*trace)->head(0, 0, Which::K);
            QVERIFY(k0.ok() && k0->m != k->m);
        }
        const AttentionSpec spec = specForLayer((*trace)->config(0), h);
        auto r = referenceAttention(q->m, k->m, v->m, spec);
        QVERIFY2(r.ok(), r.message().c_str());
        const BruteAttention ref = bruteAttention(q->m, k->m, spec);
        const double err = relativeError(r->out.cast<double>(), ref.p * v->m.cast<double>());
        QVERIFY2(err <= kTolerance, QString("seed %1 head %2: O error %3").arg(seed).arg(h).arg(err).toUtf8());
    }
}

void TestAttention::emptyRowsGiveZero() {
    std::mt19937_64 rng(freshSeed());
    const MatrixRM q = randomMatrix(rng, 50, 16), k = randomMatrix(rng, 50, 16), v = randomMatrix(rng, 50, 16);
    AttentionSpec spec;
    spec.mask.causal = true;
    for (int64_t key = 0; key < 20; ++key) spec.mask.excludedKeys.push_back(key);  // rows 0..19 see nothing
    auto r = referenceAttention(q, k, v, spec);
    QVERIFY(r.ok());
    for (int i = 0; i < 20; ++i) {
        QVERIFY(std::isinf(r->lse[size_t(i)]) && r->lse[size_t(i)] < 0);
        QCOMPARE(r->out.row(i).cwiseAbs().maxCoeff(), 0.0f);
    }
    for (int i = 20; i < 50; ++i) QVERIFY(std::isfinite(r->lse[size_t(i)]));
}

void TestAttention::sinkRescalesAnOutputWithout_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<int>("tokens");
    for (const char* kind : {"causal", "window", "none", "excluded"})
        for (int t : {1, 130, 700}) QTest::addRow("%s T=%d", kind, t) << kind << t;
}

void TestAttention::sinkRescalesAnOutputWithout() {
    // What the profiler does with a GPU forward kernel's O and L (no sink): O' = O·exp(L − L'),
    // L' = foldSinkIntoLse(L, sink), must equal the reference computed with the sink.
    QFETCH(QString, kind);
    QFETCH(int, tokens);
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    AttentionSpec spec = makeSpec(kind.toStdString(), tokens, 32, rng);
    const MatrixRM q = randomMatrix(rng, tokens, 32), k = randomMatrix(rng, tokens, 32),
                   v = randomMatrix(rng, tokens, 32);
    auto plain = referenceAttention(q, k, v, spec);
    QVERIFY2(plain.ok(), plain.message().c_str());
    spec.sinkLogit = std::uniform_real_distribution<float>(-2.0f, 4.0f)(rng);
    auto withSink = referenceAttention(q, k, v, spec);
    QVERIFY2(withSink.ok(), withSink.message().c_str());
    MatrixRM rescaled = plain->out;
    applySinkToOutput(rescaled, plain->lse.data(), spec.sinkLogit);
    const double err = relativeError(rescaled.cast<double>(), withSink->out.cast<double>());
    QVERIFY2(err <= kTolerance, QString("seed %1: O error %2").arg(seed).arg(err).toUtf8());
    for (size_t i = 0; i < plain->lse.size(); ++i) {
        const float folded = foldSinkIntoLse(plain->lse[i], spec.sinkLogit);
        QVERIFY2(std::abs(folded - withSink->lse[i]) <= kTolerance * std::max(1.0f, std::abs(folded)),
                 qPrintable(QString("seed %1 row %2: %3 vs %4").arg(seed).arg(i).arg(folded).arg(withSink->lse[i])));
    }
    // A sink only takes mass: exp(sink − L') in (0, 1] and a smaller output where the keys' share shrank.
    for (float l : withSink->lse) {
        const double share = sinkShareOfRow(l, spec.sinkLogit);
        QVERIFY(share > 0.0 && share <= 1.0 + 1e-6);
    }
    QCOMPARE(sinkShareOfRow(1.0f, -std::numeric_limits<float>::infinity()), 0.0);
    QCOMPARE(foldSinkIntoLse(-std::numeric_limits<float>::infinity(), 2.5f), 2.5f);
}

void TestAttention::maskSemantics() {
    MaskSpec m;
    m.causal = true;
    QVERIFY(m.allows(5, 5) && m.allows(5, 0) && !m.allows(5, 6));
    m.window = 3;
    QVERIFY(m.allows(5, 3) && !m.allows(5, 2));
    m.prefix = 2;  // prefix keys are visible to every query, even past the window and causal
    QVERIFY(m.allows(5, 1) && m.allows(0, 1) && !m.allows(5, 2));
    MaskSpec d;
    d.causal = true;
    d.dilation = 2;
    QVERIFY(d.allows(6, 4) && !d.allows(6, 5) && d.allows(6, 6));
    MaskSpec bidir;
    bidir.window = 2;
    QVERIFY(bidir.allows(3, 4) && !bidir.allows(3, 5) && bidir.allows(3, 2) && !bidir.allows(3, 1));
    MaskSpec docs;
    docs.documents = {0, 0, 1, 1};
    QVERIFY(docs.allows(1, 0) && !docs.allows(2, 1) && !docs.allows(9, 0));
    MaskSpec blocks;
    blocks.blockSize = 2;
    blocks.blockCols = 2;
    blocks.blocks = std::make_shared<std::vector<uint8_t>>(std::vector<uint8_t>{1, 0, 0, 1});
    QVERIFY(blocks.allows(1, 1) && !blocks.allows(1, 2) && blocks.allows(3, 2) && !blocks.allows(3, 0));
    MaskSpec ex;
    ex.excludedKeys = {0, 3};
    QVERIFY(!ex.allows(5, 0) && ex.allows(5, 1) && !ex.allows(5, 3));
}

void TestAttention::specForLayerUsesLayerSettings() {
    LayerConfig layer;
    layer.heads = 8;
    layer.kvHeads = 2;
    layer.headDim = 64;
    layer.scale = 0;  // unknown: 1/sqrt(d)
    layer.causal = true;
    layer.slidingWindow = 100;
    layer.softcap = 30;
    layer.alibi = true;
    const AttentionSpec s = specForLayer(layer, 3);
    QCOMPARE(s.scale, 0.125f);
    QVERIFY(s.mask.causal);
    QCOMPARE(s.mask.window, int64_t(100));
    QCOMPARE(s.softcap, 30.0f);
    QCOMPARE(s.alibiSlope, std::exp2(-8.0f * 4 / 8));
    QCOMPARE(alibiSlope(0, 8), 0.5f);
    QCOMPARE(alibiSlope(7, 8), 1.0f / 256);
    QCOMPARE(s.score(2.0f, 10, 4), 30.0f * std::tanh(0.25f / 30.0f) + s.alibiSlope * -6.0f);
}

void TestAttention::badInputIsRefused() {
    std::mt19937_64 rng(1);
    const MatrixRM q = randomMatrix(rng, 10, 8), k = randomMatrix(rng, 10, 8), v = randomMatrix(rng, 10, 8);
    const MatrixRM k4 = randomMatrix(rng, 10, 4), v9 = randomMatrix(rng, 9, 8);
    AttentionSpec spec;
    QCOMPARE(referenceAttention(q, k4, v, spec).status().code(), ErrorCode::Shape);
    QCOMPARE(referenceAttention(q, k, v9, spec).status().code(), ErrorCode::Shape);
    QCOMPARE(rowLogSumExp(q, k, spec, 3, 11).status().code(), ErrorCode::InvalidArgument);
    AttentionSpec docs = spec;
    docs.mask.documents = {0, 0, 1};
    QCOMPARE(referenceAttention(q, k, v, docs).status().code(), ErrorCode::Shape);
    AttentionSpec unsorted = spec;
    unsorted.mask.excludedKeys = {3, 1};
    QCOMPARE(rowLogSumExp(q, k, unsorted, 0, 10).status().code(), ErrorCode::InvalidArgument);
    AttentionSpec blocks = spec;
    blocks.mask.blocks = std::make_shared<std::vector<uint8_t>>(2, 1);
    blocks.mask.blockSize = 4;
    blocks.mask.blockCols = 3;
    auto r = referenceAttention(q, k, v, blocks);
    QCOMPARE(r.status().code(), ErrorCode::Shape);
    QVERIFY(r.message().find("block mask") != std::string::npos);
    AttentionSpec dil = spec;
    dil.mask.dilation = 0;
    QCOMPARE(referenceAttention(q, k, v, dil).status().code(), ErrorCode::InvalidArgument);
}

void TestAttention::cancellation() {
    std::mt19937_64 rng(2);
    const MatrixRM q = randomMatrix(rng, 1024, 16), k = randomMatrix(rng, 1024, 16), v = randomMatrix(rng, 1024, 16);
    int calls = 0;
    auto r = referenceAttention(q, k, v, AttentionSpec{}, [&](double, std::string_view) { return ++calls < 2; });
    QCOMPARE(r.status().code(), ErrorCode::Cancelled);
    auto l = rowLogSumExp(q, k, AttentionSpec{}, 0, 1024, [](double, std::string_view) { return false; });
    QCOMPARE(l.status().code(), ErrorCode::Cancelled);
}

QTEST_GUILESS_MAIN(TestAttention)
#include "tst_attention.moc"
