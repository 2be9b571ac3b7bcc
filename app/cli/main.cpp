// attnscope-cli: the headless front end. `attnscope-cli VERB --help` documents each verb.
#include <cstdio>
#include <cstring>

#include "cli.h"

using namespace attnscope::cli;

static void printUsage() {
    std::printf("attnscope-cli %s: attention traces, analyses and kernel profiles from the command line\n\n",
                ATTNSCOPE_VERSION);
    std::printf("usage: attnscope-cli VERB [options]   (attnscope-cli VERB --help for details)\n\nverbs:\n");
    for (const auto& [name, verb] : verbs()) std::printf("  %-10s %s\n", name.c_str(), verb.summary.c_str());
    std::printf(
        "\nA TRACE argument may be 'demo' (the bundled trace) or 'demo:vision' (the bundled vision trace).\n"
        "exit status: 0 done, %d the input or the run failed, %d the command line is wrong, %d done in part\n"
        "(profile: a variant failed, its row says why; selftest --gpu: no usable GPU)\n",
        kExitFailure, kExitUsage, kExitIncomplete);
}

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        printUsage();
        return argc < 2 ? kExitUsage : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        std::printf("attnscope-cli %s\n", ATTNSCOPE_VERSION);
        return 0;
    }
    auto it = verbs().find(argv[1]);
    if (it == verbs().end()) return usageError(argv[1], "unknown verb (run attnscope-cli --help for the list)");
    Args args(it->second.name, it->second.usage, std::vector<std::string>(argv + 2, argv + argc));
    return it->second.run(args);
}
