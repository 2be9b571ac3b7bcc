// Bad input never crashes and never gives a silently wrong trace: each malformed file yields its
// specific ErrorCode and a message naming the file, the tensor or field, and what was expected.
// The input file is never modified.
#include <QtTest>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <sys/stat.h>

#include "attnscope/trace.h"
#include "trace_fixture.h"

using namespace attnscope;
using namespace testfixture;

Q_DECLARE_METATYPE(attnscope::DType)

namespace {

using Bytes = std::vector<std::byte>;

// The base trace: 2 layers, 4 heads, 2 kv heads, head dim 8, T = 6, F16.
constexpr int kHeads = 4, kKv = 2, kDim = 8;
constexpr int64_t kT = 6;

TraceMetadata baseMeta(int layers = 2) { return smallMetadata(layers, kHeads, kKv, kDim, kT); }
Bytes baseImage() { return randomTrace(baseMeta(), DType::F16).serialize(); }

Json& tensor(Json& header, const std::string& name) { return member(header, name); }
Json& metadata(Json& header) { return member(header, "__metadata__"); }

/// Replaces one metadata string by `value` (re-encoded as the header's JSON string).
Bytes withMeta(const std::string& key, Json value) {
    return editImage(baseImage(), [&](Json& h, Bytes&) { metadata(h).set(key, value); });
}

/// Edits the per-layer list inside __metadata__.layers.
Bytes withLayerField(int layer, const std::string& key, Json value, bool remove = false) {
    return editImage(baseImage(), [&](Json& h, Bytes&) {
        Json layers = *Json::parse(metadata(h).find("layers")->asString());
        Json& l = layers.asArray()[size_t(layer)];
        if (remove) {
            auto& o = l.asObject();
            for (size_t i = 0; i < o.size(); ++i)
                if (o[i].first == key) o.erase(o.begin() + std::ptrdiff_t(i));
        } else {
            l.set(key, value);
        }
        metadata(h).set("layers", layers.dump());
    });
}

Bytes withHeaderLength(uint64_t n) {
    Bytes b = baseImage();
    for (int i = 0; i < 8; ++i) b[size_t(i)] = std::byte((n >> (8 * i)) & 0xFF);
    return b;
}

Json offsets(uint64_t begin, uint64_t end) { return Json(Json::Array{Json(begin), Json(end)}); }

Json shape(std::vector<int64_t> dims) {
    Json s = Json::array();
    for (int64_t d : dims) s.push(d);
    return s;
}

/// The base trace with a `layers.0.sinks` tensor of the given shape and values, in a file of
/// format `version` (the writer writes max(version, 1) when the metadata lists no sinks).
Bytes withSinks(int version, std::vector<int64_t> dims, const std::vector<float>& values) {
    TraceMetadata m = baseMeta();
    m.version = version;
    TraceWriter w = randomTrace(m, DType::F16);
    w.addTensor("layers.0.sinks", DType::F32, std::move(dims), values);
    return w.serialize();
}

/// The base trace in a file of format `version` whose layer 0 has `alibi` and the key
/// `alibi_slopes` = `slopes` (format v2).
Bytes withAlibiSlopes(int version, bool alibi, Json slopes) {
    return editImage(baseImage(), [&](Json& h, Bytes&) {
        Json layers = *Json::parse(metadata(h).find("layers")->asString());
        Json& l = layers.asArray()[0];
        l.set("alibi", alibi);
        l.set("alibi_slopes", slopes);
        metadata(h).set("layers", layers.dump());
        metadata(h).set("version", std::to_string(version));
    });
}

Json numbers(std::vector<double> values) {
    Json a = Json::array();
    for (double v : values) a.push(v);
    return a;
}

/// Writes q/k/v per layer with per-tensor shapes (for shape and T mismatches).
Bytes customLayers(const TraceMetadata& m, const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
    TraceWriter w(m);
    uint32_t seed = 1;
    for (const auto& [name, dims] : tensors) {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        w.addTensor(name, DType::F32, dims, randomValues(size_t(n), seed++));
    }
    return w.serialize();
}

std::vector<std::pair<std::string, std::vector<int64_t>>> qkv(int layer, int64_t T = kT, int heads = kHeads,
                                                              int kv = kKv, int d = kDim) {
    const std::string p = "layers." + std::to_string(layer) + ".";
    return {{p + "q", {heads, T, d}}, {p + "k", {kv, T, d}}, {p + "v", {kv, T, d}}};
}

template <typename... Ts>
std::vector<std::pair<std::string, std::vector<int64_t>>> concat(Ts... parts) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    (out.insert(out.end(), parts.begin(), parts.end()), ...);
    return out;
}

struct Case {
    const char* name;
    std::function<Bytes()> build;
    ErrorCode code;
    std::vector<std::string> fragments;  ///< all must appear in the message (besides the file)
};

const std::vector<Case>& cases() {
    static const std::vector<Case> all = {
        {"empty file", [] { return Bytes{}; }, ErrorCode::Format, {"truncated", "0 bytes", "8-byte header length"}},
        {"truncated inside header length",
         [] {
             Bytes b = baseImage();
             b.resize(5);
             return b;
         },
         ErrorCode::Format,
         {"truncated", "5 bytes"}},
        {"truncated inside header",
         [] {
             Bytes b = baseImage();
             b.resize(40);
             return b;
         },
         ErrorCode::Format,
         {"header length", "runs past the end of the file (40 bytes)"}},
        {"truncated data",
         [] {
             Bytes b = baseImage();
             b.resize(b.size() - 10);
             return b;
         },
         ErrorCode::Format,
         {"tensor layers.1.v", "run past the end of the data section"}},
        {"header length past EOF",
         [] { return withHeaderLength(1'000'000); },
         ErrorCode::Format,
         {"header length 1000000", "runs past the end of the file"}},
        {"header length 2^64-1",
         [] { return withHeaderLength(std::numeric_limits<uint64_t>::max()); },
         ErrorCode::Format,
         {"header length 18446744073709551615", "runs past the end"}},
        {"invalid JSON",
         [] { return joinImage("{\"__metadata__\": {\"format\": ", Bytes(64)); },
         ErrorCode::Format,
         {": header: invalid JSON at byte 28", "expected a value"}},
        {"header not an object",
         [] { return joinImage("[1,2]", {}); },
         ErrorCode::Format,
         {": not an attnscope trace (.attn.safetensors): not a safetensors file", "not a JSON object"}},
        // Other kinds of file say first that they are no trace, then why (issue 19).
        {"a text file",
         [] {
             const std::string text = "this is not a safetensors file";
             Bytes b(text.size());
             std::memcpy(b.data(), text.data(), text.size());
             return b;
         },
         ErrorCode::Format,
         {": not an attnscope trace (.attn.safetensors): not a safetensors file", "runs past the end"}},
        {"a PNG image",
         [] {
             const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D',
                                          'R',  0,   0,   0,   1,    0,    0,    0,    1, 8, 2, 0,  0,   0};
             Bytes b(sizeof png);
             std::memcpy(b.data(), png, sizeof png);
             return b;
         },
         ErrorCode::Format,
         {": not an attnscope trace (.attn.safetensors): not a safetensors file"}},
        {"invalid UTF-8 in a token",  // the bytes FF FE inside a token string of __metadata__
         [] {
             FileImage img = splitImage(baseImage());
             std::string text = img.header.dump();
             text.replace(text.find("t1"), 2,
                          "t\xFF\xFE"
                          "1");
             return joinImage(text, img.data);
         },
         ErrorCode::Format,
         {": header: invalid JSON at byte", "invalid UTF-8 in a string (byte 0xFF)"}},
        {"missing __metadata__",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 auto& o = h.asObject();
                 o.erase(o.begin());  // __metadata__ is the first member
             });
         },
         ErrorCode::Format,
         {": not an attnscope trace (.attn.safetensors): a safetensors file without __metadata__"}},
        {"wrong format string",
         [] { return withMeta("format", "safetensors.model"); },
         ErrorCode::Format,
         {"__metadata__.format", "'safetensors.model'", "expected 'attnscope.trace'"}},
        {"unsupported version",
         [] { return withMeta("version", "3"); },
         ErrorCode::Unsupported,
         {"__metadata__.version", "'3'", "supports versions 1 to 2"}},
        {"metadata value not a string",
         [] { return withMeta("layers", Json::array()); },
         ErrorCode::Format,
         {"__metadata__.layers", "must be a string"}},
        {"metadata JSON invalid",
         [] { return withMeta("layers", "[{\"heads\": 4,"); },
         ErrorCode::Format,
         {"__metadata__.layers: invalid JSON at byte"}},
        {"tokens missing",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 auto& o = metadata(h).asObject();
                 for (size_t i = 0; i < o.size(); ++i)
                     if (o[i].first == "tokens") o.erase(o.begin() + std::ptrdiff_t(i));
             });
         },
         ErrorCode::Format,
         {"__metadata__.tokens is missing"}},
        {"unknown kind",
         [] { return withMeta("kind", "decoder"); },
         ErrorCode::Format,
         {"__metadata__.kind", "'decoder'", "causal-lm, encoder, vision"}},
        {"vision without patch grid",
         [] { return withMeta("kind", "vision"); },
         ErrorCode::Format,
         {"__metadata__.patch_grid is missing"}},
        {"layer field missing",
         [] { return withLayerField(1, "head_dim", Json(), true); },
         ErrorCode::Format,
         {"__metadata__.layers[1].head_dim is missing"}},
        {"layer field wrong type",
         [] { return withLayerField(0, "heads", "4"); },
         ErrorCode::Format,
         {"__metadata__.layers[0].heads", "positive integer"}},
        {"layer scale not positive",
         [] { return withLayerField(0, "scale", -1.0); },
         ErrorCode::Format,
         {"__metadata__.layers[0].scale", "positive finite"}},
        {"GQA heads not divisible",
         [] { return withLayerField(1, "kv_heads", 3); },
         ErrorCode::Shape,
         {"__metadata__.layers[1].kv_heads", "does not divide heads = 4"}},
        {"unknown dtype",
         [] { return editImage(baseImage(), [](Json& h, Bytes&) { tensor(h, "layers.0.q").set("dtype", "F64"); }); },
         ErrorCode::Unsupported,
         {"tensor layers.0.q", "dtype 'F64'", "F32, F16 or BF16"}},
        {"offsets out of range",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes& d) {
                 tensor(h, "layers.0.k").set("data_offsets", offsets(d.size() - 10, d.size() + 182));
             });
         },
         ErrorCode::Format,
         {"tensor layers.0.k", "run past the end of the data section"}},
        {"offsets reversed",
         [] {
             return editImage(baseImage(),
                              [](Json& h, Bytes&) { tensor(h, "layers.0.q").set("data_offsets", offsets(384, 0)); });
         },
         ErrorCode::Format,
         {"tensor layers.0.q", "begin <= end"}},
        {"offsets overlapping",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 tensor(h, "layers.0.v").set("data_offsets", *tensor(h, "layers.0.k").find("data_offsets"));
             });
         },
         ErrorCode::Format,
         {"overlap", "layers.0.k", "layers.0.v"}},
        {"shape x dtype != bytes",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 tensor(h, "layers.1.k").set("shape", shape({2, 6, 7}));
             });
         },
         ErrorCode::Format,
         {"tensor layers.1.k", "shape [2,6,7] × F16 needs 168 bytes but data_offsets span 192"}},
        {"dtype size != bytes",
         [] { return editImage(baseImage(), [](Json& h, Bytes&) { tensor(h, "layers.0.v").set("dtype", "F32"); }); },
         ErrorCode::Format,
         {"tensor layers.0.v", "× F32 needs 384 bytes but data_offsets span 192"}},
        {"shape overflows",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 tensor(h, "layers.0.q").set("shape", shape({int64_t(1) << 40, int64_t(1) << 40, 8}));
             });
         },
         ErrorCode::Format,
         {"tensor layers.0.q", "[1099511627776,1099511627776,8]", "overflows"}},
        {"absurd size",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 tensor(h, "layers.0.q").set("shape", shape({int64_t(1) << 20, int64_t(1) << 20, 64}));
             });
         },
         ErrorCode::Format,
         {"tensor layers.0.q", "more than the limit"}},
        {"negative shape",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 tensor(h, "layers.0.q").set("shape", shape({-4, 6, 8}));
             });
         },
         ErrorCode::Format,
         {"tensor layers.0.q", "not a non-negative integer"}},
        {"duplicate tensor",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 Json copy = *h.find("layers.0.q");
                 h.asObject().emplace_back("layers.0.q", copy);
             });
         },
         ErrorCode::Format,
         {"overlap", "layers.0.q"}},
        {"missing layer tensor",
         [] {
             return editImage(baseImage(), [](Json& h, Bytes&) {
                 auto& o = h.asObject();
                 for (size_t i = 0; i < o.size(); ++i)
                     if (o[i].first == "layers.1.v") o.erase(o.begin() + std::ptrdiff_t(i));
             });
         },
         ErrorCode::Shape,
         {"tensor layers.1.v is missing", "[kv_heads=2, T, head_dim=8]"}},
        {"missing layer",
         [] { return customLayers(baseMeta(3), concat(qkv(0), qkv(1))); },
         ErrorCode::Shape,
         {"layer 2 has no tensors", "lists 3 layers"}},
        {"extra layer",
         [] { return customLayers(baseMeta(1), concat(qkv(0), qkv(1))); },
         ErrorCode::Shape,
         {"tensor layers.1.q belongs to layer 1", "lists 1 layers"}},
        {"heads disagree with metadata",
         [] { return customLayers(baseMeta(1), qkv(0, kT, 3)); },
         ErrorCode::Shape,
         {"tensor layers.0.q", "shape [3,6,8]", "__metadata__.layers[0]", "[heads=4, T, head_dim=8]"}},
        {"kv heads disagree with metadata",
         [] { return customLayers(baseMeta(1), qkv(0, kT, kHeads, 4)); },
         ErrorCode::Shape,
         {"tensor layers.0.k", "shape [4,6,8]", "[kv_heads=2, T, head_dim=8]"}},
        {"head dim disagrees with metadata",
         [] { return customLayers(baseMeta(1), qkv(0, kT, kHeads, kKv, 16)); },
         ErrorCode::Shape,
         {"tensor layers.0.q", "shape [4,6,16]", "head_dim=8"}},
        {"wrong rank",
         [] {
             auto t = qkv(0);
             t[0].second = {kHeads, kT * kDim};
             return customLayers(baseMeta(1), t);
         },
         ErrorCode::Shape,
         {"tensor layers.0.q", "shape [4,48]"}},
        {"T mismatch between tensors",
         [] {
             auto t = concat(qkv(0), qkv(1));
             t[4].second = {kKv, 5, kDim};  // layers.1.k
             return customLayers(baseMeta(2), t);
         },
         ErrorCode::Shape,
         {"tensor layers.1.k has T = 5", "layers.0.q has T = 6"}},
        {"token count != T",
         [] {
             TraceMetadata m = baseMeta(1);
             m.tokens.pop_back();
             return customLayers(m, qkv(0));
         },
         ErrorCode::Shape,
         {"__metadata__.tokens has 5 entries", "T = 6"}},
        {"token id count != T",
         [] {
             TraceMetadata m = baseMeta(1);
             m.tokenIds.push_back(99);
             return customLayers(m, qkv(0));
         },
         ErrorCode::Shape,
         {"__metadata__.token_ids has 7 entries", "T = 6"}},
        {"mixed weights-only layers",
         [] {
             auto t = qkv(0);
             t.push_back({"layers.1.attn", {kHeads, kT, kT}});
             return customLayers(baseMeta(2), t);
         },
         ErrorCode::Shape,
         {"tensor layers.1.q is missing"}},
        {"attn not square",
         [] {
             return customLayers(baseMeta(1), {{"layers.0.attn", {kHeads, kT, kT + 1}}});
         },
         ErrorCode::Shape,
         {"tensor layers.0.attn", "shape [4,6,7]", "[heads=4, T, T]"}},
        {"zero tokens",
         [] {
             TraceMetadata m = baseMeta(1);
             m.tokens.clear();
             m.tokenIds.clear();
             return customLayers(m, qkv(0, 0));
         },
         ErrorCode::Shape,
         {"tensor layers.0.q has T = 0"}},
        // Learned sinks (format v2): [heads] finite logits, only in a v2 file.
        {"sinks in a v1 file",
         [] { return withSinks(1, {kHeads}, std::vector<float>(kHeads, 0.5f)); },
         ErrorCode::Format,
         {"tensor layers.0.sinks (learned sinks) needs trace format version 2", "version is 1"}},
        {"sinks wrong length",
         [] { return withSinks(2, {kHeads - 1}, std::vector<float>(kHeads - 1, 0.5f)); },
         ErrorCode::Shape,
         {"tensor layers.0.sinks: shape [3]", "(expected [heads=4])"}},
        {"sinks two-dimensional",
         [] {
             return withSinks(2, {kHeads, 1}, std::vector<float>(kHeads, 0.5f));
         },
         ErrorCode::Shape,
         {"tensor layers.0.sinks: shape [4,1]", "(expected [heads=4])"}},
        {"sinks NaN",
         [] {
             return withSinks(2, {kHeads}, {0.5f, std::numeric_limits<float>::quiet_NaN(), 0.0f, 1.0f});
         },
         ErrorCode::Format,
         {"tensor layers.0.sinks: head 1's sink logit is NaN", "expected a finite number"}},
        {"sinks infinite",
         [] {
             return withSinks(2, {kHeads}, {0.5f, 0.0f, 0.0f, -std::numeric_limits<float>::infinity()});
         },
         ErrorCode::Format,
         {"tensor layers.0.sinks: head 3's sink logit is infinite"}},
        // ALiBi slopes of the model's own (format v2): one finite number per head, with alibi.
        {"alibi_slopes in a v1 file",
         [] {
             return withAlibiSlopes(1, true, numbers({0.5, 0.25, 0.125, 0.0625}));
         },
         ErrorCode::Format,
         {"__metadata__.layers[0].alibi_slopes", "needs format version 2", "the file says 1"}},
        {"alibi_slopes wrong length",
         [] {
             return withAlibiSlopes(2, true, numbers({0.5, 0.25, 0.125}));
         },
         ErrorCode::Format,
         {"layers[0].alibi_slopes", "has 3 entries", "array of 4 finite numbers"}},
        {"alibi_slopes not an array",
         [] { return withAlibiSlopes(2, true, Json(0.5)); },
         ErrorCode::Format,
         {"layers[0].alibi_slopes", "is not an array"}},
        {"alibi_slopes not numbers",
         [] {
             Json a = numbers({0.5, 0.25, 0.125});
             a.push(Json("x"));
             return withAlibiSlopes(2, true, a);
         },
         ErrorCode::Format,
         {"layers[0].alibi_slopes", "holds \"x\""}},
        {"alibi_slopes without alibi",
         [] {
             return withAlibiSlopes(2, false, numbers({0.5, 0.25, 0.125, 0.0625}));
         },
         ErrorCode::Format,
         {"layers[0].alibi_slopes", "alibi is not true"}},
    };
    return all;
}

QByteArray fileHash(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    QCryptographicHash h(QCryptographicHash::Sha256);
    h.addData(&f);
    return h.result();
}

}  // namespace

class TestTraceErrors : public QObject {
    Q_OBJECT

private:
    QTemporaryDir m_dir;

    QString writeBytes(const char* name, const Bytes& bytes) {
        const QString path = m_dir.filePath(name);
        QFile f(path);
        if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) return {};
        f.write(reinterpret_cast<const char*>(bytes.data()), qint64(bytes.size()));
        return path;
    }

private slots:
    void initTestCase() { QVERIFY(m_dir.isValid()); }

    void baseTraceIsValid() {
        // Guards the table below: each case breaks exactly one thing of a valid file.
        const QString path = writeBytes("good.attn.safetensors", baseImage());
        auto t = Trace::open(path.toStdString(), OpenOptions{.scanValues = true});
        QVERIFY2(t.ok(), t.message().c_str());
        QCOMPARE((*t)->numLayers(), 2);
        QVERIFY((*t)->warnings().empty());
    }

    void badInput_data() {
        QTest::addColumn<int>("index");
        for (size_t i = 0; i < cases().size(); ++i) QTest::newRow(cases()[i].name) << int(i);
    }
    void badInput() {
        QFETCH(int, index);
        const Case& c = cases()[size_t(index)];
        const QString path = writeBytes("bad.attn.safetensors", c.build());
        QVERIFY(!path.isEmpty());
        const QByteArray before = fileHash(path);
        const QDateTime mtime = QFileInfo(path).lastModified();

        for (bool scan : {false, true}) {
            auto t = Trace::open(path.toStdString(), OpenOptions{.scanValues = scan});
            QVERIFY2(!t.ok(), "a malformed file was accepted");
            const std::string& msg = t.message();
            QVERIFY2(t.status().code() == c.code,
                     qPrintable(QString("code %1, expected %2: %3")
                                    .arg(errorCodeName(t.status().code()), errorCodeName(c.code), msg.c_str())));
            QVERIFY2(msg.rfind(path.toStdString() + ": ", 0) == 0, msg.c_str());  // names the file first
            for (const std::string& f : c.fragments)
                QVERIFY2(msg.find(f) != std::string::npos,
                         qPrintable(QString("'%1' not in: %2").arg(f.c_str(), msg.c_str())));
            QVERIFY2(msg.find('\n') == std::string::npos, msg.c_str());  // one line
        }
        // The input file is never modified.
        QCOMPARE(fileHash(path), before);
        QCOMPARE(QFileInfo(path).lastModified(), mtime);
    }

    void ioErrors_data() {
        QTest::addColumn<QString>("path");
        QTest::addColumn<QString>("fragment");
        QTest::newRow("missing file") << m_dir.filePath("nope.attn.safetensors") << "cannot open";
        QTest::newRow("directory") << m_dir.path() << "not a regular file";
        const QString fifo = m_dir.filePath("fifo.attn.safetensors");
        if (mkfifo(fifo.toLocal8Bit().constData(), 0600) == 0)  // must not block waiting for a writer
            QTest::newRow("fifo") << fifo << "not a regular file";
    }
    void ioErrors() {
        QFETCH(QString, path);
        QFETCH(QString, fragment);
        auto t = Trace::open(path.toStdString());
        QVERIFY(!t.ok());
        QCOMPARE(t.status().code(), ErrorCode::IoError);
        QVERIFY2(QString::fromStdString(t.message()).startsWith(path), t.message().c_str());
        QVERIFY2(QString::fromStdString(t.message()).contains(fragment), t.message().c_str());
    }

    void nonFiniteValuesAreCounted_data() {
        QTest::addColumn<DType>("dtype");
        QTest::newRow("F32") << DType::F32;
        QTest::newRow("F16") << DType::F16;
        QTest::newRow("BF16") << DType::BF16;
    }
    void nonFiniteValuesAreCounted() {
        QFETCH(DType, dtype);
        const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
        TraceMetadata m = baseMeta(2);
        TraceWriter w(m);
        uint32_t seed = 5;
        std::vector<float> q1 = randomValues(size_t(kHeads * kT * kDim), seed++);
        // Layer 1 q: 3 NaN and 2 Inf, in heads 0 and 3; layer 0 v: 1 -Inf in kv head 1.
        q1[0] = nan;
        q1[7] = nan;
        q1[size_t(3 * kT * kDim + 1)] = nan;
        q1[9] = inf;
        q1[size_t(3 * kT * kDim + 2)] = -inf;
        std::vector<float> v0 = randomValues(size_t(kKv * kT * kDim), seed++);
        v0[size_t(kT * kDim + 4)] = -inf;
        for (int l = 0; l < 2; ++l)
            for (auto [name, dims] : qkv(l)) {
                std::vector<float> vals = randomValues(size_t(dims[0] * dims[1] * dims[2]), seed++);
                if (name == "layers.1.q") vals = q1;
                if (name == "layers.0.v") vals = v0;
                w.addTensor(name, dtype, dims, vals);
            }
        const QString path = writeBytes("nan.attn.safetensors", w.serialize());
        const QByteArray before = fileHash(path);

        int progressCalls = 0;
        double lastFraction = -1;
        auto t = Trace::open(path.toStdString(), OpenOptions{.scanValues = true}, [&](double f, std::string_view) {
            ++progressCalls;
            lastFraction = f;
            return true;
        });
        QVERIFY2(t.ok(), t.message().c_str());
        QVERIFY(progressCalls > 0);
        QCOMPARE(lastFraction, 1.0);
        const auto& nf = (*t)->nonFinite();
        QCOMPARE(nf.size(), size_t(2));
        QCOMPARE(nf[0].tensor, std::string("layers.0.v"));
        QCOMPARE(nf[0].nan, int64_t(0));
        QCOMPARE(nf[0].inf, int64_t(1));
        QCOMPARE(nf[1].tensor, std::string("layers.1.q"));
        QCOMPARE(nf[1].nan, int64_t(3));
        QCOMPARE(nf[1].inf, int64_t(2));
        QVERIFY(!(*t)->warnings().empty());

        // head() counts per head (v: query heads 2 and 3 use kv head 1).
        const int64_t expectQ[kHeads] = {3, 0, 0, 2};
        for (int h = 0; h < kHeads; ++h) {
            auto q = (*t)->head(1, h, Which::Q);
            QVERIFY(q.ok());
            QCOMPARE(q->nonFinite, expectQ[h]);
            auto v = (*t)->head(0, h, Which::V);
            QVERIFY(v.ok());
            QCOMPARE(v->nonFinite, int64_t(h >= 2 ? 1 : 0));
        }
        // Without the scan, open stays cheap and reports nothing; head() still counts.
        auto lazy = Trace::open(path.toStdString());
        QVERIFY(lazy.ok());
        QVERIFY((*lazy)->nonFinite().empty());
        QCOMPARE((*lazy)->head(1, 0, Which::Q)->nonFinite, int64_t(3));
        QCOMPARE(fileHash(path), before);
    }

    void scanCanBeCancelled() {
        const QString path = writeBytes("cancel.attn.safetensors", baseImage());
        auto t = Trace::open(path.toStdString(), OpenOptions{.scanValues = true},
                             [](double, std::string_view) { return false; });
        QVERIFY(!t.ok());
        QCOMPARE(t.status().code(), ErrorCode::Cancelled);
        QVERIFY(QString::fromStdString(t.message()).startsWith(path));
    }

    void unknownNamesAreWarnings() {
        // Forward compatibility: names a later version may add are reported, not refused.
        const Bytes b = editImage(baseImage(), [](Json& h, Bytes& d) {
            metadata(h).set("future_key", "x");
            h.set("model.extra_tensor",
                  Json(Json::Object{
                      {"dtype", "F32"}, {"shape", shape({2})}, {"data_offsets", offsets(d.size(), d.size() + 8)}}));
            d.resize(d.size() + 8 + 16);  // 8 bytes for the tensor, 16 that belong to nothing
        });
        const QString path = writeBytes("warn.attn.safetensors", b);
        auto t = Trace::open(path.toStdString());
        QVERIFY2(t.ok(), t.message().c_str());
        const auto& w = (*t)->warnings();
        auto has = [&](const char* s) {
            return std::any_of(w.begin(), w.end(),
                               [&](const std::string& x) { return x.find(s) != std::string::npos; });
        };
        QCOMPARE(w.size(), size_t(3));
        QVERIFY(has("__metadata__.future_key is not part of trace format v1"));
        QVERIFY(has("tensor model.extra_tensor is not part of trace format v1"));
        QVERIFY(has("16 bytes of the data section belong to no tensor"));
    }

    void garbageNeverCrashes() {
        // Random byte flips in a valid file: any outcome but a crash or an unnamed error is fine.
        const Bytes good = baseImage();
        std::mt19937 rng(1234);
        std::uniform_int_distribution<size_t> pos(0, good.size() - 1);
        std::uniform_int_distribution<int> byte(0, 255);
        int rejected = 0;
        for (int round = 0; round < 300; ++round) {
            Bytes b = good;
            for (int k = 0; k < 1 + round % 4; ++k) b[pos(rng)] = std::byte(byte(rng));
            const QString path = writeBytes("flip.attn.safetensors", b);
            auto t = Trace::open(path.toStdString(), OpenOptions{.scanValues = true});
            if (!t.ok()) {
                ++rejected;
                QVERIFY2(QString::fromStdString(t.message()).startsWith(path), t.message().c_str());
                continue;
            }
            for (int h = 0; h < (*t)->config(0).heads; ++h) QVERIFY((*t)->head(0, h, Which::K).ok());
        }
        QVERIFY(rejected > 0);
    }
};

QTEST_GUILESS_MAIN(TestTraceErrors)
#include "tst_trace_errors.moc"
