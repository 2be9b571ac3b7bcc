#include "cli.h"

#include "attnscope/demo_trace.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <unistd.h>

namespace attnscope::cli {

static std::map<std::string, Verb>& registry() {
    static std::map<std::string, Verb> r;
    return r;
}

bool registerVerb(Verb verb) {
    registry()[verb.name] = std::move(verb);
    return true;
}

const std::map<std::string, Verb>& verbs() { return registry(); }

Args::Args(std::string verb, std::string usage, std::vector<std::string> argv)
    : m_verb(std::move(verb)), m_usage(std::move(usage)), m_argv(std::move(argv)) {}

Args& Args::option(const std::string& name, const std::string& help, const std::string& defaultValue) {
    m_opts.push_back({name, help, defaultValue, false, false, false});
    return *this;
}
Args& Args::flag(const std::string& name, const std::string& help) {
    m_opts.push_back({name, help, "", true, false, false});
    return *this;
}
Args& Args::positional(const std::string& name, const std::string& help, bool required) {
    m_opts.push_back({name, help, "", false, true, required});
    return *this;
}
Args& Args::mapCellOptions() {
    return option("rect", "queries [q0,q1) x keys [k0,k1) as q0,q1,k0,k1 (default: the whole map)")
        .option("size", "cells: N (N x N) or WxH, clamped to the rect", "512")
        .option("pool", "pooling of each cell: mean or max", "mean");
}
Args& Args::noProgressFlag() { return flag("no-progress", "no progress line on stderr"); }
Args& Args::description(const std::string& text) {
    m_description = text;
    return *this;
}

Args& Args::optionalValue(const std::string& name, const std::string& valueName, const std::string& help) {
    Opt o{name, help, "", false, false, false};
    o.optionalValue = true;
    o.valueName = valueName;
    m_opts.push_back(std::move(o));
    return *this;
}

Args& Args::alias(const std::string& oldName, const std::string& name) {
    m_aliases[oldName] = name;
    return *this;
}

bool Args::parse() {
    // Greedy first (an optional value takes the following argument), then, when that left a
    // required positional unfilled, again without: "--json out.json TRACE" and "--json TRACE".
    for (bool greedy : {true, false}) {
        m_values.clear();
        if (parseOnce(greedy)) return true;
        if (m_exitCode != -1) return false;  // --help printed, or an error that the retry cannot fix
    }
    return false;
}

// One pass over argv; false with m_exitCode set (0 after --help, kExitUsage after an error printed,
// -1 when a greedy optional value left a required positional unfilled and the caller retries).
bool Args::parseOnce(bool optionalTakesNext) {
    std::vector<const Opt*> positionals;
    for (const auto& o : m_opts)
        if (o.isPositional) positionals.push_back(&o);
    size_t nextPositional = 0;
    bool tookOptionalValue = false;
    auto error = [&](const std::string& message) {
        m_exitCode = usageError(m_verb, message);
        return false;
    };
    for (size_t i = 0; i < m_argv.size(); ++i) {
        // Short options: "-o FILE" is "--o FILE" (verbs declare "o" for the -o of their usage).
        const bool isShort = m_argv[i].size() == 2 && m_argv[i][0] == '-' && m_argv[i][1] != 'h' &&
                             std::isalpha(static_cast<unsigned char>(m_argv[i][1]));
        const std::string a = isShort ? "-" + m_argv[i] : m_argv[i];
        if (a == "--help" || a == "-h") {
            printHelp();
            m_exitCode = 0;
            return false;
        }
        if (a.rfind("--", 0) == 0 && a.size() > 2) {
            std::string name = a.substr(2), value;
            bool inlineValue = false;
            if (auto eq = name.find('='); eq != std::string::npos) {
                value = name.substr(eq + 1);
                name = name.substr(0, eq);
                inlineValue = true;
            }
            if (auto al = m_aliases.find(name); al != m_aliases.end()) name = al->second;
            const Opt* opt = nullptr;
            for (const auto& o : m_opts)
                if (!o.isPositional && o.name == name) opt = &o;
            if (!opt) return error("unknown option --" + name + " (see attnscope-cli " + m_verb + " --help)");
            if (opt->isFlag) {
                if (inlineValue) return error("option --" + name + " takes no value");
                m_values[name] = "1";
                continue;
            }
            if (!inlineValue) {
                const bool nextIsValue =
                    i + 1 < m_argv.size() && (m_argv[i + 1].empty() || m_argv[i + 1][0] != '-' || m_argv[i + 1] == "-");
                if (opt->optionalValue) {
                    if (optionalTakesNext && nextIsValue) {
                        value = m_argv[++i];
                        tookOptionalValue = true;
                    } else {
                        value = "-";
                    }
                } else {
                    if (i + 1 >= m_argv.size()) return error("option --" + name + " needs a value");
                    value = m_argv[++i];
                }
            }
            m_values[name] = value;
            continue;
        }
        if (nextPositional >= positionals.size())
            return error("unexpected argument '" + a + "' (see attnscope-cli " + m_verb + " --help)");
        m_values[positionals[nextPositional++]->name] = a;
    }
    for (size_t p = nextPositional; p < positionals.size(); ++p) {
        if (positionals[p]->required) {
            if (optionalTakesNext && tookOptionalValue) {
                m_exitCode = -1;  // try again with the optional values left out
                return false;
            }
            return error("missing " + positionals[p]->name + " (usage: attnscope-cli " + m_usage + ")");
        }
    }
    return true;
}

bool Args::has(const std::string& name) const { return m_values.count(name) > 0; }

std::string Args::get(const std::string& name) const {
    if (auto it = m_values.find(name); it != m_values.end()) return it->second;
    for (const auto& o : m_opts)
        if (o.name == name) return o.defaultValue;
    return {};
}

std::optional<long long> Args::getInt(const std::string& name, std::string* error) const {
    const std::string v = get(name);
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE) {
        if (error) *error = "--" + name + " expects an integer, got '" + v + "'";
        return std::nullopt;
    }
    return x;
}

std::optional<double> Args::getDouble(const std::string& name, std::string* error) const {
    const std::string v = get(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0') {
        if (error) *error = "--" + name + " expects a number, got '" + v + "'";
        return std::nullopt;
    }
    return x;
}

void Args::printHelp() const {
    std::printf("usage: attnscope-cli %s\n", m_usage.c_str());
    if (!m_description.empty()) std::printf("\n%s\n", m_description.c_str());
    bool any = false;
    for (const auto& o : m_opts) {
        if (!any) std::printf("\n");
        any = true;
        std::string left = o.isPositional ? o.name
                                          : (o.name.size() == 1 ? "-" : "--") + o.name +
                                                (o.isFlag          ? ""
                                                 : o.optionalValue ? "[=" + o.valueName + "]"
                                                                   : " VALUE");
        std::printf("  %-22s %s", left.c_str(), o.help.c_str());
        if (!o.defaultValue.empty()) std::printf(" (default %s)", o.defaultValue.c_str());
        std::printf("\n");
    }
    std::printf("  %-22s %s\n", "--help", "show this help");
}

int fail(const std::string& verb, const std::string& message) {
    std::string oneLine = message;
    for (char& c : oneLine)
        if (c == '\n') c = ' ';
    std::fprintf(stderr, "attnscope-cli %s: %s\n", verb.c_str(), oneLine.c_str());
    return 1;
}

int fail(const std::string& verb, const Status& status) { return fail(verb, status.message()); }

int checkCpuWork(const std::string& verb, double products, int64_t headDim, bool allowLong, const std::string& what) {
    if (products <= 0) return kRun;
    const CpuWorkEstimate e = estimateCpuWork(products, headDim);
    if (e.overLimit() && !allowLong)
        return fail(verb, what + " on the CPU would take " + e.describe() + ", over the limit of " +
                              describeSeconds(kCpuWorkLimitSeconds) +
                              ": run it on a GPU (without --cpu), ask for less (fewer layers with --layers, a "
                              "smaller --rect), or pass --allow-long to run it anyway (Ctrl-C stops it)");
    if (e.seconds > kCpuWorkNoticeSeconds)
        std::fprintf(stderr, "attnscope-cli %s: %s on the CPU: %s\n", verb.c_str(), what.c_str(), e.describe().c_str());
    return kRun;
}

int usageError(const std::string& verb, const std::string& message) {
    fail(verb, message);
    return kExitUsage;
}

Result<std::shared_ptr<const Trace>> openTraceArg(const std::string& arg, const OpenOptions& options,
                                                  const ProgressFn& progress) {
    if (!isDemoName(arg)) return Trace::open(arg, options, progress);
    const std::string path = findDemoTrace(arg);
    if (path.empty())
        return Status(ErrorCode::IoError, arg + ": no " +
                                              (arg == "demo" ? "demo trace" : std::string(kVisionDemoFile)) +
                                              " found (set ATTNSCOPE_DEMO to a folder holding it, or install "
                                              "attnscope with its demo)");
    return Trace::open(path, options, progress);
}

ProgressFn progressLine(bool enabled) {
    if (!enabled || !isatty(STDERR_FILENO)) return {};
    auto last = std::make_shared<int>(-1);
    return [last](double fraction, std::string_view stage) {
        int pct = static_cast<int>(fraction * 100.0 + 0.5);
        if (pct != *last) {
            *last = pct;
            std::fprintf(stderr, "\r[%.*s] %3d%%%s", int(stage.size()), stage.data(), pct, pct >= 100 ? "\n" : "");
            std::fflush(stderr);
        }
        return true;
    };
}

std::optional<std::pair<int, int>> parseMapSize(const std::string& text, int maxSide, std::string* error) {
    int w = 0, h = 0;
    char x = 0, tail = 0;
    const int n = std::sscanf(text.c_str(), "%d%c%d%c", &w, &x, &h, &tail);
    if (n == 1) h = w;
    const bool ok = (n == 1 || (n == 3 && x == 'x')) && w >= 1 && h >= 1 && w <= maxSide && h <= maxSide;
    if (!ok) {
        if (error) *error = "--size " + text + ": expected N or WxH with 1 <= N, W, H <= " + std::to_string(maxSide);
        return std::nullopt;
    }
    return std::pair{w, h};
}

std::optional<std::vector<int>> parseIndexList(const std::string& text, int limit, const std::string& what,
                                               std::string* error) {
    std::vector<int> out;
    for (const auto& part : splitList(text)) {
        int a = 0, b = 0;
        char dash = 0;
        int n = std::sscanf(part.c_str(), "%d%c%d", &a, &dash, &b);
        if (n == 1)
            b = a;
        else if (!(n == 3 && dash == '-')) {
            if (error) *error = what + ": cannot read '" + part + "' (expected N or N-M)";
            return std::nullopt;
        }
        if (a < 0 || b < a || b >= limit) {
            if (error) *error = what + ": '" + part + "' out of range 0.." + std::to_string(limit - 1);
            return std::nullopt;
        }
        for (int i = a; i <= b; ++i) out.push_back(i);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace attnscope::cli
