// Block mass, gamma coverage, density and the candidate masks (window, sink+window,
// vertical-slash, top-k blocks: recall, kept fraction, relative output error with V) vs a
// float64 brute force over the dense T×T map. Tolerance 1e-4 (relative output errors 2e-4 abs).
#include <QtTest>

#include <numeric>

#include "analysis_bruteforce.h"
#include "mask_cases.h"

using namespace attnscope;
using namespace attnscope::test;

namespace {
constexpr double kTol = 1e-4;

/// Indices of the n largest scores after the forced ones (ties by index; zero scores never picked).
std::vector<uint8_t> pickTop(const std::vector<double>& score, std::vector<uint8_t> keep, int64_t n) {
    int64_t count = std::accumulate(keep.begin(), keep.end(), int64_t(0));
    std::vector<size_t> order(score.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
    for (size_t x : order) {
        if (count >= n) break;
        if (keep[x] || score[x] <= 0) continue;
        keep[x] = 1;
        ++count;
    }
    return keep;
}
}  // namespace

class TestAnalysisSparsity : public QObject {
    Q_OBJECT
private slots:
    void blocksAndMasks_data();
    void blocksAndMasks();
    void blockMasks();
};

void TestAnalysisSparsity::blocksAndMasks_data() {
    addMaskCases({{50, MaskCase::Causal},
                  {161, MaskCase::Causal},
                  {120, MaskCase::Window},
                  {70, MaskCase::Full},
                  {100, MaskCase::Documents},
                  {90, MaskCase::Excluded}});
}

void TestAnalysisSparsity::blocksAndMasks() {
    QFETCH(qint64, T);
    QFETCH(MaskCase, mask);
    const HeadCase c = makeHeadCase(T, mask, 4242 + uint64_t(T));
    const HeadAnalysisOptions opt = smallOptions();
    auto r = analyzeHead(c.q, c.k, c.v, c.spec, c.context, opt);
    QVERIFY2(r.ok(), r.message().c_str());
    const HeadAnalysis& h = *r;
    const Dense d = denseAttention(c.q, c.k, c.spec);
    int64_t rows = 0, allowedPairs = 0;
    for (int64_t i = 0; i < T; ++i) {
        const int64_t n = d.rowAllowed(i);
        rows += n > 0;
        allowedPairs += n;
    }

    QCOMPARE(h.blocks.size(), opt.blockSizes.size());
    std::vector<double> topMass;  // block mass at the top-k block size
    for (const BlockSparsity& b : h.blocks) {
        const int64_t B = b.blockSize, nb = (T + B - 1) / B;
        QCOMPARE(b.blockRows, nb);
        std::vector<double> M(size_t(nb * nb), 0.0);
        std::vector<uint8_t> allowed(size_t(nb * nb), 0);
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j) {
                M[size_t((i / B) * nb + j / B)] += d.at(i, j);
                if (d.ok(i, j)) allowed[size_t((i / B) * nb + j / B)] = 1;
            }
        if (B == opt.masks.topKBlockSize) topMass = M;
        QCOMPARE(b.allowed, allowed);
        QCOMPARE(b.allowedBlocks, std::accumulate(allowed.begin(), allowed.end(), int64_t(0)));
        for (size_t x = 0; x < M.size(); ++x) QVERIFY(close(b.mass[x], M[x], kTol));
        QCOMPARE(b.coverage.size(), opt.gammas.size());
        for (size_t g = 0; g < opt.gammas.size(); ++g) {
            int64_t kept = 0;
            double keptMass = 0, total = 0;
            for (int64_t I = 0; I < nb; ++I) {
                std::vector<double> row;
                for (int64_t J = 0; J < nb; ++J)
                    if (allowed[size_t(I * nb + J)]) row.push_back(M[size_t(I * nb + J)]);
                std::sort(row.rbegin(), row.rend());
                const double rowTotal = std::accumulate(row.begin(), row.end(), 0.0);
                total += rowTotal;
                int64_t n = 0;
                double cum = 0;
                while (rowTotal > 0 && n < int64_t(row.size()) && cum < opt.gammas[g] * rowTotal * (1 - 1e-9))
                    cum += row[size_t(n++)];
                QCOMPARE(int64_t(b.coverage[g].blocksPerRow[size_t(I)]), n);
                kept += n;
                keptMass += cum;
            }
            QCOMPARE(b.coverage[g].keptBlocks, kept);
            QVERIFY(close(b.coverage[g].density, double(kept) / double(b.allowedBlocks), 1e-12));
            QVERIFY(close(b.coverage[g].recall, keptMass / total, kTol));
            QVERIFY(b.coverage[g].recall >= opt.gammas[g] - kTol);
        }
    }
    QCOMPARE(h.coverage(16, 0.9), &h.blocks[0].coverage[1]);

    // Candidate masks, rebuilt independently.
    const auto& mo = opt.masks;
    const int64_t origin = c.spec.mask.causal ? 0 : T - 1;
    const int64_t nEst = std::min<int64_t>(T, mo.estimateQueries);
    std::vector<double> vScore(size_t(T), 0), sScore(size_t(origin + T), 0);
    for (int64_t i = T - nEst; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
            if (d.at(i, j) > 0) vScore[size_t(j)] += d.at(i, j), sScore[size_t(i - j + origin)] += d.at(i, j);
    std::vector<uint8_t> fv(size_t(T), 0), fs(size_t(origin + T), 0);
    for (int64_t j = 0; j < std::min<int64_t>(T, mo.forcedVertical); ++j) fv[size_t(j)] = 1;
    for (int64_t o = 0; o < std::min<int64_t>(T, mo.forcedSlash); ++o) {
        fs[size_t(origin + o)] = 1;
        if (origin - o >= 0) fs[size_t(origin - o)] = 1;
    }
    const auto vKeep = pickTop(vScore, fv, mo.verticalCount);
    const auto sKeep = pickTop(sScore, fs, mo.slashCount);
    const int64_t nbK = (T + mo.topKBlockSize - 1) / mo.topKBlockSize;
    std::vector<uint8_t> topKeep(size_t(nbK * nbK), 0);
    for (int64_t I = 0; I < nbK; ++I) {
        std::vector<int64_t> cols;
        for (int64_t J = 0; J < nbK; ++J)
            if (h.blocks[0].allowed[size_t(I * nbK + J)]) cols.push_back(J);
        std::stable_sort(cols.begin(), cols.end(), [&](int64_t a, int64_t b) {
            return topMass[size_t(I * nbK + a)] > topMass[size_t(I * nbK + b)];
        });
        for (size_t n = 0; n < cols.size() && int64_t(n) < mo.topKBlocks; ++n) topKeep[size_t(I * nbK + cols[n])] = 1;
    }
    const std::vector<std::function<bool(int64_t, int64_t)>> keeps = {
        [&](int64_t i, int64_t j) { return std::abs(i - j) < mo.window; },
        [&](int64_t i, int64_t j) { return j < mo.sinkTokens || std::abs(i - j) < mo.sinkWindow; },
        [&](int64_t i, int64_t j) {
            return vKeep[size_t(j)] || (i - j + origin >= 0 && sKeep[size_t(i - j + origin)]);
        },
        [&](int64_t i, int64_t j) { return topKeep[size_t((i / mo.topKBlockSize) * nbK + j / mo.topKBlockSize)] != 0; },
    };
    QCOMPARE(h.masks.size(), keeps.size());
    const auto denseOut = maskedOutput(d, c.v, [](int64_t, int64_t) { return true; });
    for (size_t m = 0; m < keeps.size(); ++m) {
        double recall = 0;
        int64_t kept = 0;
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j < T; ++j)
                if (keeps[m](i, j)) recall += d.at(i, j), kept += d.ok(i, j);
        const double err = relativeError(maskedOutput(d, c.v, keeps[m]), denseOut);
        const CandidateMaskResult& cm = h.masks[m];
        QVERIFY2(close(cm.recall, recall / rows, kTol), cm.name.c_str());
        QVERIFY2(close(cm.keptFraction, double(kept) / double(allowedPairs), 1e-12), cm.name.c_str());
        QVERIFY2(std::abs(cm.outputError - err) <= 2e-4,
                 qPrintable(QString("%1: %2 vs %3").arg(cm.name.c_str()).arg(cm.outputError).arg(err)));
    }
}

void TestAnalysisSparsity::blockMasks() {
    // 2 block-rows × 3 block-cols, hand-made masses.
    BlockSparsity b;
    b.blockSize = 4;
    b.blockRows = 2;
    b.blockCols = 3;
    b.mass = {0.5f, 3.0f, 0.5f, 1.0f, 1.0f, 2.0f};
    b.allowed = {1, 1, 0, 1, 1, 1};
    QCOMPARE(topKBlockMask(b, 1), (std::vector<uint8_t>{0, 1, 0, 0, 0, 1}));
    QCOMPARE(topKBlockMask(b, 5), (std::vector<uint8_t>{1, 1, 0, 1, 1, 1}));
    // Row 0 total (allowed) 3.5: 3.0 reaches 0.75; row 1 total 4: 2 + 1 (tie: lower column) reaches 0.75.
    QCOMPARE(gammaBlockMask(b, 0.75), (std::vector<uint8_t>{0, 1, 0, 1, 0, 1}));
    QCOMPARE(gammaBlockMask(b, 0.8), (std::vector<uint8_t>{0, 1, 0, 1, 1, 1}));
}

QTEST_GUILESS_MAIN(TestAnalysisSparsity)
#include "tst_analysis_sparsity.moc"
