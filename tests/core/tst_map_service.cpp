// The map service (map_service.h) against a float64 brute force over the dense matrix, on traces
// written with fresh random Q/K: whole maps and random rectangles and sizes on several shapes,
// sink exclusion, the lse cached by an overview and reused by a zoom, row-sampled previews,
// weights-only traces pooled from their stored probabilities, and every refusal.
// Tolerance: probabilityError <= 1e-6 (as tst_attention_map; float32 trace values are exact).
#include <QtTest>

#include <QTemporaryDir>

#include "attnscope/analysis_limits.h"
#include "attnscope/map_service.h"
#include "brute_attention.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace attnscope::testing;
using namespace testfixture;

namespace {
constexpr double kTolerance = 1e-6;

/// Q/K of one head as stored (float32 trace: exact).
struct HeadQK {
    MatrixRM q, k;
    AttentionSpec spec;
};

HeadQK loadHead(const Trace& t, int layer, int head) {
    HeadQK h;
    h.q = t.head(layer, head, Which::Q)->m;
    h.k = t.head(layer, head, Which::K)->m;
    h.spec = specForLayer(t.config(layer), head);
    return h;
}

/// Mean/max/allowed of `map` against the brute-force pooling of `p` under `spec`'s mask.
QByteArray compare(const AttentionMap& map, const BruteAttention& b, const AttentionSpec& spec, MapRect rect, int w,
                   int h, bool* ok) {
    const BruteMap ref = bruteMap(b, spec, rect, w, h);
    const double meanErr = probabilityError(asMatrix(map.mean, map.height, map.width), ref.mean);
    const double maxErr = probabilityError(asMatrix(map.max, map.height, map.width), ref.max);
    const double allowedErr = (asMatrix(map.allowed, map.height, map.width) - ref.allowed).cwiseAbs().maxCoeff();
    *ok = map.width == ref.mean.cols() && map.height == ref.mean.rows() && meanErr <= kTolerance &&
          maxErr <= kTolerance && allowedErr <= 1e-6;
    return QString("rect [%1,%2)x[%3,%4) size %5x%6 -> %7x%8: mean %9 max %10 allowed %11")
        .arg(rect.q0)
        .arg(rect.q1)
        .arg(rect.k0)
        .arg(rect.k1)
        .arg(w)
        .arg(h)
        .arg(map.width)
        .arg(map.height)
        .arg(meanErr)
        .arg(maxErr)
        .arg(allowedErr)
        .toUtf8();
}
}  // namespace

class TestMapService : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    std::shared_ptr<const Trace> writeTrace(const std::string& name, TraceWriter& w) {
        const std::string path = m_dir.filePath(QString::fromStdString(name)).toStdString();
        if (Status s = w.write(path); !s) qFatal("%s", s.message().c_str());
        auto t = Trace::open(path);
        if (!t) qFatal("%s", t.message().c_str());
        return *t;
    }

private slots:
    void exactMapsMatchBruteForce_data();
    void exactMapsMatchBruteForce();
    void sinksAreFoundAndExcluded();
    void overviewLseIsReusedByZooms();
    void sampledRowsAreExactRows();
    void storedProbabilitiesArePooled();
    void refusals();
};

void TestMapService::exactMapsMatchBruteForce_data() {
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<int>("window");
    QTest::addColumn<bool>("causal");
    QTest::addRow("T=9 d=8 causal") << 9 << 8 << 0 << true;
    QTest::addRow("T=200 d=32 causal") << 200 << 32 << 0 << true;
    QTest::addRow("T=333 d=64 window 40") << 333 << 64 << 40 << true;
    QTest::addRow("T=150 d=16 encoder") << 150 << 16 << 0 << false;
}

void TestMapService::exactMapsMatchBruteForce() {
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, window);
    QFETCH(bool, causal);
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    TraceMetadata m = smallMetadata(2, 4, 2, dim, tokens);
    for (auto& c : m.layers) c.causal = causal, c.slidingWindow = window;
    TraceWriter w = randomTrace(m, DType::F32, uint32_t(seed));
    auto trace = writeTrace("exact.attn.safetensors", w);
    HeadCache cache(trace);
    for (int trial = 0; trial < 4; ++trial) {
        MapRequest r;
        r.layer = int(uniform(0, 1));
        r.head = int(uniform(0, 3));
        if (trial > 0) {
            r.rect.q0 = uniform(0, tokens - 1);
            r.rect.q1 = uniform(r.rect.q0 + 1, tokens);
            r.rect.k0 = uniform(0, tokens - 1);
            r.rect.k1 = uniform(r.rect.k0 + 1, tokens);
        }
        const MapRect rect = requestRect(r, tokens);
        r.width = int(uniform(1, 2 * (rect.k1 - rect.k0)));
        r.height = int(uniform(1, 2 * (rect.q1 - rect.q0)));
        auto map = headMap(cache, r);
        QVERIFY2(map.ok(), map.message().c_str());
        QCOMPARE(map->backend, MapBackend::Cpu);
        QVERIFY(map->exact);
        QCOMPARE(map->map.rect.q1, rect.q1);
        const HeadQK h = loadHead(*trace, r.layer, r.head);
        bool ok = false;
        const QByteArray msg =
            compare(map->map, bruteAttention(h.q, h.k, h.spec), h.spec, rect, r.width, r.height, &ok);
        QVERIFY2(ok, (QByteArray("seed ") + QByteArray::number(qulonglong(seed)) + " trial " +
                      QByteArray::number(trial) + ": " + msg)
                         .constData());
    }
}

void TestMapService::sinksAreFoundAndExcluded() {
    const uint64_t seed = freshSeed();
    const int64_t T = 300;
    const int d = 16;
    TraceMetadata m = smallMetadata(1, 1, 1, d, T);
    TraceWriter w(m);
    std::mt19937_64 rng(seed);
    MatrixRM q = randomMatrix(rng, T, d, 0.3f), k = randomMatrix(rng, T, d, 0.3f);
    q.col(0).setConstant(3.0f);  // every query aligns with key 0's large first component
    k(0, 0) = 12.0f;
    w.addTensor("layers.0.q", DType::F32, {1, T, d}, std::vector<float>(q.data(), q.data() + q.size()));
    w.addTensor("layers.0.k", DType::F32, {1, T, d}, std::vector<float>(k.data(), k.data() + k.size()));
    w.addTensor("layers.0.v", DType::F32, {1, T, d}, randomValues(size_t(T * d), 5));
    auto trace = writeTrace("sink.attn.safetensors", w);
    HeadCache cache(trace);
    MapRequest r;
    r.width = r.height = 37;
    r.excludeSinks = true;
    r.excludedKeys = {5};  // a caller's own exclusion is kept alongside the sinks
    auto map = headMap(cache, r);
    QVERIFY2(map.ok(), map.message().c_str());
    const HeadQK h = loadHead(*trace, 0, 0);
    const BruteAttention dense = bruteAttention(h.q, h.k, h.spec);
    std::vector<int64_t> expected;
    for (int64_t key = 0; key < T; ++key)
        if (dense.p.col(key).sum() / double(T - key) > kSinkScoreThreshold) expected.push_back(key);
    QVERIFY(!expected.empty() && expected.front() == 0);
    QCOMPARE(map->sinks, expected);
    AttentionSpec spec = h.spec;
    spec.mask.excludedKeys = expected;
    spec.mask.excludedKeys.push_back(5);
    std::sort(spec.mask.excludedKeys.begin(), spec.mask.excludedKeys.end());
    bool ok = false;
    const QByteArray msg = compare(map->map, bruteAttention(h.q, h.k, spec), spec, {0, T, 0, T}, 37, 37, &ok);
    QVERIFY2(ok, (QByteArray("seed ") + QByteArray::number(qulonglong(seed)) + ": " + msg).constData());
}

void TestMapService::overviewLseIsReusedByZooms() {
    const uint64_t seed = freshSeed();
    TraceMetadata m = smallMetadata(1, 2, 1, 32, 256);
    TraceWriter w = randomTrace(m, DType::F32, uint32_t(seed));
    auto trace = writeTrace("zoom.attn.safetensors", w);
    HeadCache cache(trace);
    auto head = cache.head(0, 1);
    QVERIFY(head.ok());
    QVERIFY(!cache.cachedLse(**head, (*head)->spec));
    MapRequest r;
    r.head = 1;
    r.width = r.height = 64;
    QVERIFY(headMap(cache, r).ok());
    const auto lse = cache.cachedLse(**head, (*head)->spec);
    QVERIFY2(lse, "the whole-height overview caches the head's lse");
    // A zoom (and a second overview) reuse it: pass 2 only, the same cached vector.
    r.rect = {100, 164, 30, 94};
    auto zoom = headMap(cache, r);
    QVERIFY2(zoom.ok(), zoom.message().c_str());
    QVERIFY(headMap(cache, MapRequest{.layer = 0, .head = 1, .width = 8, .height = 8}).ok());
    QCOMPARE(cache.cachedLse(**head, (*head)->spec).get(), lse.get());
    const HeadQK h = loadHead(*trace, 0, 1);
    bool ok = false;
    const QByteArray msg = compare(zoom->map, bruteAttention(h.q, h.k, h.spec), h.spec, r.rect, 64, 64, &ok);
    QVERIFY2(ok, (QByteArray("seed ") + QByteArray::number(qulonglong(seed)) + ": " + msg).constData());
}

void TestMapService::sampledRowsAreExactRows() {
    const uint64_t seed = freshSeed();
    const int64_t T = 400;
    TraceMetadata m = smallMetadata(1, 1, 1, 16, T);
    TraceWriter w = randomTrace(m, DType::F32, uint32_t(seed));
    auto trace = writeTrace("sampled.attn.safetensors", w);
    HeadCache cache(trace);
    MapRequest r;
    r.width = 50;
    r.height = 16;
    r.sampledRows = true;
    auto map = headMap(cache, r);
    QVERIFY2(map.ok(), map.message().c_str());
    QVERIFY(!map->exact);
    QCOMPARE(map->backend, MapBackend::CpuSampledRows);
    QCOMPARE(map->map.height, 16);
    const HeadQK h = loadHead(*trace, 0, 0);
    const BruteAttention b = bruteAttention(h.q, h.k, h.spec);
    for (int y = 0; y < 16; ++y) {
        // Cell row y stands for query row (2y + 1)·T / 32: its keys pooled over 50 cells.
        const int64_t q = (2 * y + 1) * T / 32;
        bool ok = false;
        BruteAttention row;
        row.p = b.p.block(q, 0, 1, T);
        AttentionMap one;
        one.width = 50, one.height = 1;
        one.mean.assign(map->map.mean.begin() + y * 50, map->map.mean.begin() + (y + 1) * 50);
        one.max.assign(map->map.max.begin() + y * 50, map->map.max.begin() + (y + 1) * 50);
        one.allowed.assign(map->map.allowed.begin() + y * 50, map->map.allowed.begin() + (y + 1) * 50);
        AttentionSpec shifted = h.spec;  // the row's mask as seen from row 0 of the block
        shifted.mask.causal = false;
        shifted.mask.excludedKeys.clear();
        for (int64_t key = q + 1; key < T; ++key) shifted.mask.excludedKeys.push_back(key);
        const QByteArray msg = compare(one, row, shifted, {0, 1, 0, T}, 50, 1, &ok);
        QVERIFY2(ok, (QByteArray("seed ") + QByteArray::number(qulonglong(seed)) + " row " +
                      QByteArray::number(qlonglong(q)) + ": " + msg)
                         .constData());
    }
}

void TestMapService::storedProbabilitiesArePooled() {
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    const int heads = 2;
    const int64_t T = 60;
    TraceMetadata m = smallMetadata(1, heads, heads, 8, T);
    // Row-stochastic causal rows; key 0 holds most of every row's mass (a sink).
    std::vector<float> attn(size_t(heads * T * T), 0.0f);
    std::uniform_real_distribution<float> u(0.01f, 1.0f);
    for (int h = 0; h < heads; ++h)
        for (int64_t i = 0; i < T; ++i) {
            float* row = attn.data() + (h * T + i) * T;
            double sum = 0;
            for (int64_t j = 0; j <= i; ++j) sum += row[j] = j == 0 ? 4.0f * float(i + 1) : u(rng);
            for (int64_t j = 0; j <= i; ++j) row[j] = float(row[j] / sum);
        }
    TraceWriter w(m);
    w.addTensor("layers.0.attn", DType::F32, {heads, T, T}, attn);
    auto trace = writeTrace("weights.attn.safetensors", w);
    QVERIFY(!trace->hasQK());
    HeadCache cache(trace);
    for (bool excludeSinks : {false, true}) {
        MapRequest r;
        r.head = 1;
        r.rect = {3, 57, 0, 41};
        r.width = 13;
        r.height = 20;
        r.excludeSinks = excludeSinks;
        auto map = headMap(cache, r);
        QVERIFY2(map.ok(), map.message().c_str());
        QCOMPARE(map->backend, MapBackend::StoredProbabilities);
        BruteAttention b;
        b.p = MatrixRMd::Zero(T, T);
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j) b.p(i, j) = attn[size_t((T + i) * T + j)];
        AttentionSpec spec;  // the stored matrix carries no mask; excluded keys are masked
        if (excludeSinks) {
            QCOMPARE(map->sinks, std::vector<int64_t>{0});
            spec.mask.excludedKeys = {0};
            for (int64_t i = 0; i < T; ++i) {
                const double removed = b.p(i, 0);
                b.p(i, 0) = 0;
                if (removed < 1.0) b.p.row(i) /= 1.0 - removed;
            }
        } else {
            QVERIFY(map->sinks.empty());
        }
        bool ok = false;
        const QByteArray msg = compare(map->map, b, spec, r.rect, r.width, r.height, &ok);
        QVERIFY2(ok, (QByteArray("seed ") + QByteArray::number(qulonglong(seed)) + ": " + msg).constData());
    }
}

void TestMapService::refusals() {
    TraceMetadata m = smallMetadata(2, 3, 1, 8, 40);
    TraceWriter w = randomTrace(m, DType::F32, 7);
    auto trace = writeTrace("refusals.attn.safetensors", w);
    HeadCache cache(trace);
    auto expectRefused = [&](MapRequest r, const char* fragment) {
        auto map = headMap(cache, r);
        QVERIFY2(!map.ok(), fragment);
        QCOMPARE(map.status().code(), ErrorCode::InvalidArgument);
        QVERIFY2(map.message().find(fragment) != std::string::npos, map.message().c_str());
    };
    MapRequest r;
    r.layer = 2;
    expectRefused(r, "layer 2 out of range: the trace has 2 layers");
    r = {};
    r.head = 3;
    expectRefused(r, "head 3 out of range: layer 0 has 3 heads");
    r = {};
    r.rect = {0, 41, 0, 40};
    expectRefused(r, "must lie inside [0,40]");
    r.rect = {10, 10, 0, 40};
    expectRefused(r, "with q0 < q1");
    r = {};
    r.width = 0;
    expectRefused(r, "size 0x512");
    r.width = kMaxMapSide + 1;
    expectRefused(r, "cells per side");
    // Cancel: a progress callback that says stop.
    r = {};
    auto cancelled = headMap(cache, r, [](double, std::string_view) { return false; });
    QCOMPARE(cancelled.status().code(), ErrorCode::Cancelled);
}

QTEST_GUILESS_MAIN(TestMapService)
#include "tst_map_service.moc"
