// Variants on the CPU: parsing, mask_mod, block classification/density vs brute force, and the
// linear-attention reference vs the O(T²) definition in float64.
#include <QtTest>

#include <cmath>
#include <random>

#include "attnscope/variants.h"
#include "brute_attention.h"

using namespace attnscope;

class TestVariants : public QObject {
    Q_OBJECT
private slots:
    void parse_data();
    void parse();
    void parseErrors_data();
    void parseErrors();
    void blockStates_data();
    void blockStates();
    void blockStatesFromData();
    void blockDensityAtLongContext();
    void linearReference_data();
    void linearReference();
    void variantReference();
};

void TestVariants::parse_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<int>("kind");
    QTest::addColumn<int>("combine");
    QTest::newRow("full") << "full" << int(VariantKind::Full) << int(MaskCombine::None);
    QTest::newRow("sliding") << "sliding:256" << int(VariantKind::Sliding) << int(MaskCombine::None);
    QTest::newRow("dilated") << "dilated:64:3" << int(VariantKind::DilatedSliding) << int(MaskCombine::None);
    QTest::newRow("softcap") << "softcap:20" << int(VariantKind::Softcap) << int(MaskCombine::None);
    QTest::newRow("topk") << "topk:8" << int(VariantKind::BlockSparse) << int(MaskCombine::None);
    QTest::newRow("linear") << "linear:0.05" << int(VariantKind::LinearAttention) << int(MaskCombine::None);
    QTest::newRow("and") << "sliding:64&document:3" << int(VariantKind::Sliding) << int(MaskCombine::And);
    QTest::newRow("or") << "prefix:16|sliding:8" << int(VariantKind::PrefixLM) << int(MaskCombine::Or);
}

void TestVariants::parse() {
    QFETCH(QString, text);
    QFETCH(int, kind);
    QFETCH(int, combine);
    auto v = parseVariant(text.toStdString());
    QVERIFY2(v.ok(), v.message().c_str());
    QCOMPARE(int(v->kind), kind);
    QCOMPARE(int(v->combine), combine);
    QCOMPARE(QString::fromStdString(v->label), text);
    if (text == "dilated:64:3") {
        QCOMPARE(v->window, int64_t(64));
        QCOMPARE(v->dilation, int64_t(3));
    }
    if (text == "linear:0.05") QCOMPARE(v->decay, 0.05f);
    if (combine != int(MaskCombine::None)) QVERIFY(v->other != nullptr);
}

void TestVariants::parseErrors_data() {
    // Every refusal of parseVariant, the vendor ("cudnn:") tokens' included: the message names the
    // token and says what is wrong.
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("expected");  // part of the message
    const QList<std::pair<const char*, const char*>> rows = {
        {"bogus", "unknown variant"},
        {"sliding:-3", "window must be a positive integer"},
        {"sliding:4:5", "takes 0-1 parameter(s)"},
        {"causal&", "composition needs a variant on each side"},
        {"causal&linear", "only mask variants compose"},
        {"gamma:1.5", "gamma must be in (0, 1]"},
        {"", "empty variant name"},
        {"cudnn:", "name the mask"},
        {"cudnn:document:4", "no \"document\" mask"},
        {"cudnn:linear", "no \"linear\" mask"},
        {"cudnn:decode", "no \"decode\" mask"},
        {"cudnn:sliding:64&document:2", "not a composition"},
        {"cudnn:cudnn:causal", "one \"cudnn:\" prefix"},
        {"cudnn:sliding:x", "window must be a positive integer"},
        {"cudnn:flash", "unknown variant"},
    };
    for (const auto& [text, expected] : rows) QTest::addRow("%s", *text ? text : "(empty)") << text << expected;
}

void TestVariants::parseErrors() {
    QFETCH(QString, text);
    QFETCH(QString, expected);
    auto v = parseVariant(text.toStdString());
    QVERIFY(!v.ok());
    QCOMPARE(v.status().code(), ErrorCode::InvalidArgument);
    QVERIFY2(v.message().find(text.toStdString()) != std::string::npos, v.message().c_str());
    QVERIFY2(v.message().find(expected.toStdString()) != std::string::npos, v.message().c_str());
}

namespace {
/// variantBlockState against the per-pair definition on every block.
void compareBlockStates(const VariantSpec& v, int64_t T, int64_t block) {
    const int64_t nb = (T + block - 1) / block;
    for (int64_t qb = 0; qb < nb; ++qb)
        for (int64_t kb = 0; kb < nb; ++kb) {
            int64_t allowed = 0, pairs = 0;
            for (int64_t q = qb * block; q < std::min(T, (qb + 1) * block); ++q)
                for (int64_t k = kb * block; k < std::min(T, (kb + 1) * block); ++k) {
                    allowed += variantAllows(v, T, q, k);
                    ++pairs;
                }
            const BlockState expect = allowed == 0       ? BlockState::Empty
                                      : allowed == pairs ? BlockState::Full
                                                         : BlockState::Partial;
            QCOMPARE(int(variantBlockState(v, T, qb, kb, block)), int(expect));
        }
}

/// variantRectState on random rectangles (any origin and size, partly outside T) against the pairs.
void compareRectStates(const VariantSpec& v, int64_t T, std::mt19937_64& rng) {
    std::uniform_int_distribution<int64_t> at(-3, T + 3), size(1, 40);
    for (int n = 0; n < 50; ++n) {
        const int64_t q0 = at(rng), k0 = at(rng), q1 = q0 + size(rng), k1 = k0 + size(rng);
        int64_t allowed = 0, pairs = 0;
        for (int64_t q = std::max<int64_t>(q0, 0); q < std::min(q1, T); ++q)
            for (int64_t k = std::max<int64_t>(k0, 0); k < std::min(k1, T); ++k) {
                allowed += variantAllows(v, T, q, k);
                ++pairs;
            }
        const BlockState expect = allowed == 0       ? BlockState::Empty
                                  : allowed == pairs ? BlockState::Full
                                                     : BlockState::Partial;
        QCOMPARE(int(variantRectState(v, T, q0, q1, k0, k1)), int(expect));
    }
}

VariantSpec randomBlockList(std::mt19937_64& rng, int64_t T, int64_t listBlock, double keep) {
    VariantSpec v;
    v.kind = VariantKind::BlockSparse;
    v.blockSize = listBlock;
    const int64_t nb = (T + listBlock - 1) / listBlock;
    auto flags = std::make_shared<std::vector<uint8_t>>(size_t(nb * nb));
    std::bernoulli_distribution kept(keep);
    for (auto& f : *flags) f = kept(rng);
    v.blocks = std::move(flags);
    return v;
}
}  // namespace

void TestVariants::blockStates_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<qint64>("tokens");
    QTest::addColumn<qint64>("blockSize");
    for (const char* t : {"full", "causal", "sliding:40", "prefix:50", "document:5", "dilated:9:4", "alibi",
                          "sliding:30&document:3", "prefix:20|sliding:10"})
        for (qint64 T : {1, 97, 200})
            QTest::newRow((std::string(t) + "/" + std::to_string(T)).c_str()) << t << T << qint64(32);
}

void TestVariants::blockStates() {
    QFETCH(QString, text);
    QFETCH(qint64, tokens);
    QFETCH(qint64, blockSize);
    const int64_t T = tokens, block = blockSize;
    auto v = parseVariant(text.toStdString());
    QVERIFY2(v.ok(), v.message().c_str());
    compareBlockStates(*v, T, block);
    // The CPU reference spec encodes the same mask (OR compositions have no MaskSpec form).
    auto spec = referenceSpec(*v, T, 0, 4, 0.125f);
    QCOMPARE(spec.ok(), v->combine != MaskCombine::Or);
    if (spec.ok())
        for (int64_t q = 0; q < T; ++q)
            for (int64_t k = 0; k < T; ++k) QCOMPARE(spec->mask.allows(q, k), variantAllows(*v, T, q, k));
    // Density at block 128 vs a brute-force count.
    const int64_t bs = 128, n = (T + bs - 1) / bs;
    int64_t computed = 0;
    for (int64_t qb = 0; qb < n; ++qb)
        for (int64_t kb = 0; kb < n; ++kb) {
            bool any = false;
            for (int64_t q = qb * bs; q < std::min(T, (qb + 1) * bs) && !any; ++q)
                for (int64_t k = kb * bs; k < std::min(T, (kb + 1) * bs) && !any; ++k) any = variantAllows(*v, T, q, k);
            computed += any;
        }
    QCOMPARE(blockDensity(*v, T), double(computed) / double(n * n));
}

// Masks whose block states come from data (block lists, explicit document ids) and their
// compositions, on fresh random data: the block-level shortcut (an empty block decided without
// evaluating its pairs) must agree with the per-pair definition.
void TestVariants::blockStatesFromData() {
    const uint64_t seed = testing::freshSeed();
    std::mt19937_64 rng(seed);
    qInfo("seed %llu", static_cast<unsigned long long>(seed));
    for (int64_t T : {1, 77, 250}) {
        for (int64_t listBlock : {8, 16, 32})
            for (double keep : {0.0, 0.3, 1.0}) compareBlockStates(randomBlockList(rng, T, listBlock, keep), T, 16);
        VariantSpec docs;
        docs.kind = VariantKind::Document;
        std::uniform_int_distribution<int> doc(0, 5);
        for (int64_t t = 0; t < T; ++t) docs.documentIds.push_back(doc(rng));
        compareBlockStates(docs, T, 16);  // ids in any order
        std::sort(docs.documentIds.begin(), docs.documentIds.end());
        compareBlockStates(docs, T, 16);  // contiguous documents
        compareRectStates(docs, T, rng);
        for (MaskCombine c : {MaskCombine::And, MaskCombine::Or}) {
            VariantSpec list = randomBlockList(rng, T, 16, 0.4);
            list.combine = c;
            list.other = std::make_shared<const VariantSpec>(docs);
            compareBlockStates(list, T, 16);
            auto sliding = parseVariant("sliding:40");
            QVERIFY(sliding.ok());
            sliding->combine = c;
            sliding->other = std::make_shared<const VariantSpec>(list);
            compareBlockStates(*sliding, T, 32);
            compareRectStates(*sliding, T, rng);
        }
    }
}

// A trace-derived block list at 131,072 tokens (1,024² blocks): density counts blocks from the
// list, not from 10⁹ mask_mod calls (the profiler computes it for every such variant).
void TestVariants::blockDensityAtLongContext() {
    const int64_t T = 131072, bs = 128, nb = T / bs;
    VariantSpec v;
    v.kind = VariantKind::BlockSparse;
    v.blockSize = bs;
    auto flags = std::make_shared<std::vector<uint8_t>>(size_t(nb * nb), uint8_t(0));
    int64_t kept = 0;
    for (int64_t qb = 0; qb < nb; ++qb)
        for (int64_t kb : {int64_t(0), qb / 2, qb}) {
            uint8_t& f = (*flags)[size_t(qb * nb + kb)];
            kept += f == 0;
            f = 1;
        }
    v.blocks = std::move(flags);
    QCOMPARE(blockDensity(v, T), double(kept) / double(nb * nb));
}

void TestVariants::linearReference_data() {
    QTest::addColumn<int>("T");
    QTest::addColumn<int>("d");
    QTest::addColumn<float>("decay");
    QTest::newRow("no decay") << 37 << 8 << 0.0f;
    QTest::newRow("decay") << 64 << 16 << 0.1f;
    QTest::newRow("T=1") << 1 << 4 << 0.5f;
}

void TestVariants::linearReference() {
    QFETCH(int, T);
    QFETCH(int, d);
    QFETCH(float, decay);
    std::mt19937 rng(std::random_device{}());
    std::normal_distribution<float> nd;
    MatrixRM q(T, d), k(T, d), v(T, d);
    for (MatrixRM* m : {&q, &k, &v})
        for (Eigen::Index i = 0; i < m->size(); ++i) m->data()[i] = nd(rng);
    auto out = linearAttentionReference(q, k, v, decay);
    QVERIFY2(out.ok(), out.message().c_str());
    double err = 0, norm = 0;
    for (int i = 0; i < T; ++i)
        for (int c = 0; c < d; ++c) {
            double acc = 0;
            for (int j = 0; j <= i; ++j)
                acc += std::exp(-double(decay) * (i - j)) * q.row(i).cast<double>().dot(k.row(j).cast<double>()) *
                       double(v(j, c));
            err += (acc - (*out)(i, c)) * (acc - (*out)(i, c));
            norm += acc * acc;
        }
    QVERIFY2(std::sqrt(err / std::max(norm, 1e-30)) < 1e-6, "linear attention reference differs from brute force");
    QVERIFY(!linearAttentionReference(q, k, MatrixRM(T + 1, d), decay).ok());
}

void TestVariants::variantReference() {
    // Decode = the last row of causal attention; GQA maps query head h to kv head h / (H / Hkv);
    // linear attention = linearAttentionReference per head; bad sizes are refused.
    std::mt19937 rng(std::random_device{}());
    std::normal_distribution<float> nd;
    VariantProblem p;
    p.batch = 2, p.heads = 4, p.kvHeads = 2, p.tokens = 37, p.headDim = 8;
    auto random = [&](size_t n) {
        std::vector<float> x(n);
        for (auto& e : x) e = nd(rng);
        return x;
    };
    const size_t headSize = size_t(p.tokens) * p.headDim;
    const auto q = random(p.batch * p.heads * headSize), k = random(p.batch * p.kvHeads * headSize),
               v = random(p.batch * p.kvHeads * headSize);
    auto causal = variantReferenceAttention(*parseVariant("causal"), p, q, k, v);
    QVERIFY2(causal.ok(), causal.message().c_str());
    std::vector<float> qLast;
    for (int bh = 0; bh < p.batch * p.heads; ++bh)
        qLast.insert(qLast.end(), q.begin() + (bh + 1) * headSize - p.headDim, q.begin() + (bh + 1) * headSize);
    auto decode = variantReferenceAttention(*parseVariant("decode"), p, qLast, k, v);
    QVERIFY2(decode.ok(), decode.message().c_str());
    for (int bh = 0; bh < p.batch * p.heads; ++bh) {
        for (int c = 0; c < p.headDim; ++c)
            QVERIFY(std::fabs(decode->out[bh * p.headDim + c] - causal->out[(bh + 1) * headSize - p.headDim + c]) <
                    1e-12);
        QVERIFY(std::fabs(decode->lse[bh] - causal->lse[(bh + 1) * p.tokens - 1]) < 1e-12);
    }
    auto linear = variantReferenceAttention(*parseVariant("linear:0.1"), p, q, k, v);
    QVERIFY2(linear.ok(), linear.message().c_str());
    const int b = 1, h = 3, hk = h / (p.heads / p.kvHeads);
    auto view = [&](const std::vector<float>& x, size_t head) {
        return MatrixRM(Eigen::Map<const MatrixRM>(x.data() + head * headSize, p.tokens, p.headDim));
    };
    auto one = linearAttentionReference(view(q, b * p.heads + h), view(k, b * p.kvHeads + hk),
                                        view(v, b * p.kvHeads + hk), 0.1f);
    QVERIFY(one.ok());
    for (int64_t i = 0; i < p.tokens * p.headDim; ++i)
        QCOMPARE(float(linear->out[(b * p.heads + h) * headSize + size_t(i)]), one->data()[i]);
    QCOMPARE(variantReferenceAttention(*parseVariant("causal"), p, qLast, k, v).status().code(), ErrorCode::Shape);
}

QTEST_GUILESS_MAIN(TestVariants)
#include "tst_variants.moc"
