// Json: parsing (valid and hostile input), serialisation, escapes and the depth limit.
#include <QtTest>
// (No raw string literals here: moc 6.4 mis-lexes them and then finds no Q_OBJECT class.)

#include <cmath>
#include <limits>

#include "attnscope/json.h"

using attnscope::ErrorCode;
using attnscope::Json;

class TestJson : public QObject {
    Q_OBJECT

private slots:
    void parsesValid_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<QString>("compact");  // expected dump() of the parsed value
        QTest::newRow("null") << "null"
                              << "null";
        QTest::newRow("true") << " true "
                              << "true";
        QTest::newRow("false") << "false"
                               << "false";
        QTest::newRow("int") << "42"
                             << "42";
        QTest::newRow("negative") << "-7"
                                  << "-7";
        QTest::newRow("fraction") << "0.5"
                                  << "0.5";
        QTest::newRow("exponent") << "1e3"
                                  << "1000";
        QTest::newRow("neg exponent") << "2.5E-3"
                                      << "0.0025";
        QTest::newRow("big int exact") << "9007199254740992"
                                       << "9007199254740992";
        QTest::newRow("string") << "\"abc\""
                                << "\"abc\"";
        QTest::newRow("escapes") << "\"a\\\"b\\\\c\\/d\\n\\t\\r\\b\\f\""
                                 << "\"a\\\"b\\\\c/d\\n\\t\\r\\b\\f\"";
        QTest::newRow("unicode escape") << "\"\\u00e9\\u4e2d\""
                                        << "\"é中\"";
        QTest::newRow("surrogate pair") << "\"\\ud83d\\ude00\""
                                        << "\"😀\"";
        QTest::newRow("raw utf8") << "\"▁the Ġcat\""
                                  << "\"▁the Ġcat\"";
        QTest::newRow("control escape") << "\"\\u0001\""
                                        << "\"\\u0001\"";
        QTest::newRow("empty array") << "[ ]"
                                     << "[]";
        QTest::newRow("empty object") << "{ }"
                                      << "{}";
        QTest::newRow("nested") << "{\"a\": [1, {\"b\": null}], \"c\": \"d\"}"
                                << "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}";
        QTest::newRow("order kept") << "{\"z\":1,\"a\":2,\"m\":3}"
                                    << "{\"z\":1,\"a\":2,\"m\":3}";
        QTest::newRow("huge exponent") << "1e999"
                                       << "null";
        QTest::newRow("tiny exponent") << "1e-999"
                                       << "0";
        QTest::newRow("depth 255") << QString(255, '[') + QString(255, ']') << QString(255, '[') + QString(255, ']');
    }
    void parsesValid() {
        QFETCH(QString, text);
        QFETCH(QString, compact);
        auto r = Json::parse(text.toStdString());
        QVERIFY2(r.ok(), r.message().c_str());
        QCOMPARE(QString::fromStdString(r->dump()), compact);
        // The compact output parses back to the same thing.
        auto again = Json::parse(r->dump());
        QVERIFY(again.ok());
        QCOMPARE(QString::fromStdString(again->dump()), compact);
    }

    void rejectsInvalid_data() {
        QTest::addColumn<QString>("text");
        QTest::addColumn<int>("offset");        // byte offset named in the message
        QTest::addColumn<QString>("fragment");  // what the message says
        QTest::newRow("empty") << "" << 0 << "unexpected end";
        QTest::newRow("trailing") << "1 2" << 2 << "trailing";
        QTest::newRow("unterminated string") << "\"abc" << 4 << "unterminated string";
        QTest::newRow("raw control char") << "\"a\nb\"" << 2 << "control character";
        QTest::newRow("bad escape") << "\"\\x\"" << 2 << "invalid escape";
        QTest::newRow("bad hex") << "\"\\u12g4\"" << 3 << "hex digit";
        QTest::newRow("lone low surrogate") << "\"\\udc00\"" << 7 << "lone low surrogate";
        QTest::newRow("lone high surrogate") << "\"\\ud800x\"" << 7 << "lone high surrogate";
        QTest::newRow("leading zero") << "01" << 1 << "trailing";
        QTest::newRow("dot without digit") << "1." << 2 << "digit after the decimal point";
        QTest::newRow("exponent without digit") << "1e" << 2 << "digit in the exponent";
        QTest::newRow("plus sign") << "+1" << 0 << "expected a value";
        QTest::newRow("nan literal") << "NaN" << 0 << "expected a value";
        QTest::newRow("bad literal") << "tru" << 0 << "expected 'true'";
        QTest::newRow("missing colon") << "{\"a\" 1}" << 5 << "expected ':'";
        QTest::newRow("trailing comma obj") << "{\"a\":1,}" << 7 << "string key";
        QTest::newRow("trailing comma arr") << "[1,]" << 3 << "expected a value";
        QTest::newRow("unclosed array") << "[1" << 2 << "inside array";
        QTest::newRow("unclosed object") << "{\"a\":1" << 6 << "inside object";
        QTest::newRow("non-string key") << "{1:2}" << 1 << "string key";
        QTest::newRow("too deep") << QString(300, '[') + QString(300, ']') << 256 << "nesting deeper than 256";
    }
    void rejectsInvalid() {
        QFETCH(QString, text);
        QFETCH(int, offset);
        QFETCH(QString, fragment);
        auto r = Json::parse(text.toStdString(), "model.attn.safetensors: header");
        QVERIFY(!r.ok());
        QCOMPARE(r.status().code(), ErrorCode::Format);
        const QString msg = QString::fromStdString(r.message());
        QVERIFY2(
            msg.startsWith("model.attn.safetensors: header: invalid JSON at byte " + QString::number(offset) + ":"),
            qPrintable(msg));
        QVERIFY2(msg.contains(fragment), qPrintable(msg));
    }

    void rejectsInvalidUtf8() {
        // JSON text must be UTF-8 (RFC 8259): raw bytes that are not well-formed UTF-8 are refused
        // at their offset, so no invalid UTF-8 reaches JSON, HTML, CSV or Markdown outputs.
        const struct {
            std::string text;
            int offset;
            const char* byte;
        } cases[] = {
            {"\"tok\xFF\xFEen\"", 4, "0xFF"},     // the bytes FF FE inside a token string
            {"{\"a\":\"\xC0\xAF\"}", 6, "0xC0"},  // overlong '/'
            {"[\"\xED\xA0\x80\"]", 2, "0xED"},    // an encoded surrogate
            {"\"\xF4\x90\x80\x80\"", 1, "0xF4"},  // above U+10FFFF
            {"\"ab\xE2\x82\"", 3, "0xE2"},        // truncated sequence
            {"{\"k\x80\":1}", 3, "0x80"},         // a stray continuation byte in a key
        };
        for (const auto& c : cases) {
            auto r = Json::parse(c.text, "t.attn.safetensors: header");
            QVERIFY(!r.ok());
            const QString msg = QString::fromStdString(r.message());
            QVERIFY2(
                msg.startsWith("t.attn.safetensors: header: invalid JSON at byte " + QString::number(c.offset) + ":"),
                qPrintable(msg));
            QVERIFY2(msg.contains("invalid UTF-8") && msg.contains(c.byte), qPrintable(msg));
        }
        // Well-formed multi-byte sequences of every length pass.
        auto ok = Json::parse("\"\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80 \xEF\xBF\xBD\"");
        QVERIFY2(ok.ok(), ok.message().c_str());
        QCOMPARE(ok->asString(), std::string("\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80 \xEF\xBF\xBD"));
    }

    void hostileDepthDoesNotCrash() {
        // Deep enough to overflow the stack of a naive recursive parser.
        const std::string deep(1'000'000, '[');
        auto r = Json::parse(deep);
        QVERIFY(!r.ok());
        QVERIFY(r.message().find("nesting deeper") != std::string::npos);
    }

    void dumpsNonFiniteAsNull() {
        Json a = Json::array();
        a.push(std::numeric_limits<double>::quiet_NaN());
        a.push(std::numeric_limits<double>::infinity());
        a.push(-std::numeric_limits<double>::infinity());
        a.push(1.5);
        QCOMPARE(QString::fromStdString(a.dump()), QString("[null,null,null,1.5]"));
    }

    void doublesRoundTrip() {
        // Shortest representation that parses back to the identical double.
        for (double d : {0.1, 1.0 / 3.0, 0.125, 1e-300, 6.02214076e23, -2.5e-7, 1.0 / std::sqrt(64.0)}) {
            auto r = Json::parse(Json(d).dump());
            QVERIFY(r.ok());
            QCOMPARE(r->asNumber(), d);
        }
    }

    void escapesControlCharacters() {
        std::string s = "tab\there \"q\" back\\slash nl\n";
        s.push_back('\x01');
        s.push_back('\x1f');
        const std::string dumped = Json(s).dump();
        QCOMPARE(QString::fromStdString(dumped), QString("\"tab\\there \\\"q\\\" back\\\\slash nl\\n\\u0001\\u001f\""));
        auto r = Json::parse(dumped);
        QVERIFY(r.ok());
        QCOMPARE(r->asString(), s);
    }

    void objectEditing() {
        Json o;
        o.set("a", 1);
        o.set("b", "x");
        o.set("a", 2);  // replaces, keeps position
        QCOMPARE(o.size(), size_t(2));
        QCOMPARE(QString::fromStdString(o.dump()), QString("{\"a\":2,\"b\":\"x\"}"));
        QVERIFY(o.find("a") && o.find("a")->asNumber() == 2);
        QVERIFY(!o.find("zz"));
        QVERIFY(!Json(3).find("a"));
        Json copy = o;
        copy.set("c", true);  // copies are independent
        QCOMPARE(o.size(), size_t(2));
        QCOMPARE(copy.size(), size_t(3));
    }

    void prettyPrint() {
        Json o;
        o.set("a", Json(Json::Array{Json(1), Json(2)}));
        o.set("e", Json::object());
        QCOMPARE(QString::fromStdString(o.dump(2)), QString("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"e\": {}\n}"));
        auto back = Json::parse(o.dump(2));
        QVERIFY(back.ok());
        QCOMPARE(back->dump(), o.dump());
    }

    void duplicateKeysKept() {
        // The trace reader must see duplicates to reject duplicated tensors; find() gives the first.
        auto r = Json::parse("{\"a\":1,\"a\":2}");
        QVERIFY(r.ok());
        QCOMPARE(r->size(), size_t(2));
        QCOMPARE(r->find("a")->asNumber(), 1.0);
    }
};

QTEST_GUILESS_MAIN(TestJson)
#include "tst_json.moc"
