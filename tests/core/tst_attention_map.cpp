// Multiscale maps (mean / max / allowed per cell), probability tiles and sink columns against a
// float64 brute force over the dense matrix, on fresh random inputs and random rects and sizes
// (larger than the rect: clamped; non-divisible). Tolerance: 1e-6 relative (Frobenius), scaled
// for cells below e^-8 by the float32 exponent's precision (see probabilityError).
#include <QtTest>

#include <atomic>
#include <mutex>

#include "attnscope/attention.h"
#include "brute_attention.h"

using namespace attnscope;
using namespace attnscope::testing;

namespace {
constexpr double kTolerance = 1e-6;

}  // namespace

class TestAttentionMap : public QObject {
    Q_OBJECT
private slots:
    void mapMatchesBruteForce_data();
    void mapMatchesBruteForce();
    void tilesReassembleTheMatrix_data();
    void tilesReassembleTheMatrix();
    void sinkColumnsFindThePlantedSink();
    void cancellation();
    void badArguments();
};

void TestAttentionMap::mapMatchesBruteForce_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<bool>("fullRect");
    QTest::addColumn<bool>("reuseLse");
    for (const auto& kind : specKinds())
        for (int t : {7, 300, 777}) {
            QTest::addRow("%s T=%d full", kind.c_str(), t) << QString::fromStdString(kind) << t << true << false;
            QTest::addRow("%s T=%d rect", kind.c_str(), t) << QString::fromStdString(kind) << t << false << (t == 300);
        }
}

void TestAttentionMap::mapMatchesBruteForce() {
    QFETCH(QString, kind);
    QFETCH(int, tokens);
    QFETCH(bool, fullRect);
    QFETCH(bool, reuseLse);
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
    const int d = int(uniform(0, 1)) ? 64 : 32;
    const AttentionSpec spec = makeSpec(kind.toStdString(), tokens, d, rng);
    const MatrixRM q = randomMatrix(rng, tokens, d), k = randomMatrix(rng, tokens, d);
    MapRect rect{0, tokens, 0, tokens};
    if (!fullRect) {
        rect.q0 = uniform(0, tokens - 1);
        rect.q1 = uniform(rect.q0 + 1, tokens);
        rect.k0 = uniform(0, tokens - 1);
        rect.k1 = uniform(rect.k0 + 1, tokens);
    }
    // Sizes from 1 up to twice the rect (clamped), mostly not dividing it.
    const int width = int(uniform(1, 2 * (rect.k1 - rect.k0))), height = int(uniform(1, 2 * (rect.q1 - rect.q0)));
    std::vector<float> lse;
    if (reuseLse) {
        auto l = rowLogSumExp(q, k, spec, 0, tokens);
        QVERIFY(l.ok());
        lse = *l;
    }
    auto map = attentionMap(q, k, spec, rect, width, height, {}, reuseLse ? &lse : nullptr);
    QVERIFY2(map.ok(), map.message().c_str());
    QCOMPARE(map->width, int(std::min<int64_t>(width, rect.k1 - rect.k0)));
    QCOMPARE(map->height, int(std::min<int64_t>(height, rect.q1 - rect.q0)));
    const BruteMap ref = bruteMap(bruteAttention(q, k, spec), spec, rect, width, height);
    const double meanErr = probabilityError(asMatrix(map->mean, map->height, map->width), ref.mean);
    const double maxErr = probabilityError(asMatrix(map->max, map->height, map->width), ref.max);
    const double allowedErr = (asMatrix(map->allowed, map->height, map->width) - ref.allowed).cwiseAbs().maxCoeff();
    const QByteArray msg = QString("seed %1 rect [%2,%3)x[%4,%5) size %6x%7: mean %8 max %9 allowed %10")
                               .arg(seed)
                               .arg(rect.q0)
                               .arg(rect.q1)
                               .arg(rect.k0)
                               .arg(rect.k1)
                               .arg(width)
                               .arg(height)
                               .arg(meanErr)
                               .arg(maxErr)
                               .arg(allowedErr)
                               .toUtf8();
    QVERIFY2(meanErr <= kTolerance, msg.constData());
    QVERIFY2(maxErr <= kTolerance, msg.constData());
    QVERIFY2(allowedErr <= 1e-6, msg.constData());
}

void TestAttentionMap::tilesReassembleTheMatrix_data() {
    QTest::addColumn<QString>("kind");
    QTest::addColumn<bool>("skipEmpty");
    for (const char* kind : {"causal", "window", "documents", "blocks", "combo"})
        for (bool skip : {true, false}) QTest::addRow("%s skip=%d", kind, int(skip)) << kind << skip;
}

void TestAttentionMap::tilesReassembleTheMatrix() {
    QFETCH(QString, kind);
    QFETCH(bool, skipEmpty);
    const uint64_t seed = freshSeed();
    std::mt19937_64 rng(seed);
    const int64_t t = 333;
    const AttentionSpec spec = makeSpec(kind.toStdString(), t, 32, rng);
    const MatrixRM q = randomMatrix(rng, t, 32), k = randomMatrix(rng, t, 32);
    const int64_t q0 = 17, q1 = 300, k0 = 5, k1 = 320;
    auto lse = rowLogSumExp(q, k, spec, q0, q1);
    QVERIFY(lse.ok());
    MatrixRMd dense = MatrixRMd::Zero(t, t);
    std::mutex mutex;
    std::atomic<int64_t> visited{0};
    TileOptions opt;
    opt.tileQ = 50;
    opt.tileK = 70;
    opt.skipEmptyTiles = skipEmpty;
    Status s = forEachProbabilityTile(
        q, k, spec, *lse, q0, q1, k0, k1,
        [&](int, int64_t qs, int64_t ks, const Eigen::Ref<const MatrixRM>& p) {
            std::lock_guard lock(mutex);
            dense.block(qs, ks, p.rows(), p.cols()) += p.cast<double>();
            visited += p.size();
        },
        {}, opt);
    QVERIFY2(s.ok(), s.message().c_str());
    if (!skipEmpty) QCOMPARE(visited.load(), (q1 - q0) * (k1 - k0));
    const MatrixRMd ref = bruteAttention(q, k, spec).p.block(q0, k0, q1 - q0, k1 - k0);
    const double err = probabilityError(dense.block(q0, k0, q1 - q0, k1 - k0), ref);
    QVERIFY2(err <= kTolerance, QString("seed %1: error %2").arg(seed).arg(err).toUtf8());
}

void TestAttentionMap::sinkColumnsFindThePlantedSink() {
    std::mt19937_64 rng(freshSeed());
    const int64_t t = 400;
    const int d = 32;
    MatrixRM q = randomMatrix(rng, t, d, 0.3f), k = randomMatrix(rng, t, d, 0.3f);
    q.col(0).setConstant(3.0f);  // every query aligns with key 0's large first component
    k(0, 0) = 12.0f;
    k(250, 0) = 2.5f;  // a weak column: alpha well below the threshold
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(d));
    spec.mask.causal = true;
    auto sinks = sinkColumns(q, k, spec, 0.3);
    QVERIFY2(sinks.ok(), sinks.message().c_str());
    const BruteAttention b = bruteAttention(q, k, spec);
    std::vector<int64_t> expected;
    for (int64_t key = 0; key < t; ++key)
        if (b.p.col(key).sum() / double(t - key) > 0.3) expected.push_back(key);
    QCOMPARE(*sinks, expected);
    QVERIFY(!sinks->empty() && sinks->front() == 0);
}

void TestAttentionMap::cancellation() {
    std::mt19937_64 rng(3);
    const MatrixRM q = randomMatrix(rng, 2000, 32), k = randomMatrix(rng, 2000, 32);
    int calls = 0;
    auto m = attentionMap(q, k, AttentionSpec{}, {0, 2000, 0, 2000}, 64, 64,
                          [&](double, std::string_view) { return ++calls < 3; });
    QCOMPARE(m.status().code(), ErrorCode::Cancelled);
    auto lse = rowLogSumExp(q, k, AttentionSpec{}, 0, 2000);
    QVERIFY(lse.ok());
    // Cancelling pass 2 alone (lse given) also stops.
    auto m2 = attentionMap(
        q, k, AttentionSpec{}, {0, 2000, 0, 2000}, 64, 64, [](double, std::string_view) { return false; }, &*lse);
    QCOMPARE(m2.status().code(), ErrorCode::Cancelled);
    Status s = forEachProbabilityTile(
        q, k, AttentionSpec{}, *lse, 0, 2000, 0, 2000, [](int, int64_t, int64_t, const Eigen::Ref<const MatrixRM>&) {},
        [](double, std::string_view) { return false; });
    QCOMPARE(s.code(), ErrorCode::Cancelled);
}

void TestAttentionMap::badArguments() {
    std::mt19937_64 rng(4);
    const MatrixRM q = randomMatrix(rng, 20, 8), k = randomMatrix(rng, 20, 8);
    const AttentionSpec spec;
    QCOMPARE(attentionMap(q, k, spec, {0, 20, 0, 20}, 0, 10).status().code(), ErrorCode::InvalidArgument);
    QCOMPARE(attentionMap(q, k, spec, {0, 21, 0, 20}, 10, 10).status().code(), ErrorCode::InvalidArgument);
    QCOMPARE(attentionMap(q, k, spec, {5, 5, 0, 20}, 10, 10).status().code(), ErrorCode::InvalidArgument);
    QCOMPARE(attentionMap(q, k, spec, {0, 20, -1, 20}, 10, 10).status().code(), ErrorCode::InvalidArgument);
    const std::vector<float> shortLse(5, 0.0f);
    QCOMPARE(attentionMap(q, k, spec, {0, 20, 0, 20}, 10, 10, {}, &shortLse).status().code(), ErrorCode::Shape);
    auto noop = [](int, int64_t, int64_t, const Eigen::Ref<const MatrixRM>&) {};
    QCOMPARE(forEachProbabilityTile(q, k, spec, shortLse, 0, 20, 0, 20, noop).code(), ErrorCode::Shape);
    TileOptions bad;
    bad.tileK = 0;
    QCOMPARE(forEachProbabilityTile(q, k, spec, shortLse, 0, 5, 0, 20, noop, {}, bad).code(),
             ErrorCode::InvalidArgument);
}

QTEST_GUILESS_MAIN(TestAttentionMap)
#include "tst_attention_map.moc"
