// Token level (attention row with top-k, attention column with alpha) and single-row attention
// rollout vs float64 brute force. Tolerance 1e-5 (probabilities), 1e-5 (rollout).
#include <QtTest>

#include <QTemporaryDir>

#include "analysis_bruteforce.h"
#include "mask_cases.h"

using namespace attnscope;
using namespace attnscope::test;

class TestAnalysisToken : public QObject {
    Q_OBJECT
private slots:
    void rowAndColumn_data();
    void rowAndColumn();
    void rollout_data();
    void rollout();
    void rejectsBadInput();
};

void TestAnalysisToken::rowAndColumn_data() {
    addMaskCases({{300, MaskCase::Causal}, {64, MaskCase::Full}, {99, MaskCase::Documents}, {50, MaskCase::Excluded}});
}

void TestAnalysisToken::rowAndColumn() {
    QFETCH(qint64, T);
    QFETCH(MaskCase, mask);
    const HeadCase c = makeHeadCase(T, mask, 31 + uint64_t(T));
    const Dense d = denseAttention(c.q, c.k, c.spec);
    for (int64_t query : {int64_t(0), int64_t(T / 3), int64_t(T - 1)}) {
        auto row = attentionRow(c.q, c.k, c.spec, query, 5);
        QVERIFY2(row.ok(), row.message().c_str());
        for (int64_t j = 0; j < T; ++j) QVERIFY(std::abs(row->probabilities[size_t(j)] - d.at(query, j)) < 1e-5);
        QCOMPARE(int(row->top.size()), int(std::min<int64_t>(5, T)));
        for (size_t x = 1; x < row->top.size(); ++x) QVERIFY(row->top[x - 1].second >= row->top[x].second);
        // The top key is the row's argmax.
        int64_t best = 0;
        for (int64_t j = 1; j < T; ++j)
            if (d.at(query, j) > d.at(query, best)) best = j;
        QCOMPARE(row->top[0].first, best);
    }
    for (int64_t key : {int64_t(0), int64_t(T / 2), int64_t(T - 2)}) {
        auto col = attentionColumn(c.q, c.k, c.spec, key, 3);
        QVERIFY2(col.ok(), col.message().c_str());
        double sum = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < T; ++i) {
            QVERIFY(std::abs(col->probabilities[size_t(i)] - d.at(i, key)) < 1e-5);
            if (d.ok(i, key)) sum += d.at(i, key), ++n;
        }
        QVERIFY(close(col->alpha, n ? sum / n : 0.0, 1e-5));
    }
}

void TestAnalysisToken::rollout_data() {
    QTest::addColumn<bool>("causal");
    QTest::addColumn<int>("kvHeads");
    QTest::newRow("causal GQA") << true << 1;
    QTest::newRow("encoder MHA") << false << 3;
}

void TestAnalysisToken::rollout() {
    QFETCH(bool, causal);
    QFETCH(int, kvHeads);
    QTemporaryDir dir;
    const std::string path = dir.filePath("r.attn.safetensors").toStdString();
    const int64_t T = 70;
    const int L = 3, H = 3;
    QVERIFY(writeRandomTrace(path, T, L, H, kvHeads, 8, 99, causal).ok());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    const Trace& tr = **trace;
    const int64_t query = T - 5;
    auto r = rolloutRow(tr, query);
    QVERIFY2(r.ok(), r.message().c_str());
    // Brute force: r = e_q Â_{L-1} … Â_0 with Â = rownorm(mean_h A + I).
    std::vector<double> ref(size_t(T), 0.0);
    ref[size_t(query)] = 1;
    for (int l = L - 1; l >= 0; --l) {
        std::vector<double> Ahat(size_t(T * T), 0.0);
        for (int h = 0; h < H; ++h) {
            const Dense d =
                denseAttention(tr.head(l, h, Which::Q)->m, tr.head(l, h, Which::K)->m, specForLayer(tr.config(l), h));
            for (size_t x = 0; x < Ahat.size(); ++x) Ahat[x] += d.A[x] / H;
        }
        for (int64_t i = 0; i < T; ++i) {
            Ahat[size_t(i * T + i)] += 1;
            double s = 0;
            for (int64_t j = 0; j < T; ++j) s += Ahat[size_t(i * T + j)];
            for (int64_t j = 0; j < T; ++j) Ahat[size_t(i * T + j)] /= s;
        }
        std::vector<double> next(size_t(T), 0.0);
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j) next[size_t(j)] += ref[size_t(i)] * Ahat[size_t(i * T + j)];
        ref = next;
    }
    double total = 0;
    for (int64_t j = 0; j < T; ++j) {
        QVERIFY2(std::abs((*r)[size_t(j)] - ref[size_t(j)]) < 1e-5, qPrintable(QString("token %1").arg(j)));
        total += (*r)[size_t(j)];
    }
    QVERIFY(std::abs(total - 1.0) < 1e-5);
    if (causal)
        for (int64_t j = query + 1; j < T; ++j) QCOMPARE((*r)[size_t(j)], 0.0);
}

void TestAnalysisToken::rejectsBadInput() {
    const HeadCase c = makeHeadCase(20, MaskCase::Causal, 1);
    auto row = attentionRow(c.q, c.k, c.spec, 20);
    QVERIFY(!row.ok());
    QVERIFY(row.message().find("out of range") != std::string::npos);
    QVERIFY(!attentionColumn(c.q, c.k, c.spec, -1).ok());
    MatrixRM k2 = c.k.leftCols(8);
    QVERIFY(!attentionRow(c.q, k2, c.spec, 0).ok());
}

QTEST_GUILESS_MAIN(TestAnalysisToken)
#include "tst_analysis_token.moc"
