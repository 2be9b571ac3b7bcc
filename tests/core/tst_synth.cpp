// Synthetic traces: each planted pattern is where the ground truth says, measured with float64
// brute-force attention on the trace as written and read back (each dtype, GQA groups, head dims),
// and noise heads show none of them. Sampled rows check a long sequence.
#include <QtTest>

#include <QTemporaryDir>

#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "brute_attention.h"

using namespace attnscope;
using namespace attnscope::testing;

namespace {
constexpr int64_t kBand = 16;  ///< "local" means within this many tokens behind the query

/// Pattern scores of one head's dense probabilities (definitions of analysis-metrics.md).
struct Scores {
    double sink0 = 0;       ///< alpha_0
    double hidden = 0;      ///< alpha_h at the planted hidden sink
    double maxLaterSink = 0;  ///< max alpha_k over k ≥ 1
    double band = 0;        ///< mean mass within kBand tokens behind
    double previous = 0;    ///< mean A[i, i−1]
    double induction = 0;   ///< mean A[i, i−L+1] over the second copy
    double inDocument = 0;  ///< mean mass inside the query's document
};

Scores score(const MatrixRMd& p, const SynthTruth& truth) {
    const int64_t t = p.rows();
    Scores s;
    for (int64_t key = 0; key < t; ++key) {
        const double alpha = p.col(key).sum() / double(t - key);
        if (key == 0) s.sink0 = alpha;
        else s.maxLaterSink = std::max(s.maxLaterSink, alpha);
        if (key == truth.hiddenSinkPosition) s.hidden = alpha;
    }
    for (int64_t i = 0; i < t; ++i) {
        for (int64_t j = std::max<int64_t>(0, i - kBand + 1); j <= i; ++j) s.band += p(i, j);
        if (i > 0) s.previous += p(i, i - 1);
        for (int64_t j = 0; j <= i; ++j)
            if (truth.documents[size_t(j)] == truth.documents[size_t(i)]) s.inDocument += p(i, j);
    }
    s.band /= double(t);
    s.previous /= double(t - 1);
    s.inDocument /= double(t);
    const int64_t l = truth.repeatLength;
    for (int64_t i = truth.repeatStart; i < truth.repeatStart + l; ++i) s.induction += p(i, i - l + 1);
    s.induction /= double(std::max<int64_t>(1, l));
    return s;
}

QString describe(const Scores& s) {
    return QString("sink0 %1 hidden %2 maxLater %3 band %4 prev %5 induction %6 inDoc %7")
        .arg(s.sink0).arg(s.hidden).arg(s.maxLaterSink).arg(s.band).arg(s.previous).arg(s.induction).arg(s.inDocument);
}
}  // namespace

class TestSynth : public QObject {
    Q_OBJECT
private slots:
    void patternsAreWherePlanted_data();
    void patternsAreWherePlanted();
    void longSequenceSampledRows();
    void deterministicFromSeed();
    void badOptionsAreRefused();
};

void TestSynth::patternsAreWherePlanted_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<int>("groups");
    QTest::newRow("F32 T=512 d=64") << int(DType::F32) << 512 << 64 << 1;
    QTest::newRow("F16 T=1024 d=64 GQA 2") << int(DType::F16) << 1024 << 64 << 2;
    QTest::newRow("BF16 T=700 d=32") << int(DType::BF16) << 700 << 32 << 1;
    QTest::newRow("F16 T=600 d=128 GQA 3") << int(DType::F16) << 600 << 128 << 3;
}

void TestSynth::patternsAreWherePlanted() {
    QFETCH(int, dtype);
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, groups);
    SynthOptions o;
    o.tokens = tokens;
    o.layers = 1;
    o.headDim = dim;
    o.kvGroups = groups;
    o.dtype = DType(dtype);
    o.seed = freshSeed();
    QTemporaryDir dir;
    const std::string path = dir.filePath("synth.attn.safetensors").toStdString();
    auto truth = writeSyntheticTrace(path, o);
    QVERIFY2(truth.ok(), truth.message().c_str());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    const Trace& tr = **trace;
    const int patterns = int(o.heads.size());
    QCOMPARE(tr.config(0).heads, patterns * groups);
    QCOMPARE(tr.config(0).kvHeads, patterns);
    QCOMPARE(int(truth->heads.size()), patterns * groups);
    QCOMPARE(tr.metadata().documents, truth->documents);
    QCOMPARE(int64_t(tr.metadata().tokens.size()), int64_t(tokens));
    // The second copy repeats the token ids (duplicate/induction detectors need real repeats).
    const auto& ids = tr.metadata().tokenIds;
    for (int64_t i = 0; i < truth->repeatLength; ++i)
        QCOMPARE(ids[size_t(truth->repeatStart + i)], ids[size_t(truth->repeatStart - truth->repeatLength + i)]);

    for (int h = 0; h < tr.config(0).heads; ++h) {
        auto q = tr.head(0, h, Which::Q), k = tr.head(0, h, Which::K);
        QVERIFY(q.ok() && k.ok());
        const Scores s = score(bruteAttention(q->m, k->m, specForLayer(tr.config(0), h)).p, *truth);
        const SynthHead kind = truth->heads[size_t(h)];
        const QByteArray msg = QString("seed %1 head %2 (%3): %4")
                                   .arg(o.seed).arg(h).arg(synthHeadName(kind)).arg(describe(s)).toUtf8();
        switch (kind) {
        case SynthHead::FirstTokenSink: QVERIFY2(s.sink0 > 0.5, msg.constData()); break;
        case SynthHead::HiddenSink: QVERIFY2(s.hidden > 0.2, msg.constData()); break;
        case SynthHead::LocalBand: QVERIFY2(s.band > 0.9 && s.previous < 0.8, msg.constData()); break;
        case SynthHead::PreviousToken: QVERIFY2(s.previous > 0.8, msg.constData()); break;
        case SynthHead::Induction: QVERIFY2(s.induction > 0.6, msg.constData()); break;
        case SynthHead::Documents: QVERIFY2(s.inDocument > 0.99, msg.constData()); break;
        case SynthHead::Noise:
            QVERIFY2(s.sink0 < 0.1 && s.maxLaterSink < 0.1 && s.previous < 0.1 && s.induction < 0.1 && s.band < 0.5,
                     msg.constData());
            break;
        }
    }
}

void TestSynth::longSequenceSampledRows() {
    // T = 32k: exact probabilities of sampled rows (brute force over one row at a time).
    SynthOptions o;
    o.tokens = 32768;
    o.layers = 1;
    o.dtype = DType::BF16;
    o.seed = freshSeed();
    o.heads = {SynthHead::FirstTokenSink, SynthHead::PreviousToken, SynthHead::Induction, SynthHead::LocalBand};
    auto made = makeSyntheticTrace(o);
    QVERIFY2(made.ok(), made.message().c_str());
    QTemporaryDir dir;
    const std::string path = dir.filePath("long.attn.safetensors").toStdString();
    QVERIFY(made->first.write(path).ok());
    const SynthTruth& truth = made->second;
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    std::mt19937_64 rng(o.seed);
    for (int h = 0; h < 4; ++h) {
        auto q = (*trace)->head(0, h, Which::Q), k = (*trace)->head(0, h, Which::K);
        QVERIFY(q.ok() && k.ok());
        const AttentionSpec spec = specForLayer((*trace)->config(0), h);
        for (int sample = 0; sample < 6; ++sample) {
            // Rows from the second copy so every pattern applies.
            const int64_t i = truth.repeatStart + 1 +
                              std::uniform_int_distribution<int64_t>(0, truth.repeatLength - 2)(rng);
            const BruteAttention b = bruteAttention(q->m.middleRows(i, 1), k->m, spec, i);
            const QByteArray msg = QString("seed %1 head %2 row %3").arg(o.seed).arg(h).arg(i).toUtf8();
            switch (o.heads[size_t(h)]) {
            case SynthHead::FirstTokenSink: QVERIFY2(b.p(0, 0) > 0.5, msg.constData()); break;
            case SynthHead::PreviousToken: QVERIFY2(b.p(0, i - 1) > 0.8, msg.constData()); break;
            case SynthHead::Induction: QVERIFY2(b.p(0, i - truth.repeatLength + 1) > 0.6, msg.constData()); break;
            default: QVERIFY2(b.p.block(0, i - kBand + 1, 1, kBand).sum() > 0.9, msg.constData()); break;
            }
        }
    }
}

void TestSynth::deterministicFromSeed() {
    SynthOptions o;
    o.tokens = 300;
    o.layers = 2;
    o.headDim = 32;
    o.seed = 42;
    auto a = makeSyntheticTrace(o), b = makeSyntheticTrace(o);
    QVERIFY(a.ok() && b.ok());
    QVERIFY(a->first.serialize() == b->first.serialize());
    o.seed = 43;
    auto c = makeSyntheticTrace(o);
    QVERIFY(c.ok());
    QVERIFY(a->first.serialize() != c->first.serialize());
}

void TestSynth::badOptionsAreRefused() {
    SynthOptions o;
    o.tokens = 1;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
    o = {};
    o.headDim = 8;  // too few columns for the position and token codes
    auto r = makeSyntheticTrace(o);
    QCOMPARE(r.status().code(), ErrorCode::InvalidArgument);
    QVERIFY2(r.message().find("head dim") != std::string::npos, r.message().c_str());
    o = {};
    o.repeatStart = 100;
    o.repeatLength = 200;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
    o = {};
    o.kvGroups = 0;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
    o = {};
    o.hiddenSinkPosition = o.tokens;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
}

QTEST_GUILESS_MAIN(TestSynth)
#include "tst_synth.moc"
