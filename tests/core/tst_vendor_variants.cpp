// The vendor rows (cudnn:*): the token parses into the built-in variant's mask and score mod with
// impl Cudnn, so masks, FLOPs and the CPU reference are the same; the CPU backend refuses to run
// them with the reason; and cuDNN, loaded at run time, says why when it is missing or wrong.
#include <QtTest>

#include <cstdlib>

#include "attnscope/gpu.h"
#include "attnscope/profiler.h"
#include "attnscope/variants.h"
#include "brute_attention.h"

using namespace attnscope;

namespace {
/// Sets an environment variable for one scope, restoring the old value.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : m_name(name) {
        if (const char* old = std::getenv(name)) m_old = old, m_had = true;
        if (value)
            setenv(name, value, 1);
        else
            unsetenv(name);
    }
    ~ScopedEnv() {
        if (m_had)
            setenv(m_name, m_old.c_str(), 1);
        else
            unsetenv(m_name);
    }

private:
    const char* m_name;
    std::string m_old;
    bool m_had = false;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

class TestVendorVariants : public QObject {
    Q_OBJECT
private slots:
    void parsesToTheBuiltinMask_data();
    void parsesToTheBuiltinMask();
    void cpuBackendSaysNeedsGpu();
    void missingLibrarySaysWhy();
    void wrongLibrarySaysWhy();
    void installedLibraryIsFound();
};

void TestVendorVariants::parsesToTheBuiltinMask_data() {
    QTest::addColumn<QString>("token");
    QTest::newRow("full") << "full";
    QTest::newRow("causal") << "causal";
    QTest::newRow("sliding") << "sliding:37";
    QTest::newRow("alibi") << "alibi";
    QTest::newRow("softcap") << "softcap:7.5";
    QTest::newRow("relbias") << "relbias:0.2";
}

void TestVendorVariants::parsesToTheBuiltinMask() {
    QFETCH(QString, token);
    auto builtin = parseVariant(token.toStdString());
    auto vendor = parseVariant("cudnn:" + token.toStdString());
    QVERIFY2(builtin.ok() && vendor.ok(), (builtin.ok() ? vendor : builtin).message().c_str());
    QCOMPARE(int(vendor->impl), int(VariantImpl::Cudnn));
    QCOMPARE(int(builtin->impl), int(VariantImpl::Builtin));
    QCOMPARE(vendor->label, "cudnn:" + token.toStdString());
    QCOMPARE(int(vendor->kind), int(builtin->kind));
    QCOMPARE(vendor->window, builtin->window);
    QCOMPARE(vendor->softcap, builtin->softcap);
    QCOMPARE(vendor->bias, builtin->bias);
    QVERIFY(variantNeedsGpu(*builtin).empty());
    QVERIFY(!variantNeedsGpu(*vendor).empty());
    // The same mask everywhere: every pair, the block density and the CPU reference spec.
    std::mt19937_64 rng(testing::freshSeed());
    const int64_t T = 150 + int64_t(rng() % 100);
    for (int64_t q = 0; q < T; ++q)
        for (int64_t k = 0; k < T; ++k) QCOMPARE(variantAllows(*vendor, T, q, k), variantAllows(*builtin, T, q, k));
    QCOMPARE(blockDensity(*vendor, T), blockDensity(*builtin, T));
    auto a = referenceSpec(*vendor, T, 3, 8, 0.125f), b = referenceSpec(*builtin, T, 3, 8, 0.125f);
    QVERIFY(a.ok() && b.ok());
    QCOMPARE(a->mask.causal, b->mask.causal);
    QCOMPARE(a->mask.window, b->mask.window);
    QCOMPARE(a->softcap, b->softcap);
    QCOMPARE(a->alibiSlope, b->alibiSlope);
    QCOMPARE(a->relativeBias, b->relativeBias);
}

void TestVendorVariants::cpuBackendSaysNeedsGpu() {
    ProfileRequest req;
    auto source = parseShape("1,2,2,200,32");  // B,H,Hkv,T,D as profile --shape takes it
    QVERIFY2(source.ok(), source.message().c_str());
    source->seed = testing::freshSeed();
    req.shapes = {*source};
    req.variants = {"causal", "cudnn:causal", "cudnn:full"};
    req.warmup = 1;
    req.stop.minSamples = 2, req.stop.maxSamples = 2;
    req.backend = BackendChoice::Cpu;
    auto rep = runProfileOnBestBackend(req);
    QVERIFY2(rep.ok(), rep.message().c_str());
    const ShapeProfile& shape = rep->shapes.at(0);
    QCOMPARE(shape.variants.size(), size_t(3));
    QVERIFY2(shape.variants[0].error.empty(), shape.variants[0].error.c_str());
    QVERIFY(shape.variants[0].stats.n == 2 && shape.variants[0].relError == 0.0);
    for (size_t i = 1; i < 3; ++i) {
        const VariantResult& r = shape.variants[i];
        QVERIFY2(contains(r.error, r.label) && contains(r.error, "GPU") && contains(r.error, "cuDNN"), r.error.c_str());
        QCOMPARE(r.stats.n, 0);
        QCOMPARE(r.relError, -1.0);  // not scored
    }
    // The row's error reaches every export.
    QVERIFY(contains(profileToText(*rep), "cuDNN's fused SDPA"));
    QVERIFY(contains(profileToCsv(*rep), "cudnn:causal"));
    QVERIFY(contains(profileToJson(*rep).dump(), "cuDNN's fused SDPA"));
}

void TestVendorVariants::missingLibrarySaysWhy() {
    ScopedEnv env("ATTNSCOPE_CUDNN_LIB", "/nonexistent/libcudnn.so.9");
    const VendorLibraryInfo info = probeCudnn();
    QVERIFY(!info.available);
    QVERIFY(info.version.empty());
#ifdef ATTNSCOPE_WITH_KERNELS
    QVERIFY2(contains(info.reason, "cuDNN not found") && contains(info.reason, "ATTNSCOPE_CUDNN_LIB") &&
                 contains(info.reason, "/nonexistent/libcudnn.so.9"),
             info.reason.c_str());
#else
    QVERIFY2(contains(info.reason, "without CUDA"), info.reason.c_str());
#endif
}

void TestVendorVariants::wrongLibrarySaysWhy() {
#ifndef ATTNSCOPE_WITH_KERNELS
    QSKIP("built without CUDA: cuDNN is never loaded");
#else
    // A library that loads but is not cuDNN (the C math library is on every Linux machine).
    ScopedEnv env("ATTNSCOPE_CUDNN_LIB", "libm.so.6");
    const VendorLibraryInfo info = probeCudnn();
    QVERIFY(!info.available);
    QVERIFY2(contains(info.reason, "libm.so.6 is not cuDNN") && contains(info.reason, "cudnnGetVersion"),
             info.reason.c_str());
#endif
}

void TestVendorVariants::installedLibraryIsFound() {
#ifndef ATTNSCOPE_WITH_KERNELS
    QSKIP("built without CUDA: cuDNN is never loaded");
#else
    ScopedEnv env("ATTNSCOPE_CUDNN_LIB", nullptr);
    const VendorLibraryInfo info = probeCudnn();
    if (!info.available) {
        QVERIFY2(contains(info.reason, "cuDNN not found") || contains(info.reason, "too old"), info.reason.c_str());
        QSKIP(("no cuDNN 9 on this machine: " + info.reason).c_str());
    }
    QVERIFY(!info.path.empty());
    QVERIFY2(info.version.rfind("9.", 0) == 0, info.version.c_str());  // libcudnn.so.9 is cuDNN 9.x
    QVERIFY(info.reason.empty());
#endif
}

QTEST_GUILESS_MAIN(TestVendorVariants)
#include "tst_vendor_variants.moc"
