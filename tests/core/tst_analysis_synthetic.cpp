// Ground truth: analyzeTrace on synthetic traces (synth.h) finds the planted first-token sink,
// hidden sink, local band, previous-token, induction and document heads, labels them, and does
// not label the noise heads as any planted pattern. Also MHA vs GQA and "exclude sinks".
#include <QtTest>

#include <QTemporaryDir>

#include "analysis_bruteforce.h"
#include "attnscope/analysis.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"

using namespace attnscope;

class TestAnalysisSynthetic : public QObject {
    Q_OBJECT
private slots:
    void plantedPatterns_data();
    void plantedPatterns();
    void excludeSinks();
    void jsonAndErrors();
    void layersAnnouncedAsTheyFinish();
    void gqaTraceMatchesBruteForce();

private:
    QTemporaryDir m_dir;
};

void TestAnalysisSynthetic::plantedPatterns_data() {
    QTest::addColumn<qint64>("T");
    QTest::addColumn<int>("kvGroups");
    QTest::newRow("T=1024 MHA") << qint64(1024) << 1;
    QTest::newRow("T=700 GQA 2") << qint64(700) << 2;
}

void TestAnalysisSynthetic::plantedPatterns() {
    QFETCH(qint64, T);
    QFETCH(int, kvGroups);
    SynthOptions so;
    so.tokens = T;
    so.layers = 1;
    so.kvGroups = kvGroups;
    so.seed = 11 + uint64_t(T);
    const std::string path = m_dir.filePath(QString("s%1.attn.safetensors").arg(T)).toStdString();
    auto truth = writeSyntheticTrace(path, so);
    QVERIFY2(truth.ok(), truth.message().c_str());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    int progressCalls = 0;
    auto model = analyzeTrace(**trace, {}, [&](double f, std::string_view) {
        ++progressCalls;
        return f >= 0 && f <= 1.0 + 1e-9;
    });
    QVERIFY2(model.ok(), model.message().c_str());
    QVERIFY(progressCalls > 0);
    QCOMPARE(model->heads.size(), truth->heads.size());
    int sinkHeads = 0;
    for (size_t h = 0; h < model->heads.size(); ++h) {
        const HeadAnalysis& a = model->heads[h];
        const std::string why = std::string(synthHeadName(truth->heads[h])) + " head " + std::to_string(h) + ": " +
                                a.role.label + " (" + a.role.evidence + ")";
        sinkHeads += a.sinks.firstTokenSink;
        switch (truth->heads[h]) {
        case SynthHead::FirstTokenSink:
            QVERIFY2(a.sinks.firstTokenSink && a.sinks.alpha0 > 0.9, why.c_str());
            QVERIFY2(a.role.label == "sink", why.c_str());
            break;
        case SynthHead::HiddenSink:
            QVERIFY2(std::count(a.sinks.hiddenSinks.begin(), a.sinks.hiddenSinks.end(), truth->hiddenSinkPosition) == 1,
                     why.c_str());
            QVERIFY2(a.sinks.hiddenSinks.size() == 1, why.c_str());
            QVERIFY2(a.role.label == "hidden-sink", why.c_str());
            break;
        case SynthHead::LocalBand: QVERIFY2(a.role.label == "local" && a.roles.localMass > 0.9, why.c_str()); break;
        case SynthHead::PreviousToken:
            QVERIFY2(a.role.label == "previous-token" && a.roles.previousToken > 0.9, why.c_str());
            break;
        case SynthHead::Induction:
            QVERIFY2(a.role.label == "induction" && a.roles.inductionMatched > 0.8, why.c_str());
            // TransformerLens' score averages over every row: bounded by the repeated share (1/4).
            QVERIFY2(a.roles.induction > 0.2, why.c_str());
            break;
        case SynthHead::Documents:
            QVERIFY2(a.role.label == "document" && a.roles.documentMass > 0.95, why.c_str());
            break;
        case SynthHead::Noise:
            QVERIFY2(a.role.label == "broad" || a.role.label == "mixed", why.c_str());
            QVERIFY2(!a.sinks.firstTokenSink && a.sinks.hiddenSinks.empty(), why.c_str());
            QVERIFY2(a.roles.previousToken < 0.1 && a.roles.inductionMatched < 0.1, why.c_str());
            break;
        }
    }
    // Layer summary: sink rate = share of heads with alpha_0 > 0.3, role counts add up.
    QCOMPARE(model->layers.size(), size_t(1));
    const LayerSummary& s = model->layers[0];
    QCOMPARE(s.heads, int(truth->heads.size()));
    QVERIFY(std::abs(s.sinkRate - 100.0 * sinkHeads / double(s.heads)) < 1e-9);
    int counted = 0;
    for (const auto& [label, n] : s.roles) counted += n;
    QCOMPARE(counted, s.heads);
    QVERIFY(s.density > 0 && s.density <= 1);
    // Similarity: the GQA siblings of a planted pattern (same K, slightly perturbed Q) are close
    // and sit next to each other in the clustering's leaf order.
    QCOMPARE(model->similarity.size(), size_t(1));
    const HeadSimilarity& sim = model->similarity[0];
    QCOMPARE(sim.heads, int(truth->heads.size()));
    if (kvGroups == 2) {
        for (int h = 0; h + 1 < sim.heads; h += 2) {
            if (truth->heads[size_t(h)] == SynthHead::Noise) continue;
            const double d = sim.distance[size_t(h * sim.heads + h + 1)];
            QVERIFY2(d < 0.2, qPrintable(QString("siblings %1,%2 distance %3").arg(h).arg(h + 1).arg(d)));
            const auto a = std::find(sim.order.begin(), sim.order.end(), h) - sim.order.begin();
            const auto b = std::find(sim.order.begin(), sim.order.end(), h + 1) - sim.order.begin();
            QCOMPARE(std::abs(a - b), long(1));
        }
    }
    const int prev =
        int(std::find(truth->heads.begin(), truth->heads.end(), SynthHead::PreviousToken) - truth->heads.begin());
    const int sink =
        int(std::find(truth->heads.begin(), truth->heads.end(), SynthHead::FirstTokenSink) - truth->heads.begin());
    QVERIFY(sim.distance[size_t(prev * sim.heads + sink)] > 0.5);
}

void TestAnalysisSynthetic::excludeSinks() {
    SynthOptions so;
    so.tokens = 512;
    so.layers = 1;
    so.heads = {SynthHead::FirstTokenSink, SynthHead::PreviousToken};
    const std::string path = m_dir.filePath("ex.attn.safetensors").toStdString();
    QVERIFY(writeSyntheticTrace(path, so).ok());
    auto trace = Trace::open(path);
    QVERIFY(trace.ok());
    AnalyzeOptions opt;
    opt.similarity = false;
    auto dense = analyzeTrace(**trace, opt);
    opt.excludeSinks = true;
    auto ex = analyzeTrace(**trace, opt);
    QVERIFY2(dense.ok() && ex.ok(), ex.message().c_str());
    const HeadAnalysis& d0 = dense->heads[0];
    const HeadAnalysis& e0 = ex->heads[0];
    // Sinks are still reported (from the dense map), but every metric is measured without them.
    QVERIFY(e0.sinks.firstTokenSink);
    QCOMPARE(e0.excludedKeys, std::vector<int64_t>{0});
    QCOMPARE(e0.stats.firstTokenMass, 0.0);
    QVERIFY(e0.stats.entropy > d0.stats.entropy + 1.0);
    QVERIFY(ex->heads[1].excludedKeys.empty());
    QVERIFY(std::abs(ex->heads[1].roles.previousToken - dense->heads[1].roles.previousToken) < 1e-6);
}

void TestAnalysisSynthetic::jsonAndErrors() {
    SynthOptions so;
    so.tokens = 300;
    so.layers = 2;
    so.heads = {SynthHead::PreviousToken, SynthHead::Noise};
    const std::string path = m_dir.filePath("j.attn.safetensors").toStdString();
    QVERIFY(writeSyntheticTrace(path, so).ok());
    auto trace = Trace::open(path);
    QVERIFY(trace.ok());
    AnalyzeOptions opt;
    opt.layers = {1};
    auto model = analyzeTrace(**trace, opt);
    QVERIFY2(model.ok(), model.message().c_str());
    QCOMPARE(model->heads.size(), size_t(2));
    QCOMPARE(model->heads[0].layer, 1);
    const Json j = toJson(*model);
    auto back = Json::parse(j.dump());
    QVERIFY(back.ok());
    QCOMPARE(back->find("schema")->asString(), std::string("attnscope.analysis"));
    QCOMPARE(back->find("heads")->size(), size_t(2));
    QCOMPARE(back->find("heads")->asArray()[0].find("label")->asString(), std::string("previous-token"));
    QCOMPARE(back->find("layers")->asArray()[0].find("layer")->asNumber(), 1.0);
    // Errors: layer out of range; cancellation.
    opt.layers = {5};
    auto bad = analyzeTrace(**trace, opt);
    QVERIFY(!bad.ok());
    QVERIFY(bad.message().find("layer 5") != std::string::npos);
    auto cancelled = analyzeTrace(**trace, {}, [](double f, std::string_view) { return f < 0.3; });
    QVERIFY(!cancelled.ok());
    QCOMPARE(cancelled.status().code(), ErrorCode::Cancelled);
}

void TestAnalysisSynthetic::layersAnnouncedAsTheyFinish() {
    SynthOptions so;
    so.tokens = 256;
    so.layers = 3;
    so.heads = {SynthHead::FirstTokenSink, SynthHead::PreviousToken, SynthHead::Noise};
    const std::string path = m_dir.filePath("layers.attn.safetensors").toStdString();
    QVERIFY(writeSyntheticTrace(path, so).ok());
    auto trace = Trace::open(path);
    QVERIFY(trace.ok());
    struct Seen {
        int layer;
        std::vector<std::pair<int, int>> heads;  // (layer, head) of each announced head
        std::vector<double> alpha0;
        int summaryHeads;
        bool similarity;
    };
    std::vector<Seen> seen;
    AnalyzeOptions opt;
    opt.layers = {2, 0};  // announced in layer order, whatever the request's order
    opt.onLayer = [&](const LayerDone& d) {
        Seen s{d.layer, {}, {}, d.summary ? d.summary->heads : -1, d.similarity != nullptr};
        for (const HeadAnalysis& h : d.heads) {
            s.heads.emplace_back(h.layer, h.head);
            s.alpha0.push_back(h.sinks.alpha0);
        }
        seen.push_back(std::move(s));
    };
    auto model = analyzeTrace(**trace, opt);
    QVERIFY2(model.ok(), model.message().c_str());
    QVERIFY(!model->options.onLayer);
    QCOMPARE(seen.size(), size_t(2));
    const int heads = int(so.heads.size());
    for (size_t i = 0; i < seen.size(); ++i) {
        QCOMPARE(seen[i].layer, i == 0 ? 0 : 2);
        QCOMPARE(int(seen[i].heads.size()), heads);
        QCOMPARE(seen[i].summaryHeads, heads);
        QVERIFY(seen[i].similarity);
        for (int h = 0; h < heads; ++h) {
            // The announced heads are the final result's, in head order.
            const HeadAnalysis& final = model->heads[i * size_t(heads) + size_t(h)];
            QCOMPARE(seen[i].heads[size_t(h)], std::make_pair(seen[i].layer, h));
            QCOMPARE(seen[i].alpha0[size_t(h)], final.sinks.alpha0);
        }
    }
}

void TestAnalysisSynthetic::gqaTraceMatchesBruteForce() {
    // analyzeTrace on a random GQA trace (4 query heads, 2 kv heads) against a float64 brute force
    // built from the raw tensors with the GQA mapping written out here: kv head = h / (H / kv).
    const int64_t T = 150;
    const int L = 2, H = 4, KV = 2, d = 16;
    const std::string path = m_dir.filePath("gqa.attn.safetensors").toStdString();
    QVERIFY(test::writeRandomTrace(path, T, L, H, KV, d, 2024).ok());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    const Trace& t = **trace;
    AnalyzeOptions opt;
    opt.similarity = false;
    auto model = analyzeTrace(t, opt);
    QVERIFY2(model.ok(), model.message().c_str());
    QCOMPARE(model->heads.size(), size_t(L * H));
    auto raw = [&](const TensorView& view, int head) {
        MatrixRM m(T, d);
        view.toFloat(int64_t(head) * T * d, T * d, m.data());
        return m;
    };
    const auto& ids = t.metadata().tokenIds;
    for (const HeadAnalysis& h : model->heads) {
        const LayerTensors& lt = t.layer(h.layer);
        const int kv = h.head / (H / KV);
        const MatrixRM q = raw(lt.q, h.head), k = raw(lt.k, kv);
        const test::Dense dense = test::denseAttention(q, k, specForLayer(t.config(h.layer), h.head));
        double H_ = 0, prev = 0, dup = 0, sum = 0;
        for (int64_t i = 0; i < T; ++i)
            for (int64_t j = 0; j <= i; ++j) {
                const double p = dense.at(i, j);
                if (p > 0) H_ -= p * std::log(p);
                sum += p;
                if (j == i - 1) prev += p;
                if (j < i && ids[size_t(j)] == ids[size_t(i)]) dup += p;
            }
        QVERIFY(test::close(h.stats.entropy, H_ / T, 1e-4));
        QVERIFY(test::close(h.roles.previousToken, prev / sum, 1e-4));
        QVERIFY(test::close(h.roles.duplicateToken, dup / sum, 1e-4));
        for (int64_t j = 0; j < T; j += 7) {
            double col = 0;
            for (int64_t i = j; i < T; ++i) col += dense.at(i, j);
            QVERIFY(test::close(h.sinks.alpha[size_t(j)], col / double(T - j), 1e-4));
        }
    }
}

QTEST_GUILESS_MAIN(TestAnalysisSynthetic)
#include "tst_analysis_synthetic.moc"
