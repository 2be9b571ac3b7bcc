// Resource limits of the trace reader (issue 16 item 6): traces that are huge in one dimension
// open within bounded memory and time or are refused at once with a message naming the file and
// the limit, before anything of the claimed size is allocated. The files are small synthetic
// images written here (a 1,000 layers × 256 heads trace of tiny tensors, 99 MB headers, T = 4M
// tokens, headers claiming 2^24 heads, half a million layers or 2^51-byte tensors).
#include <QtTest>

#include <QElapsedTimer>
#include <QTemporaryDir>

#include <fstream>
#include <sys/resource.h>

#include "attnscope/trace.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace testfixture;

namespace {

using Bytes = std::vector<std::byte>;

/// Peak resident memory of this process so far, in MiB.
double peakRssMiB() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

/// Bounds for every case: opening (or refusing) takes under this long and raises the peak
/// memory of the process by at most this much. Generous for a loaded 2-core machine; a storm
/// (memory or work proportional to a claimed size) breaks them by orders of magnitude.
constexpr qint64 kMaxMillis = 60000;
constexpr double kMaxGrowthMiB = 1024;

/// Metadata with `layers` layers of `heads` heads (kv heads as many) of head dim d and T tokens.
TraceMetadata meta(int layers, int heads, int d, int64_t T) { return smallMetadata(layers, heads, heads, d, T); }

/// A header whose tensors claim the given shapes (F16) over a data section of `dataBytes` zeros.
Bytes claimedImage(const TraceMetadata& m, const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                   uint64_t dataBytes, uint64_t claimEach) {
    Json header = Json::object();
    header.set("__metadata__", *Json::parse(TraceWriter::metadataJson(m)));
    uint64_t off = 0;
    for (const auto& [name, shape] : tensors) {
        Json t = Json::object();
        t.set("dtype", "F16");
        Json s = Json::array();
        for (int64_t d : shape) s.push(d);
        t.set("shape", s);
        t.set("data_offsets", Json(Json::Array{Json(off), Json(off + claimEach)}));
        header.set(name, t);
        off += claimEach;
    }
    return joinImage(header.dump(), Bytes(size_t(dataBytes)));
}

}  // namespace

class TestTraceLimits : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;
    int m_n = 0;

    std::string save(const Bytes& bytes) {
        const std::string path = m_dir.filePath(QStringLiteral("t%1.attn.safetensors").arg(++m_n)).toStdString();
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        return path;
    }
    /// Opens `path` under the time and memory bounds.
    Result<std::shared_ptr<const Trace>> openBounded(const std::string& path) {
        const double before = peakRssMiB();
        QElapsedTimer timer;
        timer.start();
        auto t = Trace::open(path);
        const qint64 ms = timer.elapsed();
        const double grown = peakRssMiB() - before;
        qInfo("%s: %s in %lld ms, peak memory +%.0f MiB", path.c_str(), t ? "opened" : "refused",
              static_cast<long long>(ms), grown);
        [&] {
            QVERIFY2(ms <= kMaxMillis, qPrintable(QStringLiteral("%1 ms").arg(ms)));
            QVERIFY2(grown <= kMaxGrowthMiB, qPrintable(QStringLiteral("+%1 MiB").arg(grown)));
        }();
        return t;
    }
    void expectRefusal(const std::string& path, const std::string& part) {
        auto t = openBounded(path);
        QVERIFY(!QTest::currentTestFailed());
        QVERIFY2(!t, "opened");
        QVERIFY2(t.message().rfind(path + ":", 0) == 0, t.message().c_str());
        QVERIFY2(t.message().find(part) != std::string::npos, t.message().c_str());
    }

private slots:
    void thousandLayersOf256Heads();
    void claimedHeadsWithoutTensors();
    void absurdDimensions();
    void halfAMillionLayersClaimed();
    void headerOf99MB();
    void headerLengthLimits();
    void fourMillionTokens();
    void tokenCountDisagrees();
};

void TestTraceLimits::thousandLayersOf256Heads() {
    // 256,000 heads of [T = 4, d = 1]: 3,000 tensors, a 6 MB file. Opens; every head is readable.
    constexpr int kLayers = 1000, kHeads = 256;
    const TraceMetadata m = meta(kLayers, kHeads, 1, 4);
    TraceWriter w(m);
    for (int l = 0; l < kLayers; ++l)
        for (const char* which : {"q", "k", "v"}) {
            std::vector<float> values(size_t(kHeads) * 4);
            for (size_t i = 0; i < values.size(); ++i) values[i] = float((l * 7 + int(i)) % 13);
            w.addTensor("layers." + std::to_string(l) + "." + which, DType::F32, {kHeads, 4, 1}, values);
        }
    const std::string path = save(w.serialize());
    auto t = openBounded(path);
    QVERIFY2(t, t.message().c_str());
    QCOMPARE((*t)->numLayers(), kLayers);
    QCOMPARE((*t)->config(kLayers - 1).heads, kHeads);
    auto h = (*t)->head(kLayers - 1, kHeads - 1, Which::Q);
    QVERIFY2(h, h.message().c_str());
    QCOMPARE(h->m.rows(), 4);
    QCOMPARE(h->m(2, 0), float(((kLayers - 1) * 7 + (kHeads - 1) * 4 + 2) % 13));
}

void TestTraceLimits::claimedHeadsWithoutTensors() {
    // The metadata says 1,000 × 256; the file holds one layer of one head.
    TraceMetadata claimed = meta(1000, 256, 1, 4);
    TraceWriter w(claimed);
    for (const char* which : {"q", "k", "v"})
        w.addTensor(std::string("layers.0.") + which, DType::F32, {1, 4, 1}, std::vector<float>(4, 1.f));
    expectRefusal(save(w.serialize()), "does not match __metadata__.layers[0] (expected [heads=256, T, head_dim=1])");
}

void TestTraceLimits::absurdDimensions() {
    // 2^24 heads of head dim 2^24 (the metadata's largest accepted dimension): the tensors' shapes
    // agree, so the claim is 2^51 bytes a tensor, refused before any byte is read.
    constexpr int64_t kHuge = int64_t(1) << 24;
    TraceMetadata m = meta(1, int(kHuge), int(kHuge), 4);
    const std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
        {"layers.0.q", {kHuge, 4, kHuge}}, {"layers.0.k", {kHuge, 4, kHuge}}, {"layers.0.v", {kHuge, 4, kHuge}}};
    expectRefusal(save(claimedImage(m, tensors, 64, uint64_t(kHuge) * 4 * uint64_t(kHuge) * 2)),
                  "more than the limit of");
    // Shapes within the byte limit but far beyond the file: refused on the data offsets.
    TraceMetadata m2 = meta(1, 1024, 1024, 4);
    const std::vector<std::pair<std::string, std::vector<int64_t>>> t2 = {
        {"layers.0.q", {1024, 4, 1024}}, {"layers.0.k", {1024, 4, 1024}}, {"layers.0.v", {1024, 4, 1024}}};
    auto t = openBounded(save(claimedImage(m2, t2, 64, 1024 * 4 * 1024 * 2)));
    QVERIFY(!t);
    QVERIFY2(t.message().find("data") != std::string::npos, t.message().c_str());
    // One past the metadata's dimension limit.
    TraceMetadata m3 = meta(1, 1, 1, 4);
    m3.layers[0].heads = int(kHuge + 1);
    TraceWriter w3(m3);
    expectRefusal(save(w3.serialize()), "heads");
}

void TestTraceLimits::halfAMillionLayersClaimed() {
    // 500,000 layer entries (a 59 MB header) over a one-layer file.
    TraceMetadata m = meta(500000, 1, 1, 4);
    TraceWriter w(m);
    for (const char* which : {"q", "k", "v"})
        w.addTensor(std::string("layers.0.") + which, DType::F32, {1, 4, 1}, std::vector<float>(4, 1.f));
    expectRefusal(save(w.serialize()), "layer 1 has no tensors");
}

void TestTraceLimits::headerOf99MB() {
    // A valid trace whose header is 99 MB (a long "text"), just under the 100 MB limit: opens.
    TraceMetadata m = meta(1, 2, 4, 8);
    m.text.assign(99'000'000 - 4096, 'x');
    const TraceWriter w = randomTrace(m, DType::F16);
    const Bytes image = w.serialize();
    uint64_t headerLength = 0;
    for (int i = 0; i < 8; ++i) headerLength |= uint64_t(std::to_integer<uint8_t>(image[size_t(i)])) << (8 * i);
    QVERIFY(headerLength > 98'000'000 && headerLength < 100'000'000);
    const std::string path = save(image);
    auto t = openBounded(path);
    QVERIFY2(t, t.message().c_str());
    QCOMPARE((*t)->metadata().text.size(), m.text.size());
    // 99 MB of tiny JSON values (a token_ids list of zeros with tokens to match): the parser's
    // worst case per byte. Opens (or is refused) within the bounds.
    TraceMetadata ids = meta(1, 1, 1, 4);
    Bytes small = randomTrace(ids, DType::F16).serialize();
    Bytes big = editImage(small, [](Json& h, Bytes&) {
        std::string list = "[0";
        list.reserve(99'000'000);
        while (list.size() < 98'000'000) list += ",0";
        list += "]";
        member(h, "__metadata__").set("token_ids", list);
    });
    auto t2 = openBounded(save(big));
    QVERIFY(!t2);  // 49 million ids for 4 tokens
    QVERIFY2(t2.message().find("token_ids") != std::string::npos, t2.message().c_str());
}

void TestTraceLimits::headerLengthLimits() {
    Bytes image = randomTrace(meta(1, 1, 1, 4), DType::F16).serialize();
    // A length of 99 MB in a small file: refused on the file size, nothing of 99 MB allocated.
    Bytes claims = image;
    const uint64_t n = 99'000'000;
    for (int i = 0; i < 8; ++i) claims[size_t(i)] = std::byte((n >> (8 * i)) & 0xFF);
    auto t = openBounded(save(claims));
    QVERIFY(!t);
    QVERIFY2(t.message().find("99000000") != std::string::npos, t.message().c_str());
    // Just over the limit.
    const uint64_t over = 100'000'001;
    for (int i = 0; i < 8; ++i) claims[size_t(i)] = std::byte((over >> (8 * i)) & 0xFF);
    expectRefusal(save(claims), "header length 100000001");
}

void TestTraceLimits::fourMillionTokens() {
    // T = 4,194,304 with one head of dim 1: 55 MB on disk. Opens within the bounds; a head reads.
    constexpr int64_t kT = int64_t(1) << 22;
    TraceMetadata m = meta(1, 1, 1, kT);
    m.tokenIds.clear();
    TraceWriter w(m);
    std::vector<float> values(static_cast<size_t>(kT));
    for (int64_t i = 0; i < kT; ++i) values[size_t(i)] = float(i % 1000);
    for (const char* which : {"q", "k", "v"})
        w.addTensor(std::string("layers.0.") + which, DType::F32, {1, kT, 1}, values);
    const std::string path = save(w.serialize());
    m = TraceMetadata();
    values = {};
    w = TraceWriter(TraceMetadata());
    auto t = openBounded(path);
    QVERIFY2(t, t.message().c_str());
    QCOMPARE((*t)->tokens(), kT);
    auto h = (*t)->head(0, 0, Which::K);
    QVERIFY2(h, h.message().c_str());
    QCOMPARE(int64_t(h->m.rows()), kT);
    QCOMPARE(h->m(kT - 1, 0), float((kT - 1) % 1000));
}

void TestTraceLimits::tokenCountDisagrees() {
    // Tensors of T = 4M with a 4-token list: refused on the count, before any tensor is read.
    constexpr int64_t kT = int64_t(1) << 22;
    const TraceMetadata m = meta(1, 1, 1, 4);
    const std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
        {"layers.0.q", {1, kT, 1}}, {"layers.0.k", {1, kT, 1}}, {"layers.0.v", {1, kT, 1}}};
    expectRefusal(save(claimedImage(m, tensors, 3 * uint64_t(kT) * 2, uint64_t(kT) * 2)), "T = 4194304");
}

QTEST_GUILESS_MAIN(TestTraceLimits)
#include "tst_trace_limits.moc"
