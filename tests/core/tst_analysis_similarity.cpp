// Head similarity (Jensen–Shannon with Clark et al.'s smoothing) vs a float64 brute force, and
// the average-linkage leaf order. Tolerance 1e-4 on the divergence (nats).
#include <QtTest>

#include "analysis_bruteforce.h"
#include "mask_cases.h"

using namespace attnscope;
using namespace attnscope::test;

class TestAnalysisSimilarity : public QObject {
    Q_OBJECT
private slots:
    void jensenShannon_data();
    void jensenShannon();
    void identicalHeadsAreClose();
    void averageLinkage();
    void rejectsBadInput();
};

void TestAnalysisSimilarity::jensenShannon_data() {
    addMaskCases({{45, MaskCase::Causal}, {300, MaskCase::Causal}, {80, MaskCase::Full}, {130, MaskCase::Window}});
}

void TestAnalysisSimilarity::jensenShannon() {
    QFETCH(qint64, T);
    QFETCH(MaskCase, mask);
    constexpr int H = 4;
    std::vector<HeadCase> cases;
    std::vector<Dense> dense;
    std::vector<HeadInput> in;
    for (int h = 0; h < H; ++h) cases.push_back(makeHeadCase(T, mask, 900 + uint64_t(h) * 7 + uint64_t(T)));
    for (int h = 0; h < H; ++h) {
        dense.push_back(denseAttention(cases[size_t(h)].q, cases[size_t(h)].k, cases[size_t(h)].spec));
        in.push_back({&cases[size_t(h)].q, &cases[size_t(h)].k, cases[size_t(h)].spec, {}});
    }
    auto r = headSimilarity(in);
    QVERIFY2(r.ok(), r.message().c_str());
    QCOMPARE(r->heads, H);
    const double c = 0.001 / double(T);
    for (int h = 0; h < H; ++h)
        for (int g = 0; g < H; ++g) {
            double js = 0;
            for (int64_t i = 0; i < T; ++i)
                for (int64_t j = 0; j < T; ++j) {
                    const double p = 0.999 * dense[size_t(h)].at(i, j) + c, q = 0.999 * dense[size_t(g)].at(i, j) + c;
                    const double m = 0.5 * (p + q);
                    js += 0.5 * p * std::log(p / m) + 0.5 * q * std::log(q / m);
                }
            js /= double(T);
            const size_t x = size_t(h * H + g);
            QVERIFY2(std::abs(r->divergence[x] - js) < 1e-4,
                     qPrintable(QString("%1 vs %2").arg(r->divergence[x]).arg(js)));
            QVERIFY(close(r->distance[x], std::sqrt(std::max(0.0, r->divergence[x]) / std::log(2.0)), 1e-12));
            QVERIFY(close(r->similarity[x], 1.0 - r->distance[x], 1e-12));
        }
    std::vector<int> order = r->order;
    std::sort(order.begin(), order.end());
    QCOMPARE(order, (std::vector<int>{0, 1, 2, 3}));
    QCOMPARE(int(r->merges.size()), H - 1);
}

void TestAnalysisSimilarity::identicalHeadsAreClose() {
    const HeadCase a = makeHeadCase(200, MaskCase::Causal, 1), b = makeHeadCase(200, MaskCase::Causal, 2);
    auto r = headSimilarity({{&a.q, &a.k, a.spec, {}}, {&b.q, &b.k, b.spec, {}}, {&a.q, &a.k, a.spec, {}}});
    QVERIFY2(r.ok(), r.message().c_str());
    QVERIFY(r->divergence[0 * 3 + 2] < 1e-6);
    QVERIFY(r->divergence[0 * 3 + 1] > 1e-2);
    // The two copies merge first and sit next to each other in the leaf order.
    QCOMPARE(r->merges[0].a, 0);
    QCOMPARE(r->merges[0].b, 2);
    const auto pos0 = std::find(r->order.begin(), r->order.end(), 0) - r->order.begin();
    const auto pos2 = std::find(r->order.begin(), r->order.end(), 2) - r->order.begin();
    QCOMPARE(std::abs(pos0 - pos2), long(1));
}

void TestAnalysisSimilarity::averageLinkage() {
    // Two tight pairs {0,3} and {1,2}; UPGMA joins the pairs first, then the two clusters at the
    // mean of the four cross distances.
    const std::vector<double> d = {0, 5, 6, 1,  //
                                   5, 0, 2, 7,  //
                                   6, 2, 0, 8,  //
                                   1, 7, 8, 0};
    std::vector<HeadSimilarity::Merge> merges;
    const auto order = averageLinkageOrder(d, 4, &merges);
    QCOMPARE(order, (std::vector<int>{0, 3, 1, 2}));
    QCOMPARE(int(merges.size()), 3);
    QCOMPARE(merges[0].a, 0);
    QCOMPARE(merges[0].b, 3);
    QCOMPARE(merges[0].height, 1.0);
    QCOMPARE(merges[1].height, 2.0);
    QVERIFY(close(merges[2].height, (5 + 6 + 7 + 8) / 4.0, 1e-12));
}

void TestAnalysisSimilarity::rejectsBadInput() {
    QVERIFY(!headSimilarity({}).ok());
    const HeadCase a = makeHeadCase(20, MaskCase::Causal, 1), b = makeHeadCase(30, MaskCase::Causal, 2);
    auto r = headSimilarity({{&a.q, &a.k, a.spec, {}}, {&b.q, &b.k, b.spec, {}}});
    QVERIFY(!r.ok());
    QVERIFY(r.message().find("expected 20") != std::string::npos);
}

QTEST_GUILESS_MAIN(TestAnalysisSimilarity)
#include "tst_analysis_similarity.moc"
