#pragma once
// attnscope-cli plumbing: a verb registry and a small argument parser with generated --help.
// Each verb lives in its own verb_<name>.cpp and registers itself with ATTNSCOPE_CLI_VERB.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attnscope/cpu_budget.h"
#include "attnscope/progress.h"
#include "attnscope/split.h"
#include "attnscope/status.h"
#include "attnscope/trace.h"

namespace attnscope::cli {

using attnscope::splitList;  // "a,b,c" (empty parts dropped; attnscope/split.h)

class Args;
using VerbFn = int (*)(Args& args);

struct Verb {
    std::string name;
    std::string usage;    ///< one line, e.g. "info TRACE [--json]"
    std::string summary;  ///< one sentence
    VerbFn run;
    /// The verb's command-line step alone: declares its options, parses argv and checks every
    /// value that needs no input file (no trace is opened, nothing is computed or written).
    /// Returns kRun when the command line is accepted, else the exit code the verb returns
    /// (after --help, or after the one-line error). `run` begins with the same step; the CLI
    /// fuzz target (fuzz/fuzz_cli_args.cpp) calls it alone. Null for verbs without one.
    VerbFn parse = nullptr;
};

bool registerVerb(Verb verb);
const std::map<std::string, Verb>& verbs();

/// Parses "--name value", "--name=value", boolean "--flag" and positionals. Options are declared
/// before parse() so --help can list them and unknown options are refused.
class Args {
public:
    Args(std::string verb, std::string usage, std::vector<std::string> argv);

    /// Declare an option taking a value / a boolean flag / a positional.
    Args& option(const std::string& name, const std::string& help, const std::string& defaultValue = "");
    Args& flag(const std::string& name, const std::string& help);
    Args& positional(const std::string& name, const std::string& help, bool required = true);
    /// An option whose value may be left out: "--name" alone stores "-" (by convention: write to
    /// stdout), "--name=VALUE" or "--name VALUE" stores VALUE. A following argument is taken as
    /// the value only when it is not an option and the required positionals are still filled
    /// without it ("analyze --json demo" is the demo trace written as JSON to stdout).
    Args& optionalValue(const std::string& name, const std::string& valueName, const std::string& help);
    /// An old spelling of a declared option, accepted for compatibility and not listed in --help.
    Args& alias(const std::string& oldName, const std::string& name);
    Args& description(const std::string& text);
    /// Options spelled alike in every verb that has them (tests/cli/tst_conventions.cpp):
    /// the cells of a map (map, export): --rect q0,q1,k0,k1, --size N|WxH (parseMapSize, default
    /// 512) and --pool mean|max;
    Args& mapCellOptions();
    /// --no-progress, in every verb with a progress line.
    Args& noProgressFlag();

    /// Returns false when parsing failed or --help was printed; exitCode() says which.
    bool parse();
    int exitCode() const { return m_exitCode; }

    bool has(const std::string& name) const;         ///< option given, flag set, or positional present
    std::string get(const std::string& name) const;  ///< value, default, or ""
    std::optional<long long> getInt(const std::string& name, std::string* error) const;
    std::optional<double> getDouble(const std::string& name, std::string* error) const;

    void printHelp() const;

private:
    struct Opt {
        std::string name, help, defaultValue;
        bool isFlag = false, isPositional = false, required = false;
        bool optionalValue = false;
        std::string valueName = "VALUE";
    };
    bool parseOnce(bool optionalTakesNext);
    std::map<std::string, std::string> m_aliases;  ///< old spelling -> declared option
    std::string m_verb, m_usage, m_description;
    std::vector<std::string> m_argv;
    std::vector<Opt> m_opts;
    std::map<std::string, std::string> m_values;
    int m_exitCode = 0;
};

/// Exit codes of every verb: 0 done; 1 the input or the run failed (an invalid or unreadable
/// trace, an option value out of range, a GPU error, an output that cannot be written); 2 the
/// command line is wrong (an unknown option, a missing value or argument, an unexpected argument).
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
/// 3: the verb ran but could not do all it was asked (profile: a variant's row holds an error;
/// selftest --gpu: no usable GPU).
inline constexpr int kExitIncomplete = 3;
/// What a verb's parse step returns when the command line is accepted and the verb would run.
inline constexpr int kRun = -1;

/// The steps of a verb whose command line fills a T: `Parse` declares the options, parses them
/// into a T and checks them (kRun when accepted, else the exit code), `Run` does the work on it.
/// parseOnly is the verb's parse step (Verb::parse), parseThenRun its run; register both with
/// ATTNSCOPE_CLI_VERB_PARSED.
template <class T, int (*Parse)(Args&, T&)>
int parseOnly(Args& args) {
    T parsed;
    return Parse(args, parsed);
}
template <class T, int (*Parse)(Args&, T&), int (*Run)(Args&, T&)>
int parseThenRun(Args& args) {
    T parsed;
    if (int rc = Parse(args, parsed); rc != kRun) return rc;
    return Run(args, parsed);
}

/// Prints "attnscope-cli VERB: message" to stderr and returns kExitFailure (the one-line rule).
int fail(const std::string& verb, const std::string& message);
int fail(const std::string& verb, const Status& status);
/// The same for a wrong command line: returns kExitUsage.
int usageError(const std::string& verb, const std::string& message);

/// A terminal progress line on stderr ("\r[stage] 42%"), quiet when stderr is not a TTY
/// unless forced. Never cancels.
ProgressFn progressLine(bool enabled = true);

/// Before quadratic CPU work of `products` score products (cpu_budget.h): refuses, with the
/// estimate and the ways out, what would take longer than kCpuWorkLimitSeconds unless `allowLong`
/// (--allow-long); notes on stderr how long it will take when that is over a minute. Returns kRun
/// to go on, or the exit code.
int checkCpuWork(const std::string& verb, double products, int64_t headDim, bool allowLong, const std::string& what);

/// Parses a map size: "N" (N x N cells) or "WxH", each side within 1..maxSide. The one meaning of
/// --size in every verb that draws a map (map, export).
std::optional<std::pair<int, int>> parseMapSize(const std::string& text, int maxSide, std::string* error);

/// Parses "0,3,5" or "0-3,7" into sorted unique indices < limit; error names the option.
std::optional<std::vector<int>> parseIndexList(const std::string& text, int limit, const std::string& what,
                                               std::string* error);

/// Opens the trace a verb was given: a path, or `demo` for the bundled trace (every verb that
/// takes a trace accepts it).
Result<std::shared_ptr<const Trace>> openTraceArg(const std::string& arg, const OpenOptions& options = {},
                                                  const ProgressFn& progress = {});

}  // namespace attnscope::cli

#define ATTNSCOPE_CLI_CAT2(a, b) a##b
#define ATTNSCOPE_CLI_CAT(a, b) ATTNSCOPE_CLI_CAT2(a, b)
#define ATTNSCOPE_CLI_VERB(NAME, USAGE, SUMMARY, FN)                 \
    static const bool ATTNSCOPE_CLI_CAT(attnscope_verb_, __LINE__) = \
        ::attnscope::cli::registerVerb({NAME, USAGE, SUMMARY, FN})
/// A verb with a separate parse step (Verb::parse).
#define ATTNSCOPE_CLI_VERB_PARSE(NAME, USAGE, SUMMARY, FN, PARSE)    \
    static const bool ATTNSCOPE_CLI_CAT(attnscope_verb_, __LINE__) = \
        ::attnscope::cli::registerVerb({NAME, USAGE, SUMMARY, FN, PARSE})
/// A verb whose parse step fills a T (parseOnly / parseThenRun above): PARSE(Args&, T&), RUN(Args&, T&).
#define ATTNSCOPE_CLI_VERB_PARSED(NAME, USAGE, SUMMARY, T, PARSE, RUN)                               \
    static const bool ATTNSCOPE_CLI_CAT(attnscope_verb_, __LINE__) = ::attnscope::cli::registerVerb( \
        {NAME, USAGE, SUMMARY, ::attnscope::cli::parseThenRun<T, PARSE, RUN>, ::attnscope::cli::parseOnly<T, PARSE>})
