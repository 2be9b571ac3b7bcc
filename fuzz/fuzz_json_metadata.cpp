// libFuzzer target for the JSON parser and the trace metadata reader (the __metadata__ object of a
// trace header): any byte string must parse or give a clean error, never a crash, a hang or a
// sanitizer report. What parses must survive dump -> parse -> dump unchanged, and never carry
// invalid UTF-8 out (JSON text is UTF-8; the parser refuses anything else). Build and run as
// fuzz_trace_reader (see README.md and docs/reliability.md):
//   build/fuzz/fuzz/fuzz_json_metadata -runs=2000000 build/fuzz/corpus_json fuzz/corpus_json
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "attnscope/json.h"
#include "trace_impl.h"

namespace {

bool validUtf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        const size_t n = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 9;
        if (n == 9 || i + n >= s.size()) return false;  // a bad lead byte or a cut sequence
        for (size_t j = 1; j <= n; ++j)
            if ((static_cast<unsigned char>(s[i + j]) >> 6) != 0x2) return false;
        i += n + 1;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace attnscope;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = Json::parse(text, "fuzz.json");
    // The lean string-array reader (token lists) agrees with the general parser: the same strings
    // when the text is an array of strings, the same error when the JSON is broken.
    std::vector<std::string> strings;
    auto lean = Json::parseStringArray(text, strings, "fuzz.json");
    if (lean && *lean) {
        if (!parsed || !parsed->isArray() || parsed->size() != strings.size()) __builtin_trap();
        for (size_t i = 0; i < strings.size(); ++i)
            if (!parsed->asArray()[i].isString() || parsed->asArray()[i].asString() != strings[i]) __builtin_trap();
    } else if (lean) {
        if (!strings.empty()) __builtin_trap();
        if (parsed && parsed->isArray()) {
            bool allStrings = true;
            for (const Json& e : parsed->asArray()) allStrings = allStrings && e.isString();
            if (allStrings) __builtin_trap();  // an array of strings the lean reader turned down
        }
    } else if (parsed || parsed.message() != lean.message()) {
        __builtin_trap();  // the lean reader refused JSON the parser accepts, or said something else
    }
    // The lean number-array reader (token_ids, documents) likewise.
    std::vector<double> numbers;
    auto leanNumbers = Json::parseNumberArray(
        text,
        [&](double x) {
            numbers.push_back(x);
            return true;
        },
        "fuzz.json");
    if (leanNumbers && *leanNumbers) {
        if (!parsed || !parsed->isArray() || parsed->size() != numbers.size()) __builtin_trap();
        for (size_t i = 0; i < numbers.size(); ++i) {
            if (!parsed->asArray()[i].isNumber()) __builtin_trap();
            const double general = parsed->asArray()[i].asNumber();
            if (std::memcmp(&numbers[i], &general, sizeof(double)) != 0) __builtin_trap();  // bit for bit
        }
    } else if (leanNumbers) {
        if (parsed && parsed->isArray()) {
            bool allNumbers = true;
            for (const Json& e : parsed->asArray()) allNumbers = allNumbers && e.isNumber();
            if (allNumbers) __builtin_trap();
        }
    } else if (parsed || parsed.message() != leanNumbers.message()) {
        __builtin_trap();
    }
    if (!parsed) {
        if (parsed.message().rfind("fuzz.json", 0) != 0) __builtin_trap();  // errors name the context
        return 0;
    }
    // Round trip: what parses serialises to text that parses to the same serialisation.
    const std::string once = parsed->dump();
    if (!validUtf8(once)) __builtin_trap();
    auto again = Json::parse(once, "again");
    if (!again) __builtin_trap();
    if (again->dump() != once) __builtin_trap();
    (void)parsed->dump(1);
    // The metadata reader on the parsed value (an object of strings in a valid trace; anything here).
    std::vector<std::string> warnings;
    auto meta = parseTraceMetadata(*parsed, "fuzz.attn.safetensors", warnings);
    if (!meta && meta.message().rfind("fuzz.attn.safetensors", 0) != 0) __builtin_trap();
    // And as a member of a header object, the way the reader meets it.
    if (const Json* m = parsed->find("__metadata__")) {
        auto meta2 = parseTraceMetadata(*m, "fuzz.attn.safetensors", warnings);
        if (!meta2 && meta2.message().rfind("fuzz.attn.safetensors", 0) != 0) __builtin_trap();
    }
    return 0;
}
