// HeadSums is the contract between the analysis backends (CPU passes here, the GPU's tensor-core
// passes in kernels/) and finishHead: every field is checked against a float64 brute force over
// the full T×T probabilities on fresh random inputs, for causal, windowed, non-causal and
// sink-excluded heads with repeated token ids and documents. Also ngramIds' definition and that
// finishHead(accumulateHead(...)) is analyzeHead.
#include <QtTest>

#include <cmath>
#include <random>

#include "analysis_accumulator.h"
#include "attnscope/analysis.h"
#include "attnscope/analysis_sums.h"
#include "brute_attention.h"

using namespace attnscope;

namespace {

constexpr double kTolerance = 2e-5;  ///< float32 passes vs float64, sums of ≤ 1 per row

struct Case {
    int64_t T;
    int d;
    bool causal;
    int64_t window;
    std::vector<int64_t> excluded;
};

struct Brute {
    std::vector<double> mass, plogp, distance, first, self, recent, prev, next, duplicate, induction, repeat, document;
    std::vector<double> column, offset, windowMass;
    std::vector<std::vector<double>> blocks;
};

Brute bruteSums(const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, const HeadContext& ctx,
                const HeadAnalysisOptions& o) {
    const int64_t T = q.rows();
    const int64_t origin = spec.mask.causal ? 0 : T - 1;
    Brute b;
    for (auto* v : {&b.mass, &b.plogp, &b.distance, &b.first, &b.self, &b.recent, &b.prev, &b.next, &b.duplicate,
                    &b.induction, &b.repeat, &b.document, &b.column, &b.windowMass})
        v->assign(size_t(T), 0.0);
    b.offset.assign(size_t(origin + T), 0.0);
    const std::vector<int64_t> sizes = accumulatedBlockSizes(o);
    for (int64_t B : sizes) b.blocks.emplace_back(size_t(((T + B - 1) / B) * ((T + B - 1) / B)), 0.0);
    const int64_t n = o.roles.recentTokens, ctxLen = o.roles.repeatContext;
    const auto& id = ctx.tokenIds;
    auto sameContext = [&](int64_t a, int64_t c) {  // the ctxLen tokens ending at a and at c
        if (a + 1 < ctxLen || c + 1 < ctxLen) return false;
        for (int64_t x = 0; x < ctxLen; ++x)
            if (id[size_t(a - x)] != id[size_t(c - x)]) return false;
        return true;
    };
    for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(size_t(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
            if (!spec.mask.allows(i, j)) continue;
            const double dot = double(q.row(i).cast<double>().dot(k.row(j).cast<double>()));
            s[size_t(j)] = double(spec.score(float(dot), i, j));
            mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -INFINITY) continue;
        double z = 0;
        for (double x : s) z += std::exp(x - mx);
        for (int64_t j = 0; j < T; ++j) {
            const double p = std::exp(s[size_t(j)] - mx) / z;
            if (p == 0) continue;
            const size_t si = size_t(i);
            b.mass[si] += p;
            b.plogp[si] += p * std::log(p);
            b.distance[si] += p * double(std::llabs(i - j));
            if (j == 0) b.first[si] += p;
            if (j == i) b.self[si] += p;
            if (j == i - 1) b.prev[si] += p;
            if (j == i + 1) b.next[si] += p;
            if (spec.mask.causal ? (j > i - n && j <= i) : (j >= T - n)) b.recent[si] += p;
            if (j < i && id[size_t(j)] == id[si]) b.duplicate[si] += p;
            if (j >= 1 && j <= i && id[size_t(j - 1)] == id[si]) b.induction[si] += p;
            if (j >= 1 && j - 1 < i && sameContext(j - 1, i)) b.repeat[si] += p;
            if (ctx.documents[size_t(j)] == ctx.documents[si]) b.document[si] += p;
            if (std::llabs(i - j) < o.masks.window) b.windowMass[si] += p;
            b.column[size_t(j)] += p;
            b.offset[size_t(i - j + origin)] += p;
            for (size_t x = 0; x < sizes.size(); ++x) {
                const int64_t B = sizes[x], nb = (T + B - 1) / B;
                b.blocks[x][size_t((i / B) * nb + j / B)] += p;
            }
        }
    }
    return b;
}

double maxDiff(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t x = 0; x < a.size(); ++x) m = std::max(m, std::fabs(a[x] - b[x]));
    return m;
}

}  // namespace

class TestAnalysisSums : public QObject {
    Q_OBJECT
private slots:
    void sumsMatchBruteForce_data();
    void sumsMatchBruteForce();
    void ngramIdsDefinition();
    void finishIsAnalyzeHead();
};

void TestAnalysisSums::sumsMatchBruteForce_data() {
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<bool>("causal");
    QTest::addColumn<int>("window");
    QTest::addColumn<bool>("exclude");
    QTest::newRow("causal T=70 d=16") << 70 << 16 << true << 0 << false;
    QTest::newRow("causal window T=131 d=8") << 131 << 8 << true << 24 << false;
    QTest::newRow("encoder T=97 d=12") << 97 << 12 << false << 0 << false;
    QTest::newRow("causal sinks excluded T=90 d=16") << 90 << 16 << true << 0 << true;
}

void TestAnalysisSums::sumsMatchBruteForce() {
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(bool, causal);
    QFETCH(int, window);
    QFETCH(bool, exclude);
    const uint64_t seed = testing::freshSeed();
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t T = tokens;
    MatrixRM q(T, dim), k(T, dim), v(T, dim);
    for (Eigen::Index x = 0; x < q.size(); ++x) q.data()[x] = nd(rng), k.data()[x] = nd(rng), v.data()[x] = nd(rng);
    HeadContext ctx;
    std::uniform_int_distribution<int64_t> vocab(0, 5);  // small: duplicates, induction and repeats occur
    for (int64_t i = 0; i < T; ++i) ctx.tokenIds.push_back(vocab(rng)), ctx.documents.push_back(int32_t(i * 3 / T));
    AttentionSpec spec;
    spec.scale = 1.0f / std::sqrt(float(dim));
    spec.mask.causal = causal;
    spec.mask.window = window;
    if (exclude) spec = specWithoutKeys(spec, {0, T / 2});
    HeadAnalysisOptions o;
    o.blockSizes = {16, 32};
    o.masks.window = 9, o.masks.sinkWindow = 9, o.masks.topKBlockSize = 16, o.masks.estimateQueries = 8;
    o.roles.repeatContext = 2;
    auto sums = detail::accumulateHead(q, k, v, spec, ctx, o);
    QVERIFY2(sums.ok(), sums.message().c_str());
    const Brute b = bruteSums(q, k, spec, ctx, o);
    const std::pair<const char*, std::pair<const std::vector<double>*, const std::vector<double>*>> fields[] = {
        {"mass", {&sums->mass, &b.mass}},
        {"plogp", {&sums->plogp, &b.plogp}},
        {"distance", {&sums->distance, &b.distance}},
        {"first", {&sums->first, &b.first}},
        {"self", {&sums->self, &b.self}},
        {"recent", {&sums->recent, &b.recent}},
        {"prev", {&sums->prev, &b.prev}},
        {"next", {&sums->next, &b.next}},
        {"duplicate", {&sums->duplicate, &b.duplicate}},
        {"induction", {&sums->induction, &b.induction}},
        {"repeat", {&sums->repeat, &b.repeat}},
        {"document", {&sums->document, &b.document}},
        {"column", {&sums->column, &b.column}},
        {"offset", {&sums->offset, &b.offset}}};
    for (const auto& [name, pair] : fields) {
        // Distance sums grow with T: compare them relative to T.
        const double scale = std::string(name) == "distance" ? double(T) : 1.0;
        const double diff = maxDiff(*pair.first, *pair.second) / scale;
        QVERIFY2(
            diff <= kTolerance,
            qPrintable(
                QStringLiteral("%1: max diff %2 (tol %3), seed %4").arg(name).arg(diff).arg(kTolerance).arg(seed)));
    }
    QCOMPARE(sums->blockSizes, accumulatedBlockSizes(o));
    for (size_t x = 0; x < b.blocks.size(); ++x)
        QVERIFY2(maxDiff(sums->blocks[x], b.blocks[x]) <= kTolerance * 16, qPrintable(QString::number(seed)));
    // Window, sink+window, vertical-slash, top-k blocks; the window's kept mass is a closed form.
    QCOMPARE(sums->masked.size(), size_t(4));
    QVERIFY2(maxDiff(sums->masked[0].mass, b.windowMass) <= kTolerance, qPrintable(QString::number(seed)));
    QVERIFY(sums->masked[3].keptBlocks.size() > 0);
    for (const auto& m : sums->masked) QVERIFY(m.errorRef2 > 0 && m.errorDiff2 >= 0);
}

void TestAnalysisSums::ngramIdsDefinition() {
    const uint64_t seed = testing::freshSeed();
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> vocab(0, 3);
    std::vector<int64_t> ids(300);
    for (auto& x : ids) x = vocab(rng);
    for (int64_t ctxLen : {1, 2, 3}) {
        const std::vector<int64_t> g = ngramIds(ids, ctxLen);
        QCOMPARE(int64_t(g.size()), int64_t(ids.size()));
        for (int64_t a = 0; a < int64_t(ids.size()); ++a) {
            QCOMPARE(g[size_t(a)] < 0, a + 1 < ctxLen);
            for (int64_t c = ctxLen - 1; c < a; ++c) {
                bool same = a + 1 >= ctxLen;
                for (int64_t x = 0; same && x < ctxLen; ++x) same = ids[size_t(a - x)] == ids[size_t(c - x)];
                QVERIFY2((g[size_t(a)] == g[size_t(c)]) == same, qPrintable(QString::number(seed)));
            }
        }
    }
}

void TestAnalysisSums::finishIsAnalyzeHead() {
    const uint64_t seed = testing::freshSeed();
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const int64_t T = 200;
    MatrixRM q(T, 16), k(T, 16), v(T, 16);
    for (Eigen::Index x = 0; x < q.size(); ++x) q.data()[x] = nd(rng), k.data()[x] = nd(rng), v.data()[x] = nd(rng);
    AttentionSpec spec;
    spec.scale = 0.25f;
    spec.mask.causal = true;
    auto sums = detail::accumulateHead(q, k, v, spec, {}, {});
    QVERIFY(sums.ok());
    auto a = finishHead(*sums, spec, {}, {});
    auto b = analyzeHead(q, k, v, spec, {}, {});
    QVERIFY(a.ok() && b.ok());
    QCOMPARE(a->stats.entropy, b->stats.entropy);
    QCOMPARE(a->sinks.alpha, b->sinks.alpha);
    QCOMPARE(a->masks.size(), b->masks.size());
    for (size_t m = 0; m < a->masks.size(); ++m) QCOMPARE(a->masks[m].outputError, b->masks[m].outputError);
    QCOMPARE(a->role.label, b->role.label);
    // Sums of the wrong length are refused, not read past.
    HeadSums broken = *sums;
    broken.column.pop_back();
    QVERIFY(!finishHead(broken, spec, {}, {}).ok());
}

QTEST_GUILESS_MAIN(TestAnalysisSums)
#include "tst_analysis_sums.moc"
