// Synthetic traces: each planted pattern is where the ground truth says, measured with float64
// brute-force attention on the trace as written and read back (each dtype, GQA groups, head dims,
// kv heads cycling through the patterns), and noise heads show none of them. Sampled rows check a
// long sequence. The streamed file is byte for byte the in-memory one; bad shapes and absurd
// sizes are refused before a file appears.
#include <QtTest>

#include <QDir>
#include <QFile>
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
    double sink0 = 0;         ///< alpha_0
    double hidden = 0;        ///< alpha_h at the planted hidden sink
    double maxLaterSink = 0;  ///< max alpha_k over k ≥ 1
    double band = 0;          ///< mean mass within kBand tokens behind
    double previous = 0;      ///< mean A[i, i−1]
    double induction = 0;     ///< mean A[i, i−L+1] over the second copy
    double inDocument = 0;    ///< mean mass inside the query's document
};

Scores score(const MatrixRMd& p, const SynthTruth& truth) {
    const int64_t t = p.rows();
    Scores s;
    for (int64_t key = 0; key < t; ++key) {
        const double alpha = p.col(key).sum() / double(t - key);
        if (key == 0)
            s.sink0 = alpha;
        else
            s.maxLaterSink = std::max(s.maxLaterSink, alpha);
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
        .arg(s.sink0)
        .arg(s.hidden)
        .arg(s.maxLaterSink)
        .arg(s.band)
        .arg(s.previous)
        .arg(s.induction)
        .arg(s.inDocument);
}
}  // namespace

class TestSynth : public QObject {
    Q_OBJECT
private slots:
    void patternsAreWherePlanted_data();
    void patternsAreWherePlanted();
    void longSequenceSampledRows();
    void deterministicFromSeed();
    void streamingMatchesInMemory_data();
    void streamingMatchesInMemory();
    void headsCycleThroughPatterns();
    void badOptionsAreRefused();
    void absurdSizesAreRefused();
    void cancelLeavesNoFile();
};

void TestSynth::patternsAreWherePlanted_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<int>("groups");
    QTest::addColumn<int>("kvHeads");     // 0: one per pattern
    QTest::addColumn<int>("queryHeads");  // 0: kv heads × groups
    QTest::newRow("F32 T=512 d=64") << int(DType::F32) << 512 << 64 << 1 << 0 << 0;
    QTest::newRow("F16 T=1024 d=64 GQA 2") << int(DType::F16) << 1024 << 64 << 2 << 0 << 0;
    QTest::newRow("BF16 T=700 d=32") << int(DType::BF16) << 700 << 32 << 1 << 0 << 0;
    QTest::newRow("F16 T=600 d=128 GQA 3") << int(DType::F16) << 600 << 128 << 3 << 0 << 0;
    // Kv heads beyond the 8 patterns cycle through them again.
    QTest::newRow("BF16 T=400 d=128 H=20 K=10") << int(DType::BF16) << 400 << 128 << 1 << 10 << 20;
}

void TestSynth::patternsAreWherePlanted() {
    QFETCH(int, dtype);
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, groups);
    QFETCH(int, kvHeads);
    QFETCH(int, queryHeads);
    SynthOptions o;
    o.tokens = tokens;
    o.layers = 1;
    o.headDim = dim;
    o.kvGroups = groups;
    o.kvHeads = kvHeads;
    o.queryHeads = queryHeads;
    o.dtype = DType(dtype);
    o.seed = freshSeed();
    QTemporaryDir dir;
    const std::string path = dir.filePath("synth.attn.safetensors").toStdString();
    auto truth = writeSyntheticTrace(path, o);
    QVERIFY2(truth.ok(), truth.message().c_str());
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    const Trace& tr = **trace;
    const int kv = kvHeads > 0 ? kvHeads : int(o.heads.size());
    const int heads = queryHeads > 0 ? queryHeads : kv * groups;
    QCOMPARE(tr.config(0).heads, heads);
    QCOMPARE(tr.config(0).kvHeads, kv);
    QCOMPARE(truth->kvHeads, kv);
    QCOMPARE(int(truth->heads.size()), heads);
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
        const QByteArray msg =
            QString("seed %1 head %2 (%3): %4").arg(o.seed).arg(h).arg(synthHeadName(kind)).arg(describe(s)).toUtf8();
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
            const int64_t i =
                truth.repeatStart + 1 + std::uniform_int_distribution<int64_t>(0, truth.repeatLength - 2)(rng);
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

void TestSynth::streamingMatchesInMemory_data() {
    QTest::addColumn<int>("dtype");
    QTest::addColumn<int>("tokens");
    QTest::addColumn<int>("dim");
    QTest::addColumn<int>("layers");
    QTest::addColumn<int>("kvHeads");
    QTest::addColumn<int>("queryHeads");
    QTest::addColumn<int>("groups");
    QTest::addColumn<bool>("noiseFirst");  // heads = {noise, induction}: noise's two-engine stream
    QTest::addColumn<bool>("rerunCodes");  // streaming re-runs q̂ per query head (no code cache)
    // T = 4500 at d = 128 spans three row blocks of the generator.
    QTest::newRow("BF16 d=128 H=8 K=2 T=4500 2 layers")
        << int(DType::BF16) << 4500 << 128 << 2 << 2 << 8 << 1 << false << false;
    QTest::newRow("BF16 d=128 H=8 K=2 T=4500 re-run codes")
        << int(DType::BF16) << 4500 << 128 << 2 << 2 << 8 << 1 << false << true;
    QTest::newRow("BF16 d=128 H=8 K=2 noise T=4500 re-run codes")
        << int(DType::BF16) << 4500 << 128 << 1 << 2 << 8 << 1 << true << true;
    QTest::newRow("BF16 d=128 H=8 K=2 noise T=4500")
        << int(DType::BF16) << 4500 << 128 << 1 << 2 << 8 << 1 << true << false;
    QTest::newRow("F16 d=64 8 patterns GQA 2 T=333")
        << int(DType::F16) << 333 << 64 << 2 << 0 << 0 << 2 << false << true;
    QTest::newRow("F32 d=33 T=301 H=6 K=3 (odd T·d)")
        << int(DType::F32) << 301 << 33 << 1 << 3 << 6 << 1 << false << true;
    QTest::newRow("BF16 d=128 H=10 K=10 cycles T=200")
        << int(DType::BF16) << 200 << 128 << 1 << 10 << 10 << 1 << false << false;
}

void TestSynth::streamingMatchesInMemory() {
    QFETCH(int, dtype);
    QFETCH(int, tokens);
    QFETCH(int, dim);
    QFETCH(int, layers);
    QFETCH(int, kvHeads);
    QFETCH(int, queryHeads);
    QFETCH(int, groups);
    QFETCH(bool, noiseFirst);
    QFETCH(bool, rerunCodes);
    SynthOptions o;
    o.tokens = tokens;
    o.layers = layers;
    o.headDim = dim;
    o.kvHeads = kvHeads;
    o.queryHeads = queryHeads;
    o.kvGroups = groups;
    o.dtype = DType(dtype);
    o.seed = freshSeed();
    if (noiseFirst) o.heads = {SynthHead::Noise, SynthHead::Induction};
    auto made = makeSyntheticTrace(o);
    QVERIFY2(made.ok(), made.message().c_str());
    const std::vector<std::byte> expected = made->first.serialize();
    QTemporaryDir dir;
    const QString qpath = dir.filePath("stream.attn.safetensors");
    const std::string path = qpath.toStdString();
    if (rerunCodes) o.codeCacheBytes = 0;  // the in-memory path above kept q̂; the two must agree
    double lastFraction = -1;
    int reports = 0;
    auto truth = writeSyntheticTrace(path, o, [&](double fraction, std::string_view) {
        if (fraction < lastFraction) return false;  // fractions never decrease
        lastFraction = fraction;
        ++reports;
        return true;
    });
    QVERIFY2(truth.ok(), truth.message().c_str());
    QCOMPARE(lastFraction, 1.0);
    QVERIFY(reports >= 2);
    QCOMPARE(truth->heads, made->second.heads);
    QCOMPARE(truth->documents, made->second.documents);
    QFile f(qpath);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray bytes = f.readAll();
    QCOMPARE(qsizetype(bytes.size()), qsizetype(expected.size()));
    const QString msg = QString("seed %1: the streamed file differs from the in-memory one").arg(o.seed);
    QVERIFY2(std::memcmp(bytes.constData(), expected.data(), expected.size()) == 0, qPrintable(msg));
    QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList{"stream.attn.safetensors"});  // no temporary left
    auto trace = Trace::open(path);
    QVERIFY2(trace.ok(), trace.message().c_str());
    QCOMPARE((*trace)->numLayers(), layers);
    QCOMPARE((*trace)->config(0).heads, int(truth->heads.size()));
    QCOMPARE((*trace)->config(0).kvHeads, truth->kvHeads);
}

void TestSynth::headsCycleThroughPatterns() {
    // A Llama-3-8B-like head layout (32 query heads over 8 kv heads) and kv heads beyond the patterns.
    SynthOptions o;
    o.tokens = 64;
    o.layers = 1;
    o.headDim = 128;
    o.queryHeads = 32;
    o.kvHeads = 8;
    auto made = makeSyntheticTrace(o);
    QVERIFY2(made.ok(), made.message().c_str());
    QCOMPARE(made->second.kvHeads, 8);
    QCOMPARE(int(made->second.heads.size()), 32);
    for (int h = 0; h < 32; ++h) QCOMPARE(made->second.heads[size_t(h)], o.heads[size_t(h / 4)]);
    o.queryHeads = 0;
    o.kvHeads = 12;
    o.kvGroups = 2;
    made = makeSyntheticTrace(o);
    QVERIFY2(made.ok(), made.message().c_str());
    QCOMPARE(int(made->second.heads.size()), 24);
    for (int h = 0; h < 24; ++h) QCOMPARE(made->second.heads[size_t(h)], o.heads[size_t(h / 2) % o.heads.size()]);
    // Fewer kv heads than patterns: only the first patterns are planted.
    o.kvHeads = 1;
    o.kvGroups = 1;
    o.queryHeads = 4;
    made = makeSyntheticTrace(o);
    QVERIFY2(made.ok(), made.message().c_str());
    QCOMPARE(made->second.heads, std::vector<SynthHead>(4, SynthHead::FirstTokenSink));
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
    // Query heads must be a multiple of the kv heads, and agree with kv groups when both are set.
    o = {};
    o.queryHeads = 30;
    o.kvHeads = 8;
    r = makeSyntheticTrace(o);
    QCOMPARE(r.status().code(), ErrorCode::InvalidArgument);
    QVERIFY2(r.message().find("multiple of kv heads 8") != std::string::npos, r.message().c_str());
    o.queryHeads = 32;
    o.kvGroups = 2;
    r = makeSyntheticTrace(o);
    QCOMPARE(r.status().code(), ErrorCode::InvalidArgument);
    QVERIFY2(r.message().find("kv groups") != std::string::npos, r.message().c_str());
    o.kvGroups = 4;  // agrees: 32 / 8
    QVERIFY(makeSyntheticTrace(o).ok());
    o = {};
    o.kvHeads = -1;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
    o = {};
    o.queryHeads = -8;
    QCOMPARE(makeSyntheticTrace(o).status().code(), ErrorCode::InvalidArgument);
    // The head dim check covers kv heads that cycle back to a pattern, and fails before any file.
    o = {};
    o.headDim = 8;
    o.kvHeads = 16;
    QTemporaryDir dir;
    const std::string path = dir.filePath("bad.attn.safetensors").toStdString();
    auto w = writeSyntheticTrace(path, o);
    QCOMPARE(w.status().code(), ErrorCode::InvalidArgument);
    QVERIFY2(w.message().find("head dim") != std::string::npos, w.message().c_str());
    QVERIFY(QDir(dir.path()).isEmpty());
}

void TestSynth::absurdSizesAreRefused() {
    // Refused before anything is written: no file, no temporary.
    QTemporaryDir dir;
    const std::string path = dir.filePath("huge.attn.safetensors").toStdString();
    SynthOptions o;
    o.tokens = 100000;
    o.layers = 1;
    o.headDim = 4096;
    o.queryHeads = 65536;
    o.kvHeads = 8;
    auto r = writeSyntheticTrace(path, o);  // layers.0.q alone: 54 TB
    QVERIFY(!r.ok());
    QVERIFY2(r.message().find("layers.0.q") != std::string::npos && r.message().find("limit") != std::string::npos,
             r.message().c_str());
    QVERIFY(QDir(dir.path()).isEmpty());
    o.queryHeads = 64;
    o.layers = 1000;  // 66 GB per layer, 66 TB in all: more than any test machine has free
    r = writeSyntheticTrace(path, o);
    QCOMPARE(r.status().code(), ErrorCode::IoError);
    QVERIFY2(r.message().find("free") != std::string::npos, r.message().c_str());
    QVERIFY(QDir(dir.path()).isEmpty());
}

void TestSynth::cancelLeavesNoFile() {
    QTemporaryDir dir;
    const std::string path = dir.filePath("cancelled.attn.safetensors").toStdString();
    SynthOptions o;
    o.tokens = 4096;
    o.headDim = 128;
    int calls = 0;
    auto r = writeSyntheticTrace(path, o, [&](double, std::string_view) { return ++calls < 3; });
    QCOMPARE(r.status().code(), ErrorCode::Cancelled);
    QVERIFY(QDir(dir.path()).isEmpty());  // the temporary is gone too
}

QTEST_GUILESS_MAIN(TestSynth)
#include "tst_synth.moc"
