#pragma once
// A small JSON value type (parse + serialise) for trace headers, reports and exports.
// Numbers are doubles; object key order is preserved as inserted (stable, readable output).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attnscope/status.h"

namespace attnscope {

class Json {
public:
    enum class Type { Null, Bool, Number, String, Array, Object };
    using Array = std::vector<Json>;
    using Object = std::vector<std::pair<std::string, Json>>;

    Json() = default;
    Json(std::nullptr_t) {}
    Json(bool b) : m_type(Type::Bool), m_bool(b) {}
    Json(double d) : m_type(Type::Number), m_number(d) {}
    Json(int v) : Json(static_cast<double>(v)) {}
    Json(int64_t v) : Json(static_cast<double>(v)) {}
    Json(uint64_t v) : Json(static_cast<double>(v)) {}
    Json(const char* s) : m_type(Type::String), m_string(s) {}
    Json(std::string s) : m_type(Type::String), m_string(std::move(s)) {}
    Json(std::string_view s) : m_type(Type::String), m_string(s) {}
    Json(Array a);
    Json(Object o);
    static Json array() { return Json(Array{}); }
    static Json object() { return Json(Object{}); }

    /// Parses text; the error names `context` (a file or field) and the byte offset.
    /// Depth is limited (256) so hostile input cannot overflow the stack.
    static Result<Json> parse(std::string_view text, std::string_view context = "JSON");
    /// Parses text that is a JSON array of strings into `out` without building a Json value per
    /// element (token lists of millions). Returns false, `out` empty, when the text is not an
    /// array or an element is not a string (parse() then says what is wrong); errors in the JSON
    /// itself are those of parse().
    static Result<bool> parseStringArray(std::string_view text, std::vector<std::string>& out,
                                         std::string_view context = "JSON");
    /// The same for an array of numbers, each handed to `each` in order (returning false stops
    /// early); false when the text is not an array or an element is not a number.
    static Result<bool> parseNumberArray(std::string_view text, const std::function<bool(double)>& each,
                                         std::string_view context = "JSON");
    /// Serialises; indent < 0 gives compact output. Non-finite numbers become null.
    std::string dump(int indent = -1) const;

    Type type() const { return m_type; }
    bool isNull() const { return m_type == Type::Null; }
    bool isBool() const { return m_type == Type::Bool; }
    bool isNumber() const { return m_type == Type::Number; }
    bool isString() const { return m_type == Type::String; }
    bool isArray() const { return m_type == Type::Array; }
    bool isObject() const { return m_type == Type::Object; }

    bool asBool() const { return m_bool; }
    double asNumber() const { return m_number; }
    const std::string& asString() const { return m_string; }
    const Array& asArray() const;
    Array& asArray();
    const Object& asObject() const;
    Object& asObject();

    /// Object member lookup; nullptr when absent or not an object.
    const Json* find(std::string_view key) const;
    /// Sets (or replaces) an object member; turns Null into an object.
    Json& set(std::string key, Json value);
    /// Appends to an array; turns Null into an array.
    Json& push(Json value);
    size_t size() const;

private:
    Type m_type = Type::Null;
    bool m_bool = false;
    double m_number = 0;
    std::string m_string;
    std::shared_ptr<Array> m_array;  // shared_ptr keeps Json copyable with incomplete types
    std::shared_ptr<Object> m_object;
};

}  // namespace attnscope
