#include "attnscope/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>

namespace attnscope {

namespace {

/// Hostile input must not overflow the stack through nesting.
constexpr int kMaxDepth = 256;
/// Integers up to 2^53 are exact in a double; print those without a fraction.
constexpr double kMaxExactInteger = 9007199254740992.0;

class Parser {
public:
    Parser(std::string_view text, std::string_view context) : m_text(text), m_context(context) {}

    Result<Json> run() {
        skipSpace();
        Json value;
        if (!parseValue(value, 0)) return error();
        skipSpace();
        if (m_pos != m_text.size()) {
            fail("unexpected trailing characters after the JSON value");
            return error();
        }
        return value;
    }

    /// A JSON array of strings straight into `out`, without a Json value per element (token lists
    /// of millions of entries: about 32 bytes a token instead of a tree's 110). Returns
    /// std::nullopt with `out` cleared when an element is not a string (the caller falls back
    /// to the general parser for its message); errors in the JSON itself as parse() gives them.
    Result<std::optional<size_t>> runStringArray(std::vector<std::string>& out) {
        out.clear();
        skipSpace();
        if (m_pos >= m_text.size() || m_text[m_pos] != '[') return std::optional<size_t>();
        ++m_pos;
        skipSpace();
        if (m_pos < m_text.size() && m_text[m_pos] == ']') {
            ++m_pos;
        } else {
            for (;;) {
                skipSpace();
                if (m_pos >= m_text.size() || m_text[m_pos] != '"') {
                    out.clear();
                    return std::optional<size_t>();
                }
                std::string s;
                if (!parseString(s)) return error();
                out.push_back(std::move(s));
                bool closed = false;
                if (!separator(']', "array", closed)) return error();
                if (closed) break;
            }
        }
        skipSpace();
        if (m_pos != m_text.size()) {
            fail("unexpected trailing characters after the JSON value");
            return error();
        }
        return std::optional<size_t>(out.size());
    }

    /// A JSON array of numbers, each handed to `each` without a Json value kept per element
    /// (token_ids and documents lists of millions). nullopt when the text is not an array or an
    /// element is not a number; `each` returning false stops the parse (the caller knows why).
    Result<std::optional<size_t>> runNumberArray(const std::function<bool(double)>& each) {
        skipSpace();
        if (m_pos >= m_text.size() || m_text[m_pos] != '[') return std::optional<size_t>();
        ++m_pos;
        size_t count = 0;
        skipSpace();
        if (m_pos < m_text.size() && m_text[m_pos] == ']') {
            ++m_pos;
        } else {
            for (;;) {
                skipSpace();
                if (m_pos >= m_text.size() || (m_text[m_pos] != '-' && !isDigit(m_text[m_pos])))
                    return std::optional<size_t>();
                Json value;
                if (!parseNumber(value)) return error();
                ++count;
                if (!each(value.asNumber())) return std::optional<size_t>(count);
                bool closed = false;
                if (!separator(']', "array", closed)) return error();
                if (closed) break;
            }
        }
        skipSpace();
        if (m_pos != m_text.size()) {
            fail("unexpected trailing characters after the JSON value");
            return error();
        }
        return std::optional<size_t>(count);
    }

private:
    Status error() const { return Status(ErrorCode::Format, m_error); }

    bool fail(const std::string& what) {
        if (m_error.empty())
            m_error = std::string(m_context) + ": invalid JSON at byte " + std::to_string(m_pos) + ": " + what;
        return false;
    }

    void skipSpace() {
        while (m_pos < m_text.size()) {
            const char c = m_text[m_pos];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
            ++m_pos;
        }
    }

    bool literal(std::string_view word) {
        if (m_text.substr(m_pos, word.size()) != word) return fail("expected '" + std::string(word) + "'");
        m_pos += word.size();
        return true;
    }

    bool parseValue(Json& out, int depth) {
        if (depth >= kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
        if (m_pos >= m_text.size()) return fail("unexpected end of input, expected a value");
        switch (m_text[m_pos]) {
        case '{': return parseObject(out, depth);
        case '[': return parseArray(out, depth);
        case '"': {
            std::string s;
            if (!parseString(s)) return false;
            out = Json(std::move(s));
            return true;
        }
        case 't': out = Json(true); return literal("true");
        case 'f': out = Json(false); return literal("false");
        case 'n': out = Json(nullptr); return literal("null");
        default: return parseNumber(out);
        }
    }

    /// After a member or item: consumes ',' (more follow) or `close` (sets `closed`).
    bool separator(char close, const char* container, bool& closed) {
        skipSpace();
        if (m_pos >= m_text.size() || (m_text[m_pos] != ',' && m_text[m_pos] != close)) {
            const std::string expected = std::string("',' or '") + close + "'";
            if (m_pos >= m_text.size())
                return fail("unexpected end of input inside " + std::string(container) + ", expected " + expected);
            return fail("expected " + expected + " in " + container);
        }
        closed = m_text[m_pos] == close;
        ++m_pos;
        return true;
    }

    bool parseObject(Json& out, int depth) {
        ++m_pos;  // '{'
        Json::Object members;
        skipSpace();
        if (m_pos < m_text.size() && m_text[m_pos] == '}') {
            ++m_pos;
            out = Json(std::move(members));
            return true;
        }
        for (;;) {
            skipSpace();
            if (m_pos >= m_text.size() || m_text[m_pos] != '"') return fail("expected a string key in object");
            std::string key;
            if (!parseString(key)) return false;
            skipSpace();
            if (m_pos >= m_text.size() || m_text[m_pos] != ':') return fail("expected ':' after object key");
            ++m_pos;
            skipSpace();
            Json value;
            if (!parseValue(value, depth + 1)) return false;
            members.emplace_back(std::move(key), std::move(value));
            bool closed = false;
            if (!separator('}', "object", closed)) return false;
            if (closed) break;
        }
        out = Json(std::move(members));
        return true;
    }

    bool parseArray(Json& out, int depth) {
        ++m_pos;  // '['
        Json::Array items;
        skipSpace();
        if (m_pos < m_text.size() && m_text[m_pos] == ']') {
            ++m_pos;
            out = Json(std::move(items));
            return true;
        }
        for (;;) {
            skipSpace();
            Json value;
            if (!parseValue(value, depth + 1)) return false;
            items.push_back(std::move(value));
            bool closed = false;
            if (!separator(']', "array", closed)) return false;
            if (closed) break;
        }
        out = Json(std::move(items));
        return true;
    }

    bool hex4(uint32_t& out) {
        if (m_pos + 4 > m_text.size()) return fail("truncated \\u escape");
        out = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = m_text[m_pos + i];
            out <<= 4;
            if (c >= '0' && c <= '9')
                out |= uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f')
                out |= uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                out |= uint32_t(c - 'A' + 10);
            else
                return fail("invalid hex digit in \\u escape");
        }
        m_pos += 4;
        return true;
    }

    static void appendUtf8(std::string& s, uint32_t cp) {
        if (cp < 0x80) {
            s += char(cp);
        } else if (cp < 0x800) {
            s += char(0xC0 | (cp >> 6));
            s += char(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s += char(0xE0 | (cp >> 12));
            s += char(0x80 | ((cp >> 6) & 0x3F));
            s += char(0x80 | (cp & 0x3F));
        } else {
            s += char(0xF0 | (cp >> 18));
            s += char(0x80 | ((cp >> 12) & 0x3F));
            s += char(0x80 | ((cp >> 6) & 0x3F));
            s += char(0x80 | (cp & 0x3F));
        }
    }

    bool parseEscape(std::string& s) {
        if (m_pos >= m_text.size()) return fail("unterminated escape in string");
        const char c = m_text[m_pos++];
        switch (c) {
        case '"': s += '"'; return true;
        case '\\': s += '\\'; return true;
        case '/': s += '/'; return true;
        case 'b': s += '\b'; return true;
        case 'f': s += '\f'; return true;
        case 'n': s += '\n'; return true;
        case 'r': s += '\r'; return true;
        case 't': s += '\t'; return true;
        case 'u': break;
        default: --m_pos; return fail("invalid escape character in string");
        }
        uint32_t cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by a low one; together they name one code point.
            if (m_text.substr(m_pos, 2) != "\\u") return fail("lone high surrogate in \\u escape");
            m_pos += 2;
            uint32_t low = 0;
            if (!hex4(low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("lone low surrogate in \\u escape");
        }
        appendUtf8(s, cp);
        return true;
    }

    /// Offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no
    /// overlong forms, no surrogates, nothing above U+10FFFF), or npos.
    static size_t invalidUtf8(std::string_view text) {
        size_t i = 0;
        const size_t n = text.size();
        auto cont = [&](size_t k) { return k < n && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80; };
        while (i < n) {
            const unsigned char c = static_cast<unsigned char>(text[i]);
            if (c < 0x80) {
                ++i;
                continue;
            }
            const unsigned char c1 = i + 1 < n ? static_cast<unsigned char>(text[i + 1]) : 0;
            if (c >= 0xC2 && c <= 0xDF && cont(i + 1)) {
                i += 2;
            } else if (c >= 0xE0 && c <= 0xEF && cont(i + 1) && cont(i + 2) && !(c == 0xE0 && c1 < 0xA0) &&
                       !(c == 0xED && c1 >= 0xA0)) {
                i += 3;
            } else if (c >= 0xF0 && c <= 0xF4 && cont(i + 1) && cont(i + 2) && cont(i + 3) &&
                       !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90)) {
                i += 4;
            } else {
                return i;
            }
        }
        return std::string_view::npos;
    }

    bool parseString(std::string& s) {
        ++m_pos;  // opening quote
        for (;;) {
            // Copy runs of plain characters at once.
            const size_t start = m_pos;
            while (m_pos < m_text.size()) {
                const unsigned char c = static_cast<unsigned char>(m_text[m_pos]);
                if (c == '"' || c == '\\' || c < 0x20) break;
                ++m_pos;
            }
            if (const size_t bad = invalidUtf8(m_text.substr(start, m_pos - start)); bad != std::string_view::npos) {
                m_pos = start + bad;
                char byte[8];
                std::snprintf(byte, sizeof byte, "0x%02X", unsigned(static_cast<unsigned char>(m_text[m_pos])));
                return fail(std::string("invalid UTF-8 in a string (byte ") + byte + "): JSON text must be UTF-8");
            }
            s.append(m_text.data() + start, m_pos - start);
            if (m_pos >= m_text.size()) return fail("unterminated string");
            const char c = m_text[m_pos];
            if (c == '"') {
                ++m_pos;
                return true;
            }
            if (c == '\\') {
                ++m_pos;
                if (!parseEscape(s)) return false;
                continue;
            }
            return fail("control character inside string (must be escaped)");
        }
    }

    static bool isDigit(char c) { return c >= '0' && c <= '9'; }

    /// Rough power of ten of a grammatically valid number (enough to tell huge from tiny).
    static long long decimalExponent(std::string_view num) {
        constexpr long long kClamp = 1000000000;  // beyond any double; avoids overflow
        size_t i = num[0] == '-' ? 1 : 0;
        long long intDigits = 0, leadingFractionZeros = 0;
        bool seenNonZero = false;
        for (; i < num.size() && isDigit(num[i]); ++i) {
            if (num[i] != '0') seenNonZero = true;
            if (seenNonZero) ++intDigits;
        }
        if (i < num.size() && num[i] == '.') {
            for (++i; i < num.size() && isDigit(num[i]); ++i)
                if (!seenNonZero) {
                    if (num[i] == '0')
                        ++leadingFractionZeros;
                    else
                        seenNonZero = true;
                }
        }
        long long exponent = 0;
        if (i < num.size()) {  // 'e' or 'E'
            ++i;
            const bool negative = num[i] == '-';
            if (num[i] == '-' || num[i] == '+') ++i;
            for (; i < num.size(); ++i) exponent = std::min(kClamp, exponent * 10 + (num[i] - '0'));
            if (negative) exponent = -exponent;
        }
        return (intDigits > 0 ? intDigits - 1 : -(leadingFractionZeros + 1)) + exponent;
    }

    bool parseNumber(Json& out) {
        // Validate the strict JSON grammar first: from_chars alone would accept "01" or "1.".
        const size_t start = m_pos;
        size_t p = m_pos;
        const size_t n = m_text.size();
        if (p < n && m_text[p] == '-') ++p;
        if (p >= n || !isDigit(m_text[p])) return fail("expected a value");
        if (m_text[p] == '0')
            ++p;
        else
            while (p < n && isDigit(m_text[p])) ++p;
        if (p < n && m_text[p] == '.') {
            ++p;
            if (p >= n || !isDigit(m_text[p])) {
                m_pos = p;
                return fail("expected a digit after the decimal point");
            }
            while (p < n && isDigit(m_text[p])) ++p;
        }
        if (p < n && (m_text[p] == 'e' || m_text[p] == 'E')) {
            ++p;
            if (p < n && (m_text[p] == '+' || m_text[p] == '-')) ++p;
            if (p >= n || !isDigit(m_text[p])) {
                m_pos = p;
                return fail("expected a digit in the exponent");
            }
            while (p < n && isDigit(m_text[p])) ++p;
        }
        double value = 0;
        const auto r = std::from_chars(m_text.data() + start, m_text.data() + p, value);
        if (r.ec == std::errc::result_out_of_range) {
            // Too large becomes ±inf (rejected later wherever a finite number is required), too
            // small becomes ±0, as other parsers do.
            const bool negative = m_text[start] == '-';
            value = decimalExponent(m_text.substr(start, p - start)) > 0 ? HUGE_VAL : 0.0;
            if (negative) value = -value;
        } else if (r.ec != std::errc() || r.ptr != m_text.data() + p) {
            return fail("malformed number");
        }
        m_pos = p;
        out = Json(value);
        return true;
    }

    std::string_view m_text;
    std::string_view m_context;
    size_t m_pos = 0;
    std::string m_error;
};

void dumpString(std::string& out, const std::string& s) {
    static const char* const kHex = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out += kHex[c >> 4];
                out += kHex[c & 0xF];
            } else {
                out += ch;  // UTF-8 passes through unchanged
            }
        }
    }
    out += '"';
}

void dumpNumber(std::string& out, double d) {
    if (!std::isfinite(d)) {
        out += "null";  // JSON has no NaN/Inf
        return;
    }
    char buf[64];
    std::to_chars_result r;
    if (d == std::floor(d) && std::fabs(d) <= kMaxExactInteger)
        r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(d));
    else
        r = std::to_chars(buf, buf + sizeof buf, d);  // shortest form that round-trips
    out.append(buf, r.ptr);
}

void newline(std::string& out, int indent, int level) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(indent) * size_t(level), ' ');
}

void dumpValue(std::string& out, const Json& v, int indent, int level) {
    switch (v.type()) {
    case Json::Type::Null: out += "null"; return;
    case Json::Type::Bool: out += v.asBool() ? "true" : "false"; return;
    case Json::Type::Number: dumpNumber(out, v.asNumber()); return;
    case Json::Type::String: dumpString(out, v.asString()); return;
    case Json::Type::Array: {
        const auto& a = v.asArray();
        out += '[';
        for (size_t i = 0; i < a.size(); ++i) {
            if (i) out += ',';
            newline(out, indent, level + 1);
            dumpValue(out, a[i], indent, level + 1);
        }
        if (!a.empty()) newline(out, indent, level);
        out += ']';
        return;
    }
    case Json::Type::Object: {
        const auto& o = v.asObject();
        out += '{';
        for (size_t i = 0; i < o.size(); ++i) {
            if (i) out += ',';
            newline(out, indent, level + 1);
            dumpString(out, o[i].first);
            out += indent < 0 ? ":" : ": ";
            dumpValue(out, o[i].second, indent, level + 1);
        }
        if (!o.empty()) newline(out, indent, level);
        out += '}';
        return;
    }
    }
}

const Json::Array& emptyArray() {
    static const Json::Array empty;
    return empty;
}

const Json::Object& emptyObject() {
    static const Json::Object empty;
    return empty;
}

}  // namespace

Json::Json(Array a) : m_type(Type::Array), m_array(std::make_shared<Array>(std::move(a))) {}
Json::Json(Object o) : m_type(Type::Object), m_object(std::make_shared<Object>(std::move(o))) {}

Result<Json> Json::parse(std::string_view text, std::string_view context) { return Parser(text, context).run(); }

Result<bool> Json::parseNumberArray(std::string_view text, const std::function<bool(double)>& each,
                                    std::string_view context) {
    auto r = Parser(text, context).runNumberArray(each);
    if (!r) return r.status();
    return r->has_value();
}

Result<bool> Json::parseStringArray(std::string_view text, std::vector<std::string>& out, std::string_view context) {
    auto r = Parser(text, context).runStringArray(out);
    if (!r) return r.status();
    return r->has_value();
}

std::string Json::dump(int indent) const {
    std::string out;
    dumpValue(out, *this, indent, 0);
    return out;
}

const Json::Array& Json::asArray() const { return m_array ? *m_array : emptyArray(); }

Json::Array& Json::asArray() {
    if (!m_array) {
        m_type = Type::Array;
        m_array = std::make_shared<Array>();
    } else if (m_array.use_count() > 1) {
        m_array = std::make_shared<Array>(*m_array);  // copy on write: copies stay independent
    }
    return *m_array;
}

const Json::Object& Json::asObject() const { return m_object ? *m_object : emptyObject(); }

Json::Object& Json::asObject() {
    if (!m_object) {
        m_type = Type::Object;
        m_object = std::make_shared<Object>();
    } else if (m_object.use_count() > 1) {
        m_object = std::make_shared<Object>(*m_object);
    }
    return *m_object;
}

const Json* Json::find(std::string_view key) const {
    if (m_type != Type::Object || !m_object) return nullptr;
    for (const auto& [k, v] : *m_object)
        if (k == key) return &v;
    return nullptr;
}

Json& Json::set(std::string key, Json value) {
    if (m_type != Type::Object) *this = object();
    auto& members = asObject();
    for (auto& [k, v] : members)
        if (k == key) {
            v = std::move(value);
            return v;
        }
    members.emplace_back(std::move(key), std::move(value));
    return members.back().second;
}

Json& Json::push(Json value) {
    if (m_type != Type::Array) *this = array();
    auto& items = asArray();
    items.push_back(std::move(value));
    return items.back();
}

size_t Json::size() const {
    if (m_type == Type::Array) return asArray().size();
    if (m_type == Type::Object) return asObject().size();
    return 0;
}

}  // namespace attnscope
