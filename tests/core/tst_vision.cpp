// Vision traces: the `image` tensor (reading, refusals, a file changed while open), the token
// layout, and the vision analyses (patch distance, prefix share) against a float64 brute force
// on fresh random inputs over several shapes (with and without prefix tokens, GQA, non-square
// grids, a learned sink, a weights-only trace).
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <random>
#include <unistd.h>

#include "attnscope/attention.h"
#include "attnscope/trace.h"
#include "attnscope/vision.h"
#include "brute_attention.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace testfixture;

namespace {

/// A vision trace's metadata: `prefix` tokens "[CLS]", "[REG0]" … then rows×cols patches "pR,C".
TraceMetadata visionMeta(int layers, int heads, int kvHeads, int dim, int prefix, int rows, int cols) {
    const int64_t T = prefix + int64_t(rows) * cols;
    TraceMetadata m = smallMetadata(layers, heads, kvHeads, dim, T);
    m.kind = TraceKind::Vision;
    m.patchRows = rows;
    m.patchCols = cols;
    m.tokenIds.clear();
    for (int64_t t = 0; t < T; ++t)
        m.tokens[size_t(t)] = t == 0 && prefix > 0 ? "[CLS]"
                              : t < prefix         ? "[REG" + std::to_string(t - 1) + "]"
                                                   : patchTokenName(int((t - prefix) / cols), int((t - prefix) % cols));
    for (auto& c : m.layers) c.causal = false;
    return m;
}

std::vector<uint8_t> randomPixels(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng() & 0xFF);
    return v;
}

/// Brute-force vision metrics from dense float64 probabilities (the definitions in docs/analysis.md).
VisionHeadStats bruteVision(const MatrixRMd& p, const VisionLayout& L) {
    VisionHeadStats s;
    s.prefixTokenShare.assign(size_t(L.prefix), 0.0);
    double distance = 0;
    for (int64_t i = L.prefix; i < L.tokens; ++i) {
        const int ri = L.patchRow(i), ci = L.patchCol(i);
        double mass = 0, weighted = 0;
        for (int64_t j = L.prefix; j < L.tokens; ++j) {
            const double dr = ri - L.patchRow(j), dc = ci - L.patchCol(j);
            mass += p(i, j);
            weighted += p(i, j) * std::sqrt(dr * dr + dc * dc);
        }
        if (mass > 0) {
            distance += weighted / mass;
            ++s.patchQueries;
        }
        for (int64_t j = 0; j < L.prefix; ++j) s.prefixTokenShare[size_t(j)] += p(i, j) / double(L.patches());
    }
    s.patchDistance = s.patchQueries ? distance / double(s.patchQueries) : 0;
    for (double v : s.prefixTokenShare) s.prefixShare += v;
    return s;
}

MatrixRM randomMatrix(int64_t rows, int64_t cols, std::mt19937_64& rng, float sigma) {
    std::normal_distribution<float> nd(0.f, sigma);
    MatrixRM m(rows, cols);
    for (int64_t i = 0; i < m.size(); ++i) m.data()[i] = nd(rng);
    return m;
}

// Tolerances: the engine's probabilities are float32 (relative error ~1e-6), summed in float64.
constexpr double kDistanceTol = 1e-4;  ///< patches
constexpr double kShareTol = 1e-5;

void compareStats(const VisionHeadStats& got, const VisionHeadStats& want, const QString& where) {
    QVERIFY2(
        std::abs(got.patchDistance - want.patchDistance) < kDistanceTol,
        qPrintable(where + QString(": patchDistance %1 vs brute %2").arg(got.patchDistance).arg(want.patchDistance)));
    QCOMPARE(got.patchQueries, want.patchQueries);
    QVERIFY2(std::abs(got.prefixShare - want.prefixShare) < kShareTol,
             qPrintable(where + QString(": prefixShare %1 vs brute %2").arg(got.prefixShare).arg(want.prefixShare)));
    QCOMPARE(got.prefixTokenShare.size(), want.prefixTokenShare.size());
    for (size_t t = 0; t < got.prefixTokenShare.size(); ++t)
        QVERIFY2(std::abs(got.prefixTokenShare[t] - want.prefixTokenShare[t]) < kShareTol,
                 qPrintable(where + QString(": prefix token %1 share %2 vs brute %3")
                                        .arg(t)
                                        .arg(got.prefixTokenShare[t])
                                        .arg(want.prefixTokenShare[t])));
}

}  // namespace

class TestVision : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    QString path(const QString& name) const { return m_dir.filePath(name); }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void imageRoundTrip() {
        const uint64_t seed = testing::freshSeed();
        const TraceMetadata m = visionMeta(1, 2, 1, 8, 1, 3, 4);
        TraceWriter w = randomTrace(m, DType::F16);
        const int width = 7, height = 5;
        const auto pixels = randomPixels(size_t(width * height * 3), seed);
        w.addImage(width, height, pixels);
        const std::string file = path("image.attn.safetensors").toStdString();
        QVERIFY(w.write(file).ok());
        auto t = Trace::open(file);
        QVERIFY2(t.ok(), t.message().c_str());
        const TensorView* view = (*t)->imageTensor();
        QVERIFY(view);
        QCOMPARE(view->dtype, DType::U8);
        QCOMPARE(view->shape, (std::vector<int64_t>{height, width, 3}));
        auto img = (*t)->image();
        QVERIFY2(img.ok(), img.message().c_str());
        QCOMPARE(img->width, width);
        QCOMPARE(img->height, height);
        QVERIFY2(img->rgb == pixels, qPrintable(QString("seed %1").arg(seed)));
        // Patch (r, c) covers rows [r·H/rows, (r+1)·H/rows): the last patch ends at the edge.
        QCOMPARE(img->rowBegin(3, 3), height);
        QCOMPARE(img->colBegin(1, 4), 1);
        // No image: nullptr and an Unsupported error naming the tensor.
        QVERIFY(randomTrace(m, DType::F16).write(file).ok());
        auto plain = Trace::open(file);
        QVERIFY(plain.ok());
        QVERIFY(!(*plain)->imageTensor());
        QCOMPARE((*plain)->image().status().code(), ErrorCode::Unsupported);
        QVERIFY((*plain)->image().message().find("image") != std::string::npos);
    }

    void imageRefused_data() {
        QTest::addColumn<int>("kind");
        QTest::addColumn<QString>("name");
        QTest::addColumn<QString>("dtype");
        QTest::addColumn<QList<qint64>>("shape");
        QTest::addColumn<qint64>("bytes");
        QTest::addColumn<int>("code");
        QTest::addColumn<QString>("expected");
        const int vision = int(TraceKind::Vision), lm = int(TraceKind::CausalLM);
        const int format = int(ErrorCode::Format), shape = int(ErrorCode::Shape);
        QTest::newRow("not a vision trace") << lm << "image"
                                            << "U8" << QList<qint64>{4, 5, 3} << 60LL << format
                                            << "tensor image (the input image): only allowed when "
                                               "__metadata__.kind is 'vision' (it is 'causal-lm')";
        QTest::newRow("float image") << vision << "image"
                                     << "F16" << QList<qint64>{4, 5, 3} << 120LL << format
                                     << "tensor image (the input image): dtype 'F16' (expected U8: RGB bytes)";
        QTest::newRow("two dims") << vision << "image"
                                  << "U8" << QList<qint64>{4, 15} << 60LL << shape
                                  << "shape [4,15] (expected [height, width, 3]";
        QTest::newRow("four channels") << vision << "image"
                                       << "U8" << QList<qint64>{4, 5, 4} << 80LL << shape
                                       << "shape [4,5,4] (expected [height, width, 3] with 1 ≤ height, width ≤ 8192)";
        QTest::newRow("too tall") << vision << "image"
                                  << "U8" << QList<qint64>{8193, 1, 3} << 8193LL * 3 << shape << "shape [8193,1,3]";
        QTest::newRow("empty") << vision << "image"
                               << "U8" << QList<qint64>{0, 5, 3} << 0LL << shape << "shape [0,5,3]";
        QTest::newRow("short data") << vision << "image"
                                    << "U8" << QList<qint64>{4, 5, 3} << 59LL << format
                                    << "tensor image: shape [4,5,3] × U8 needs 60 bytes but data_offsets span 59";
        QTest::newRow("U8 layer tensor") << vision << "layers.0.out"
                                         << "U8" << QList<qint64>{2, 13, 8} << 208LL << format
                                         << "tensor layers.0.out: dtype 'U8' is only allowed for tensor image "
                                            "(expected F32, F16 or BF16)";
        QTest::newRow("unknown dtype") << vision << "image"
                                       << "I8" << QList<qint64>{4, 5, 3} << 60LL << int(ErrorCode::Unsupported)
                                       << "tensor image: dtype 'I8' is not supported (expected U8)";
    }

    void imageRefused() {
        QFETCH(int, kind);
        QFETCH(QString, name);
        QFETCH(QString, dtype);
        QFETCH(QList<qint64>, shape);
        QFETCH(qint64, bytes);
        QFETCH(int, code);
        QFETCH(QString, expected);
        TraceMetadata m = visionMeta(1, 2, 1, 8, 1, 3, 4);
        m.kind = TraceKind(kind);
        TraceWriter w = randomTrace(m, DType::F16);
        w.addRawTensor(name.toStdString(), DType::U8, {}, std::vector<std::byte>(size_t(bytes)));
        // Header surgery: the dtype and shape as given (the writer only knows dtypes it can store).
        const auto image = editImage(w.serialize(), [&](Json& h, std::vector<std::byte>&) {
            Json& e = member(h, name.toStdString());
            e.set("dtype", dtype.toStdString());
            Json s = Json::array();
            for (qint64 d : shape) s.push(int64_t(d));
            e.set("shape", s);
        });
        const std::string file = path("bad.attn.safetensors").toStdString();
        QVERIFY(writeFileAtomic(file, image.data(), image.size()).ok());
        auto t = Trace::open(file);
        QVERIFY(!t.ok());
        QCOMPARE(int(t.status().code()), code);
        QVERIFY2(t.message().rfind(file + ": ", 0) == 0, t.message().c_str());
        QVERIFY2(t.message().find(expected.toStdString()) != std::string::npos, t.message().c_str());
    }

    void imageOfAChangedFile() {
        TraceWriter w = randomTrace(visionMeta(1, 2, 1, 8, 1, 3, 4), DType::F16);
        w.addImage(64, 64, randomPixels(64 * 64 * 3, 7));
        const std::string file = path("changed.attn.safetensors").toStdString();
        QVERIFY(w.write(file).ok());
        auto t = Trace::open(file);
        QVERIFY(t.ok());
        QVERIFY(::truncate(file.c_str(), 100) == 0);
        auto img = (*t)->image();
        QVERIFY(!img.ok());
        QCOMPARE(img.status().code(), ErrorCode::IoError);
        QVERIFY2(img.message().find("changed on disk") != std::string::npos, img.message().c_str());
    }

    void layout() {
        const TraceMetadata m = visionMeta(1, 2, 1, 8, 5, 3, 4);
        auto l = visionLayout(m, 17, "x");
        QVERIFY(l.ok());
        QCOMPARE(l->prefix, int64_t(5));
        QCOMPARE(l->patchToken(2, 3), int64_t(16));
        QCOMPARE(l->patchRow(16), 2);
        QCOMPARE(l->patchCol(9), 0);
        QCOMPARE(l->patchRow(9), 1);
        QCOMPARE(patchTokenName(2, 3), std::string("p2,3"));
        TraceMetadata text = smallMetadata(1, 2, 1, 8, 6);
        auto refused = visionLayout(text, 6, "lm.attn.safetensors");
        QCOMPARE(refused.status().code(), ErrorCode::InvalidArgument);
        QVERIFY(refused.message().find("lm.attn.safetensors: not a vision trace") == 0);
    }

    void headAgainstBrute_data() {
        QTest::addColumn<int>("prefix");
        QTest::addColumn<int>("rows");
        QTest::addColumn<int>("cols");
        QTest::addColumn<int>("dim");
        QTest::addColumn<float>("sink");
        QTest::addColumn<int>("window");
        QTest::newRow("CLS, 3x4") << 1 << 3 << 4 << 16 << -INFINITY << 0;
        QTest::newRow("no prefix, 5x5 (SigLIP)") << 0 << 5 << 5 << 8 << -INFINITY << 0;
        QTest::newRow("CLS + 4 registers, 7x3") << 5 << 7 << 3 << 32 << -INFINITY << 0;
        QTest::newRow("several tiles, 16x18 + 4") << 4 << 16 << 18 << 16 << -INFINITY << 0;
        QTest::newRow("learned sink, 9x11 + 2") << 2 << 9 << 11 << 16 << 1.5f << 0;
        QTest::newRow("window mask, 12x12 + 1") << 1 << 12 << 12 << 16 << -INFINITY << 20;
    }

    void headAgainstBrute() {
        QFETCH(int, prefix);
        QFETCH(int, rows);
        QFETCH(int, cols);
        QFETCH(int, dim);
        QFETCH(float, sink);
        QFETCH(int, window);
        const uint64_t seed = testing::freshSeed();
        std::mt19937_64 rng(seed);
        VisionLayout L;
        L.rows = rows;
        L.cols = cols;
        L.prefix = prefix;
        L.tokens = prefix + int64_t(rows) * cols;
        // σ 1.5 gives peaked rows (entropy well below uniform), where errors would show.
        const MatrixRM q = randomMatrix(L.tokens, dim, rng, 1.5f), k = randomMatrix(L.tokens, dim, rng, 1.5f);
        AttentionSpec spec;
        spec.scale = float(1.0 / std::sqrt(double(dim)));
        spec.sinkLogit = sink;
        spec.mask.window = window;
        auto got = analyzeVisionHead(q, k, spec, L);
        QVERIFY2(got.ok(), got.message().c_str());
        const auto brute = testing::bruteAttention(q, k, spec);
        compareStats(*got, bruteVision(brute.p, L), QString("seed %1").arg(seed));
    }

    void traceAgainstBrute_data() {
        QTest::addColumn<bool>("weightsOnly");
        QTest::newRow("q/k/v, GQA") << false;
        QTest::newRow("weights-only") << true;
    }

    /// analyzeVision over a written trace (2 layers, 4 query heads on 2 kv heads, F32) equals the
    /// brute force on the stored values, per head; the weights-only path reads stored rows.
    void traceAgainstBrute() {
        QFETCH(bool, weightsOnly);
        const uint64_t seed = testing::freshSeed();
        const int prefix = 3, rows = 6, cols = 7, heads = 4, kv = 2, dim = 16;
        const TraceMetadata m = visionMeta(2, heads, kv, dim, prefix, rows, cols);
        const int64_t T = int64_t(m.tokens.size());
        TraceWriter qkv = randomTrace(m, DType::F32, uint32_t(seed));
        const std::string qkvFile = path("qkv.attn.safetensors").toStdString();
        QVERIFY(qkv.write(qkvFile).ok());
        auto source = Trace::open(qkvFile);
        QVERIFY(source.ok());
        auto layout = visionLayout(**source);
        QVERIFY(layout.ok());
        std::vector<MatrixRMd> probabilities;  // layer-major, per query head
        for (int l = 0; l < 2; ++l)
            for (int h = 0; h < heads; ++h) {
                auto q = (*source)->head(l, h, Which::Q);
                auto k = (*source)->head(l, h, Which::K);
                QVERIFY(q.ok() && k.ok());
                probabilities.push_back(testing::bruteAttention(q->m, k->m, specForLayer(m.layers[0], h)).p);
            }
        std::string file = qkvFile;
        if (weightsOnly) {
            TraceWriter w(m);
            for (int l = 0; l < 2; ++l) {
                std::vector<float> attn;
                for (int h = 0; h < heads; ++h) {
                    const MatrixRMd& p = probabilities[size_t(l * heads + h)];
                    for (int64_t i = 0; i < p.size(); ++i) attn.push_back(float(p.data()[i]));
                }
                w.addTensor("layers." + std::to_string(l) + ".attn", DType::F32, {heads, T, T}, attn);
            }
            file = path("weights.attn.safetensors").toStdString();
            QVERIFY(w.write(file).ok());
        }
        auto t = Trace::open(file);
        QVERIFY2(t.ok(), t.message().c_str());
        QCOMPARE((*t)->hasQK(), !weightsOnly);
        auto v = analyzeVision(**t);
        QVERIFY2(v.ok(), v.message().c_str());
        QCOMPARE(v->heads.size(), size_t(2 * heads));
        QCOMPARE(v->prefixNames, (std::vector<std::string>{"[CLS]", "[REG0]", "[REG1]"}));
        for (size_t i = 0; i < v->heads.size(); ++i) {
            QCOMPARE(v->heads[i].layer, int(i) / heads);
            QCOMPARE(v->heads[i].head, int(i) % heads);
            compareStats(v->heads[i], bruteVision(probabilities[i], *layout),
                         QString("seed %1 head %2").arg(seed).arg(i));
        }
        // One query's row for the overlay: the brute row split into prefix and the patch grid.
        const int64_t query = layout->patchToken(2, 5);
        auto row = queryPatchAttention(**t, 1, 3, query);
        QVERIFY2(row.ok(), row.message().c_str());
        QCOMPARE(row->rows, rows);
        QCOMPARE(row->cols, cols);
        QCOMPARE(row->prefix.size(), size_t(prefix));
        const MatrixRMd& p = probabilities[size_t(heads + 3)];
        float mx = 0;
        for (int64_t j = 0; j < T; ++j) {
            const double got = j < prefix ? row->prefix[size_t(j)] : row->patches[size_t(j - prefix)];
            QVERIFY2(std::abs(got - p(query, j)) < kShareTol, qPrintable(QString("seed %1 key %2").arg(seed).arg(j)));
            if (j >= prefix) mx = std::max(mx, float(p(query, j)));
        }
        QVERIFY(std::abs(row->maxPatch - mx) < kShareTol);
        // The JSON keys (docs/json.md style).
        const Json j = toJson(*v);
        QVERIFY(j.find("layout") && j.find("layout")->find("prefixTokens"));
        QCOMPARE(j.find("heads")->size(), size_t(2 * heads));
        QVERIFY(j.find("heads")->asArray()[0].find("patchDistance"));
    }

    void refusesTextTracesAndCancels() {
        const std::string file = path("lm.attn.safetensors").toStdString();
        QVERIFY(randomTrace(smallMetadata(1, 2, 1, 8, 6), DType::F16).write(file).ok());
        auto t = Trace::open(file);
        QVERIFY(t.ok());
        QCOMPARE(analyzeVision(**t).status().code(), ErrorCode::InvalidArgument);
        const std::string vfile = path("cancel.attn.safetensors").toStdString();
        QVERIFY(randomTrace(visionMeta(2, 2, 1, 8, 1, 10, 10), DType::F16).write(vfile).ok());
        auto v = Trace::open(vfile);
        QVERIFY(v.ok());
        auto cancelled = analyzeVision(**v, {}, [](double f, std::string_view) { return f < 0.3; });
        QCOMPARE(cancelled.status().code(), ErrorCode::Cancelled);
    }
};

QTEST_GUILESS_MAIN(TestVision)
#include "tst_vision.moc"
