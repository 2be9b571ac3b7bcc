// The variant language: every example in resources/variants equals its built-in twin (float64
// brute force, block states, the tiled CPU engine), examples without a twin match their
// definition pair by pair, parse errors name line, column and expectation, 1,000 fuzzed
// malformed programs give clear errors and no crash, and division by zero, out-of-range
// indices, overflow and NaN scores give their documented results.
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <functional>
#include <random>
#include <regex>

#include "attnscope/split.h"
#include "attnscope/variant_expr.h"
#include "attnscope/variant_twin.h"
#include "attnscope/variants.h"
#include "brute_attention.h"

using namespace attnscope;

namespace {

std::string examplePath(const std::string& name) {
    return std::string(ATTNSCOPE_SOURCE_DIR) + "/resources/variants/" + name;
}

struct Problem {
    VariantProblem shape;
    std::vector<float> q, k, v;
};

Problem randomProblem(int batch, int heads, int kvHeads, int64_t T, int D, uint64_t seed) {
    Problem p;
    p.shape.batch = batch, p.shape.heads = heads, p.shape.kvHeads = kvHeads, p.shape.tokens = T, p.shape.headDim = D;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.5f);  // large enough that softcap bites
    auto fill = [&](std::vector<float>& x, size_t count) {
        x.resize(count);
        for (auto& e : x) e = n(rng);
    };
    fill(p.q, size_t(batch) * heads * T * D);
    fill(p.k, size_t(batch) * kvHeads * T * D);
    fill(p.v, size_t(batch) * kvHeads * T * D);
    return p;
}

double maxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isinf(a[i]) && a[i] == b[i]) continue;  // both -inf lse (empty rows)
        m = std::max(m, std::fabs(a[i] - b[i]));
    }
    return m;
}

VariantSpec mustParse(const std::string& token) {
    auto v = parseVariant(token);
    if (!v) qFatal("%s", v.message().c_str());
    return *v;
}

/// Every error message starts with ORIGIN:LINE:COL: and says what was expected or what is wrong.
const std::regex kErrorShape(R"(^[^:]+:\d+:\d+: .{8,})");

}  // namespace

class TestVariantExpr : public QObject {
    Q_OBJECT
private slots:
    void examplesEqualTheirTwins_data();
    void examplesEqualTheirTwins();
    void examplesWithoutTwins();
    void tiledEngineRunsPrograms();
    void parseErrors_data();
    void parseErrors();
    void fuzzedMalformedPrograms();
    void intervalsAreSound();
    void definedResults();
    void tokensAndLabels();
    void cudaSource();
};

void TestVariantExpr::examplesEqualTheirTwins_data() {
    QTest::addColumn<QString>("file");
    int rows = 0;
    for (const auto& e : std::filesystem::directory_iterator(examplePath(""))) {
        if (e.path().extension() != ".attnvar" || variantTwinToken(e.path().string()).empty()) continue;
        QTest::newRow(e.path().filename().string().c_str()) << QString::fromStdString(e.path().string());
        ++rows;
    }
    QVERIFY2(rows >= 6, "expected at least 6 examples with a built-in twin in resources/variants");
}

void TestVariantExpr::examplesEqualTheirTwins() {
    QFETCH(QString, file);
    const VariantSpec custom = mustParse("custom:" + file.toStdString());
    const VariantSpec twin = mustParse(variantTwinToken(file.toStdString()));
    QCOMPARE(custom.kind, VariantKind::Custom);
    const uint64_t seed = testing::freshSeed();
    // Shapes: long enough to cross the 1024 window / prefix, GQA, several heads (ALiBi slopes),
    // a ragged last block.
    struct Shape {
        int b, h, hkv;
        int64_t T;
        int d;
    };
    for (Shape s : {Shape{1, 2, 1, 1100, 16}, Shape{2, 4, 2, 301, 32}, Shape{1, 3, 3, 1400, 8}}) {
        Problem p = randomProblem(s.b, s.h, s.hkv, s.T, s.d, seed + uint64_t(s.T));
        auto a = variantReferenceAttention(custom, p.shape, p.q, p.k, p.v);
        auto b = variantReferenceAttention(twin, p.shape, p.q, p.k, p.v);
        QVERIFY2(a && b, (a ? b.message() : a.message()).c_str());
        // Same mask and the same float64 score arithmetic: equal up to rounding order (1e-12).
        const double dOut = maxAbsDiff(a->out, b->out), dLse = maxAbsDiff(a->lse, b->lse);
        QVERIFY2(dOut <= 1e-12 && dLse <= 1e-12,
                 qPrintable(QString("T=%1: |dO| %2, |dlse| %3 (seed %4)").arg(s.T).arg(dOut).arg(dLse).arg(seed)));
        // Block states (what the GPU's BlockMask and the profiler's FLOPs use) agree everywhere.
        const int64_t nb = (s.T + 127) / 128;
        for (int64_t qb = 0; qb < nb; ++qb)
            for (int64_t kb = 0; kb < nb; ++kb)
                QCOMPARE(int(variantBlockState(custom, s.T, qb, kb, 128)),
                         int(variantBlockState(twin, s.T, qb, kb, 128)));
        QCOMPARE(blockDensity(custom, s.T), blockDensity(twin, s.T));
    }
}

void TestVariantExpr::examplesWithoutTwins() {
    struct Case {
        const char* file;
        std::function<bool(int64_t, int64_t)> rule;
    };
    const Case cases[] = {
        {"streamingllm.attnvar", [](int64_t q, int64_t k) { return k <= q && (k < 4 || q - k < 1024); }},
        {"neighbourhood_2d.attnvar",
         [](int64_t q, int64_t k) { return std::abs(q / 32 - k / 32) <= 3 && std::abs(q % 32 - k % 32) <= 3; }},
    };
    for (const Case& c : cases) {
        const VariantSpec v = mustParse("custom:" + examplePath(c.file));
        const int64_t T = 1300;
        for (int64_t q = 0; q < T; ++q)
            for (int64_t k = 0; k < T; ++k)
                if (variantAllows(v, T, q, k) != c.rule(q, k))
                    QFAIL(qPrintable(QString("%1: pair (%2, %3)").arg(c.file).arg(q).arg(k)));
        // Block states against the pairs.
        for (int64_t qb = 0; qb * 128 < T; ++qb)
            for (int64_t kb = 0; kb * 128 < T; ++kb) {
                int allowed = 0, total = 0;
                for (int64_t q = qb * 128; q < std::min(T, qb * 128 + 128); ++q)
                    for (int64_t k = kb * 128; k < std::min(T, kb * 128 + 128); ++k, ++total) allowed += c.rule(q, k);
                const BlockState want = allowed == 0       ? BlockState::Empty
                                        : allowed == total ? BlockState::Full
                                                           : BlockState::Partial;
                QCOMPARE(int(variantBlockState(v, T, qb, kb, 128)), int(want));
            }
    }
}

/// The tiled multi-threaded CPU engine (maps, recall, the CPU profiler) with a program in its
/// AttentionSpec equals the float64 brute force of the program and of the twin.
void TestVariantExpr::tiledEngineRunsPrograms() {
    const uint64_t seed = testing::freshSeed();
    for (const char* name : {"alibi.attnvar", "softcap.attnvar", "document_causal.attnvar", "streamingllm.attnvar",
                             "neighbourhood_2d.attnvar"}) {
        const VariantSpec v = mustParse("custom:" + examplePath(name));
        const int H = 4, D = 32;
        const int64_t T = 1200;
        Problem p = randomProblem(1, H, H, T, D, seed);
        auto brute = variantReferenceAttention(v, p.shape, p.q, p.k, p.v);
        QVERIFY(brute);
        for (int h : {0, 3}) {
            auto spec = referenceSpec(v, T, h, H, 1.0f / std::sqrt(float(D)));
            QVERIFY2(spec, spec.message().c_str());
            auto view = [&](const std::vector<float>& x) {
                return MatrixRM(Eigen::Map<const MatrixRM>(x.data() + size_t(h) * T * D, T, D));
            };
            auto out = referenceAttention(view(p.q), view(p.k), view(p.v), *spec);
            QVERIFY2(out, out.message().c_str());
            double err = 0, ref = 0;
            for (int64_t i = 0; i < T; ++i)
                for (int c = 0; c < D; ++c) {
                    const double r = brute->out[(size_t(h) * T + size_t(i)) * D + size_t(c)];
                    err = std::max(err, std::fabs(double((*out).out(i, c)) - r));
                    ref = std::max(ref, std::fabs(r));
                }
            // float32 tiles against float64: 2e-5 of the largest output.
            QVERIFY2(err <= 2e-5 * std::max(1.0, ref),
                     qPrintable(QString("%1 head %2: max |dO| %3 (seed %4)").arg(name).arg(h).arg(err).arg(seed)));
        }
    }
}

void TestVariantExpr::parseErrors_data() {
    QTest::addColumn<QString>("text");
    QTest::addColumn<QString>("message");
    QTest::newRow("empty") << ""
                           << "expression:1:1: expected a 'mask:' or a 'score:' statement";
    QTest::newRow("missing operand") << "mask: k < "
                                     << "expression:1:11: expected an expression, found end of input";
    QTest::newRow("second line") << "const W = 4\nmask: k < W &&"
                                 << "expression:2:15: expected an expression";
    QTest::newRow("unknown name") << "mask: k < window"
                                  << "expression:1:11: unknown name 'window'";
    QTest::newRow("unknown function") << "score: sin(s)"
                                      << "expression:1:8: unknown function 'sin'";
    QTest::newRow("arity") << "score: max(s)"
                           << "expression:1:8: max() takes 2 arguments, got 1";
    QTest::newRow("mask type") << "mask: q - k"
                               << "mask: expected a condition";
    QTest::newRow("score type") << "score: s > 0"
                                << "score: expected a number";
    QTest::newRow("s in mask") << "mask: s > 0"
                               << "only a 'score:' statement may use";
    QTest::newRow("bool arithmetic") << "mask: (q < k) + 1 > 0"
                                     << "expression:1:15: '+' expects a number, got a condition";
    QTest::newRow("and of numbers") << "mask: q && k"
                                    << "'&&' expects a condition, got an integer";
    QTest::newRow("chained compare") << "mask: 0 < q < 5"
                                     << "expression:1:13: expected '&&' or '||' between comparisons";
    QTest::newRow("const zero divisor") << "mask: q / 0 == 1"
                                        << "expression:1:9: '/': the divisor is the constant 0";
    QTest::newRow("const not constant") << "const W = q\nmask: k < W"
                                        << "const W: expected a constant value";
    QTest::newRow("redefined") << "const W = 1\nlet W = 2\nmask: k < W"
                               << "expression:2:5: 'W' is already defined on line 1";
    QTest::newRow("reserved") << "let q = 1\nmask: k < q"
                              << "the reserved name 'q'";
    QTest::newRow("two masks") << "mask: k < q\nmask: k > q"
                               << "expression:2:1: a second 'mask:' statement";
    QTest::newRow("unclosed") << "mask: (k < q"
                              << "expected ')' to close the '(' at 1:7";
    QTest::newRow("doc without index") << "mask: doc == 1"
                                       << "expected '[' after 'doc'";
    QTest::newRow("float index") << "mask: doc[1.5] == 1"
                                 << "'doc' expects an integer index, got a number";
    QTest::newRow("bitwise") << "mask: k < 4 | q < 2"
                             << "expression:1:13: expected '||'";
    QTest::newRow("junk char") << "mask: k < q $"
                               << "expression:1:13: unexpected character '$'";
    QTest::newRow("huge int") << "mask: k < 99999999999"
                              << "expected an integer up to 2147483647";
    QTest::newRow("trailing") << "mask: k < q q"
                              << "expression:1:13: expected an operator, or the end of the statement";
    QTest::newRow("no statement") << "k < q"
                                  << "expression:1:1: expected a statement";
    QTest::newRow("where branches") << "score: where(k < q, s, k < 2)"
                                    << "where() chooses between a number and a condition";
    QTest::newRow("bad exponent") << "score: s * 1e"
                                  << "expected the digits of an exponent";
    QTest::newRow("documents") << "documents: 0\nmask: k <= q"
                               << "expected a positive integer number of documents";
}

void TestVariantExpr::parseErrors() {
    QFETCH(QString, text);
    QFETCH(QString, message);
    auto e = parseVariantExpr(text.toStdString());
    QVERIFY2(!e, "expected a parse error");
    QVERIFY2(e.message().find(message.toStdString()) != std::string::npos,
             qPrintable("got: " + QString::fromStdString(e.message())));
    QVERIFY2(std::regex_search(e.message(), kErrorShape), e.message().c_str());
}

/// 1,000 programs made malformed by random edits of valid ones: each parses or fails with a
/// located message; none crashes; the ones that still parse evaluate without crashing.
void TestVariantExpr::fuzzedMalformedPrograms() {
    const std::vector<std::string> seeds = {
        "const W = 64\nmask: k <= q && (k < 4 || q - k < W)",
        "let d = q - k\nmask: d >= 0 && d % 3 == 0 && doc[q] == doc[k]",
        "mask: abs(q / 8 - k / 8) <= 1 && max(q, k) < T\nscore: where(q > k, s * 0.5, tanh(s)) + slope(h)",
        "score: 30.0 * tanh(s / 30.0) - log(1.0 + exp(-float(q - k)))",
    };
    const std::string alphabet = "qkshbTH()[]<>=!&|+-*/%,.:;# \n0123456789abcdefmaskcorewhnlt";
    std::mt19937_64 rng(testing::freshSeed());
    int failed = 0, parsed = 0;
    for (int i = 0; i < 1000; ++i) {
        std::string text = seeds[size_t(i) % seeds.size()];
        const int edits = 1 + int(rng() % 4);
        for (int e = 0; e < edits && !text.empty(); ++e) {
            const size_t at = rng() % text.size();
            switch (rng() % 4) {
            case 0: text.erase(at, 1 + rng() % 3); break;
            case 1: text.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
            case 2: text[at] = alphabet[rng() % alphabet.size()]; break;
            default: text.insert(at, text.substr(rng() % text.size(), 1 + rng() % 5)); break;
            }
        }
        auto e = parseVariantExpr(text);
        if (!e) {
            ++failed;
            QVERIFY2(std::regex_search(e.message(), kErrorShape), (text + " -> " + e.message()).c_str());
            continue;
        }
        ++parsed;
        // Still valid: it must evaluate, classify and generate code without crashing.
        ExprTokens tokens = exprTokensFromDocuments({0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3});
        ExprBinding at{16, 2, 0, 1, tokens.doc.data(), tokens.pos.data()};
        std::vector<uint8_t> row(16);
        std::vector<double> s(16, 0.5);
        for (int64_t q = 0; q < 16; ++q) {
            evalMaskRow(**e, at, q, 0, 16, row.data());
            evalScoreRow(**e, at, q, 0, 16, s.data());
        }
        (void)maskOverRect(**e, at, 0, 16, 0, 16);
        QVERIFY(!variantExprCudaSource(**e).empty());
    }
    QVERIFY2(failed >= 500, qPrintable(QString("only %1 of 1000 edits were malformed").arg(failed)));
    qInfo("fuzz: %d malformed (each with a located error), %d still valid", failed, parsed);
}

/// Random rectangles of random valid masks: True means every pair is allowed, False none.
void TestVariantExpr::intervalsAreSound() {
    const char* masks[] = {
        "mask: k <= q && (k < 4 || q - k < 37)",
        "mask: (q - k) % 5 == 0 && q >= k",
        "mask: abs(q / 7 - k / 7) <= 1 && abs(q % 7 - k % 7) <= 2",
        "mask: doc[q] == doc[k] && pos[k] <= pos[q]",
        "mask: where(q < 50, k < q / (k - 3), q * q - k * 40000 > -7)",
        "mask: float(q - k) / 3.0 < 5.5 && log(float(k)) < 4.0",
        "mask: min(q, 20) > max(k - 3, h) || !(k < T - 3)",
        "mask: exp(float(q - k)) > 2.0 || q % (k - 50) == 1",
    };
    ExprTokens tokens = exprTokensFromDocuments([] {
        std::vector<int32_t> d;
        for (int i = 0; i < 200; ++i) d.push_back(i / 23);
        return d;
    }());
    const ExprBinding at{200, 4, 0, 2, tokens.doc.data(), tokens.pos.data()};
    std::mt19937_64 rng(testing::freshSeed());
    int decided = 0;
    for (const char* m : masks) {
        auto e = parseVariantExpr(m);
        QVERIFY2(e, e.message().c_str());
        for (int trial = 0; trial < 300; ++trial) {
            const int64_t q0 = int64_t(rng() % 200), k0 = int64_t(rng() % 200);
            const int64_t q1 = std::min<int64_t>(200, q0 + 1 + int64_t(rng() % 40)),
                          k1 = std::min<int64_t>(200, k0 + 1 + int64_t(rng() % 40));
            const ExprTruth t = maskOverRect(**e, at, q0, q1, k0, k1);
            if (t == ExprTruth::Unknown) continue;
            ++decided;
            for (int64_t q = q0; q < q1; ++q)
                for (int64_t k = k0; k < k1; ++k)
                    if (evalMaskPair(**e, at, q, k) != (t == ExprTruth::True))
                        QFAIL(qPrintable(QString("%1: rect [%2,%3)x[%4,%5) said %6 but pair (%7,%8) differs")
                                             .arg(m)
                                             .arg(q0)
                                             .arg(q1)
                                             .arg(k0)
                                             .arg(k1)
                                             .arg(int(t))
                                             .arg(q)
                                             .arg(k)));
        }
    }
    QVERIFY(decided > 500);  // the classifier decides most rectangles
}

void TestVariantExpr::definedResults() {
    const ExprBinding at{100, 1, 0, 0, nullptr, nullptr};
    auto allows = [&](const char* text, int64_t q, int64_t k) {
        auto e = parseVariantExpr(text);
        if (!e) qFatal("%s", e.message().c_str());
        return evalMaskPair(**e, at, q, k);
    };
    // Integer division and modulo by zero give 0 (the divisor is not a constant here).
    QVERIFY(allows("mask: q / (k - k) == 0", 7, 3));
    QVERIFY(allows("mask: q % (k - k) == 0", 7, 3));
    // Floor division and modulo (Python's // and %).
    QVERIFY(allows("mask: (q - k) / 4 == -1 && (q - k) % 4 == 1", 0, 3));
    // doc[i] and pos[i] outside [0, T) (or with no arrays) read -1.
    QVERIFY(allows("mask: doc[q - 200] == -1 && pos[k + 1000] == -1", 5, 5));
    // 32-bit wrapping: 2147483647 + q is negative for q >= 1.
    QVERIFY(allows("mask: 2147483647 + q > 0", 0, 0));
    QVERIFY(!allows("mask: 2147483647 + q > 0", 1, 0));
    // Comparisons with NaN are false, != is true.
    QVERIFY(!allows("mask: log(float(k) - 10.0) < 1.0", 0, 3));
    QVERIFY(allows("mask: log(float(k) - 10.0) != 1.0", 0, 3));
    // Scores: NaN → -inf (the pair drops out), +inf → 1e30, finite values unchanged.
    auto score = [&](const char* text, double s) {
        auto e = parseVariantExpr(text);
        if (!e) qFatal("%s", e.message().c_str());
        evalScoreRow(**e, at, 3, 1, 1, &s);
        return s;
    };
    QCOMPARE(score("score: log(s - s - 1.0)", 2.0), -INFINITY);
    QCOMPARE(score("score: exp(1000.0 * s)", 2.0), 1e30);
    QCOMPARE(score("score: s / 0.0", -2.0), -INFINITY);
    QCOMPARE(score("score: s * 2.0 + float(q - k)", 1.5), 5.0);
    // A NaN score everywhere: every pair drops out, rows come back O = 0, lse = -inf, finite.
    Problem p = randomProblem(1, 1, 1, 64, 8, testing::freshSeed());
    const VariantSpec nan = mustParse("expr:mask: k <= q; score: log(-1.0 - s * s)");
    auto r = variantReferenceAttention(nan, p.shape, p.q, p.k, p.v);
    QVERIFY(r);
    for (double o : r->out) QCOMPARE(o, 0.0);
    for (double l : r->lse) QCOMPARE(l, -INFINITY);
    // The tiled engine agrees (zeros, no NaN).
    auto spec = referenceSpec(nan, 64, 0, 1, 0.35f);
    QVERIFY(spec);
    auto view = [&](const std::vector<float>& x) { return MatrixRM(Eigen::Map<const MatrixRM>(x.data(), 64, 8)); };
    auto out = referenceAttention(view(p.q), view(p.k), view(p.v), *spec);
    QVERIFY(out);
    QVERIFY(out->out.allFinite());
    QCOMPARE(double(out->out.cwiseAbs().maxCoeff()), 0.0);
}

void TestVariantExpr::tokensAndLabels() {
    // Inline programs carry commas inside calls through the comma-separated list.
    const auto items = splitVariantList("causal,expr:mask: max(q, k) < 9 && doc[min(q, 3)] >= 0,sliding:64");
    QCOMPARE(items.size(), size_t(3));
    QCOMPARE(items[1], std::string("expr:mask: max(q, k) < 9 && doc[min(q, 3)] >= 0"));
    // The same splitter for the CLI's other lists (attnscope/split.h): shapes split at '/', empty
    // items dropped, separators inside brackets kept.
    QCOMPARE(splitList("1,8,4096,64//2,8,8192,128/", '/'), (std::vector<std::string>{"1,8,4096,64", "2,8,8192,128"}));
    QCOMPARE(splitList(",0,3-5,,7"), (std::vector<std::string>{"0", "3-5", "7"}));
    QCOMPARE(splitList("a(b,c),d[e,f]"), (std::vector<std::string>{"a(b,c)", "d[e,f]"}));
    QVERIFY(splitList("").empty());
    // The label is the program on one line, comments dropped.
    const VariantSpec v = mustParse("expr:const W = 8 # window\n  mask: k <= q &&\n   q - k < W");
    QCOMPARE(v.label, std::string("const W = 8; mask: k <= q && q - k < W"));
    QCOMPARE(v.kind, VariantKind::Custom);
    // "|" and "&" inside a program are not compositions.
    const VariantSpec sinks = mustParse("expr:mask: k < 4 || (k <= q && q - k < 16)");
    QVERIFY(variantAllows(sinks, 100, 50, 2));
    QVERIFY(!variantAllows(sinks, 100, 50, 20));
    QVERIFY(variantAllows(sinks, 100, 2, 3));  // non-causal sinks, as written
    // Errors name the file / the token.
    auto missing = parseVariant("custom:/nonexistent/x.attnvar");
    QVERIFY(!missing);
    QVERIFY2(missing.message().find("/nonexistent/x.attnvar: cannot open") != std::string::npos,
             missing.message().c_str());
    auto bad = parseVariant("expr:mask: k <");
    QVERIFY(!bad);
    QVERIFY2(bad.message().find("expr:1:10: expected an expression") != std::string::npos, bad.message().c_str());
    auto composed = parseVariant("causal&expr:mask: k < 4");
    QVERIFY(!composed);
    QVERIFY(composed.message().find("do not compose") != std::string::npos);
    // documents: N sets the even split that doc[] reads.
    const VariantSpec docs = mustParse("expr:documents: 4; mask: doc[q] == doc[k]");
    QCOMPARE(docs.documents, 4);
    QVERIFY(variantAllows(docs, 100, 20, 0));    // both in document 0 (tokens 0-24)
    QVERIFY(!variantAllows(docs, 100, 30, 20));  // document 1 and document 0
    // h reaches the mask: head 1 of 2 sees only even keys here.
    const VariantSpec perHead = mustParse("expr:mask: h == 0 || k % 2 == 0");
    QVERIFY(variantAllows(perHead, 10, 5, 3, 0, 2));
    QVERIFY(!variantAllows(perHead, 10, 5, 3, 1, 2));
}

void TestVariantExpr::cudaSource() {
    auto e = parseVariantExpr("const W = 64\nmask: k <= q && q - k < W\nscore: s + slope(h) * float(k - q)");
    QVERIFY(e);
    const std::string src = variantExprCudaSource(**e);
    QVERIFY(src.find("struct UserMask") != std::string::npos);
    QVERIFY(src.find("struct UserScore") != std::string::npos);
    QVERIFY(src.find("kIdentity = false") != std::string::npos);
    // slope(h) reads only h: computed once per CTA in bind(), a member in operator().
    QVERIFY2(src.find("bound.m") != std::string::npos, src.c_str());
    auto maskOnly = parseVariantExpr("mask: k <= q");
    QVERIFY(variantExprCudaSource(**maskOnly).find("using UserScore = IdentityScore;") != std::string::npos);
}

QTEST_GUILESS_MAIN(TestVariantExpr)
#include "tst_variant_expr.moc"
