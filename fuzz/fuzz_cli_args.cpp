// libFuzzer target for attnscope-cli's command line: the option parsing of every Qt-free verb
// (analyze, info, map, profile, selftest, synth) through its parse step (Verb::parse: declare the
// options, parse argv, check every value that needs no input file; no trace is opened, nothing
// is computed or written), and the shared list/size parsers.
//
// Input: argv words separated by '\n'. The first word names the verb; when it is not one, the
// first byte picks the verb and the whole input is its arguments.
// Checked: no crash, no hang, no sanitizer report; the parse step returns kRun or an exit code
// of 0 (--help), 1 or 2; an exit code of 1 or 2 comes with exactly one error line on stderr,
// "attnscope-cli VERB: message", and kRun or --help with none.
//
//   cmake --preset fuzz && cmake --build build/fuzz --target fuzz_cli_args
//   mkdir -p build/fuzz/corpus_cli
//   build/fuzz/fuzz/fuzz_cli_args -max_total_time=60 -max_len=1024 build/fuzz/corpus_cli fuzz/corpus_cli
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli.h"

using namespace attnscope::cli;

namespace {

std::vector<std::string> splitWords(const std::string& text) {
    std::vector<std::string> words;
    size_t p = 0;
    while (p <= text.size()) {
        const size_t e = std::min(text.find('\n', p), text.size());
        std::string w = text.substr(p, e - p);
        w.resize(std::strlen(w.c_str()));  // as in a real argv: a word ends at its first NUL
        words.push_back(std::move(w));
        p = e + 1;
    }
    return words;
}

/// What the run wrote to stderr (fail() and usageError() write there through the stdio stream;
/// the sanitizers' reports go to file descriptor 2 and are not captured).
struct Captured {
    char* text = nullptr;
    size_t size = 0;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // --help prints to stdout: keep the fuzzer's own output readable.
    if (FILE* null = std::fopen("/dev/null", "w")) stdout = null;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<const Verb*> parsable;
    for (const auto& [name, verb] : verbs())
        if (verb.parse) parsable.push_back(&verb);
    if (parsable.empty() || size == 0) return 0;

    const std::string text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> words = splitWords(text);
    const Verb* verb = nullptr;
    if (auto it = verbs().find(words.front()); it != verbs().end() && it->second.parse) {
        verb = &it->second;
        words.erase(words.begin());
    } else {
        verb = parsable[data[0] % parsable.size()];
    }

    // The shared parsers on every word, as the verbs call them.
    for (const std::string& w : words) {
        std::string error;
        if (!parseMapSize(w, 4096, &error) && error.empty()) __builtin_trap();
        error.clear();
        if (!parseIndexList(w, 64, "--layers", &error) && error.empty()) __builtin_trap();
        for (const std::string& part : splitList(w))
            if (part.empty()) __builtin_trap();
    }

    Captured err;
    FILE* memory = open_memstream(&err.text, &err.size);
    if (!memory) return 0;
    FILE* realStderr = stderr;
    stderr = memory;
    Args args(verb->name, verb->usage, words);
    const int rc = verb->parse(args);
    std::fflush(stderr);
    stderr = realStderr;
    std::fclose(memory);
    const std::string message(err.text ? err.text : "", err.size);
    std::free(err.text);

    // Values of every option read back as the verb reads them.
    for (const char* name : {"layer", "head", "size", "o", "json", "tokens", "gamma", "trace", "TRACE"}) {
        (void)args.get(name);
        std::string e;
        (void)args.getInt(name, &e);
        (void)args.getDouble(name, &e);
    }

    if (rc != kRun && rc != 0 && rc != kExitFailure && rc != kExitUsage) __builtin_trap();
    if (rc == kExitFailure || rc == kExitUsage) {
        // Exactly one line naming the verb, with a message.
        const std::string prefix = "attnscope-cli " + verb->name + ": ";
        if (message.rfind(prefix, 0) != 0 || message.size() <= prefix.size() + 1) __builtin_trap();
        if (message.back() != '\n' || message.find('\n') != message.size() - 1) __builtin_trap();
    } else if (!message.empty()) {
        __builtin_trap();  // accepted, or --help: nothing on stderr
    }
    return 0;
}
