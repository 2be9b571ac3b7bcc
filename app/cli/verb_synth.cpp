// attnscope-cli synth: writes a synthetic trace with planted patterns and says where they are.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <string>
#include <vector>

#include "attnscope/memory.h"
#include "attnscope/synth.h"
#include "attnscope/trace.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "synth";
constexpr long long kMaxHeads = 65536;  ///< per layer, query or kv (as core's SynthOptions allows)

std::optional<DType> parseDType(const std::string& s) {
    if (s == "f32") return DType::F32;
    if (s == "f16") return DType::F16;
    if (s == "bf16") return DType::BF16;
    return std::nullopt;
}

/// "ROWSxCOLS[,prefix=N][,patch=P]" (--vision) into the grid options; nullopt with `error` set.
std::optional<VisionSynthOptions> parseVisionSynth(const std::string& text, std::string* error) {
    VisionSynthOptions v;
    const auto bad = [&](const std::string& why) {
        *error = "--vision " + text + ": " + why + " (expected ROWSxCOLS[,prefix=N][,patch=P], e.g. 37x37,prefix=5)";
        return std::nullopt;
    };
    const auto number = [](const std::string& s, long long lo, long long hi, int& out) {
        char* end = nullptr;
        const long long n = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || n < lo || n > hi) return false;
        out = int(n);
        return true;
    };
    const std::vector<std::string> parts = splitList(text);
    if (parts.empty()) return bad("empty");
    const size_t x = parts[0].find('x');
    if (x == std::string::npos || !number(parts[0].substr(0, x), 1, 1024, v.rows) ||
        !number(parts[0].substr(x + 1), 1, 1024, v.cols))
        return bad("the grid must be ROWSxCOLS with sides in [1, 1024]");
    for (size_t i = 1; i < parts.size(); ++i) {
        const std::string& p = parts[i];
        if (p.rfind("prefix=", 0) == 0) {
            if (!number(p.substr(7), 0, 64, v.prefix)) return bad("prefix must be in [0, 64]");
        } else if (p.rfind("patch=", 0) == 0) {
            if (!number(p.substr(6), 1, 64, v.patchSize)) return bad("patch must be in [1, 64]");
        } else {
            return bad("unknown part '" + p + "'");
        }
    }
    return v;
}

/// The command-line step (Verb::parse): every option into `o` and the output checked; nothing
/// is written.
int parseSynthArgs(Args& a, SynthOptions& o) {
    a.description(
         "Writes a synthetic causal-LM trace whose heads carry planted, known patterns (first-token sink, "
         "hidden sink, local band, previous-token, induction on a repeated segment, documents, noise, noise), "
         "and prints where each pattern is. The kv heads take the 8 patterns in turn (any count works), each "
         "shared by a GQA group of query heads. Give the GQA shape as --heads H --kv-heads K (H a multiple of "
         "K; --heads alone means K = H), or as --kv-groups G (with --kv-heads K, or with the default of one kv "
         "head per pattern); --heads with --kv-groups is refused. The file is streamed to disk a layer at a "
         "time (at most tens of MB of memory per thread at any size), into a temporary file renamed into place when "
         "complete, so real model shapes need no model weights, e.g. a Llama-3-8B shape (12.9 GB): --layers "
         "32 --heads 32 --kv-heads 8 --head-dim 128 --tokens 32768 --dtype bf16. Sizes that overflow, exceed "
         "the reader's limits or the free disk space are refused before anything is written.")
        .option("o", "output trace file (*.attn.safetensors)")
        .option("tokens", "sequence length T (2 .. 4194304)", "1024")
        .option("layers", "number of layers", "2")
        .option("heads", "query heads per layer, a multiple of --kv-heads (default: kv heads × kv groups)")
        .option("kv-heads",
                "kv heads per layer, taking the patterns in turn (default: --heads, else 8, one per pattern)")
        .option("head-dim", "head dim d (at least 32 for T up to 128k)", "64")
        .option("kv-groups", "query heads per kv head (GQA ratio); not with --heads", "1")
        .option("dtype", "f32, f16 or bf16", "f16")
        .option("documents", "number of documents", "4")
        .option("seed", "random seed", "1")
        .option("vision",
                "ROWSxCOLS[,prefix=N][,patch=P]: write a vision trace instead (kind vision, non-causal): N prefix "
                "tokens ([CLS], [REG0] …; default 1, 0 for none) then a ROWS x COLS patch grid, an image of P-pixel "
                "patches (default 14) with two shapes, and kv heads taking the patterns local-2d, register-sink, "
                "object, noise in turn (default --heads 4); e.g. DINOv2-L with registers: --vision 37x37,prefix=5 "
                "--layers 24 --heads 16. Not with --tokens, --kv-groups or --documents")
        .flag("no-progress", "no progress line on stderr");
    if (!a.parse()) return a.exitCode();
    const std::string out = a.get("o");
    if (out.empty()) return fail(kVerb, "missing -o FILE");
    if (Status s = checkOutputFile(out); !s) return fail(kVerb, s);
    std::string err;
    struct IntOpt {
        const char* name;
        long long lo, hi;
        long long* value;
    };
    long long tokens = 0, layers = 0, dim = 0, groups = 0, docs = 0, seed = 0, heads = 0, kvHeads = 0;
    std::vector<IntOpt> intOpts = {IntOpt{"tokens", 2, 1LL << 22, &tokens},  IntOpt{"layers", 1, 1024, &layers},
                                   IntOpt{"head-dim", 1, 4096, &dim},        IntOpt{"kv-groups", 1, 64, &groups},
                                   IntOpt{"documents", 1, 1LL << 22, &docs}, IntOpt{"seed", 0, INT64_MAX, &seed}};
    if (a.has("heads")) intOpts.push_back({"heads", 1, kMaxHeads, &heads});
    if (a.has("kv-heads")) intOpts.push_back({"kv-heads", 1, kMaxHeads, &kvHeads});
    for (const IntOpt& opt : intOpts) {
        auto v = a.getInt(opt.name, &err);
        if (!v) return fail(kVerb, err);
        if (*v < opt.lo || *v > opt.hi)
            return fail(kVerb, std::string("--") + opt.name + " " + std::to_string(*v) + " out of range [" +
                                   std::to_string(opt.lo) + ", " + std::to_string(opt.hi) + "]");
        *opt.value = *v;
    }
    if (a.has("heads") && a.has("kv-groups"))
        return fail(kVerb,
                    "--heads and --kv-groups both set the query heads: give --heads H --kv-heads K, or "
                    "--kv-groups G (with or without --kv-heads)");
    if (heads > 0 && kvHeads == 0) kvHeads = heads;  // --heads alone: one kv head per query head
    if (heads > 0 && heads % kvHeads != 0)
        return fail(
            kVerb, "--heads " + std::to_string(heads) + " must be a multiple of --kv-heads " + std::to_string(kvHeads));
    const auto dtype = parseDType(a.get("dtype"));
    if (!dtype) return fail(kVerb, "--dtype " + a.get("dtype") + ": expected f32, f16 or bf16");
    o.tokens = tokens;
    o.layers = int(layers);
    o.headDim = int(dim);
    o.kvGroups = int(groups);
    o.kvHeads = int(kvHeads);
    o.queryHeads = int(heads);
    o.documents = int(docs);
    o.seed = uint64_t(seed);
    o.dtype = *dtype;
    if (a.has("vision")) {
        for (const char* name : {"tokens", "kv-groups", "documents"})
            if (a.has(name))
                return fail(kVerb, std::string("--") + name + " does not apply to --vision (T = prefix + ROWS·COLS)");
        std::string visionError;
        auto vision = parseVisionSynth(a.get("vision"), &visionError);
        if (!vision) return fail(kVerb, visionError);
        vision->layers = o.layers;
        vision->heads = heads > 0 ? int(heads) : (kvHeads > 0 ? int(kvHeads) : vision->heads);
        vision->kvHeads = int(kvHeads);
        vision->headDim = o.headDim;
        vision->dtype = o.dtype;
        vision->seed = o.seed;
        o.vision = *vision;
    }
    return kRun;
}

/// Writes a vision trace (--vision) and says what was planted where.
int synthVision(const std::string& out, const VisionSynthOptions& v, const ProgressFn& progress) {
    auto truth = writeVisionSyntheticTrace(out, v, progress);
    if (!truth) return fail(kVerb, truth.status());
    std::printf(
        "wrote %s: vision, %d prefix token(s) + %dx%d patches (T=%lld), %d layer(s), %d heads (%d kv heads), "
        "d=%d, %s, image %dx%d, seed %llu\n",
        out.c_str(), v.prefix, v.rows, v.cols, static_cast<long long>(truth->tokens), v.layers, v.heads,
        v.kvHeads ? v.kvHeads : v.heads, v.headDim, dtypeName(v.dtype), v.cols * v.patchSize, v.rows * v.patchSize,
        static_cast<unsigned long long>(v.seed));
    std::printf("planted (every layer):\n");
    for (int h = 0; h < v.heads; ++h) {
        const VisionSynthHead kind = truth->heads[size_t(h)];
        std::string where;
        switch (kind) {
        case VisionSynthHead::Local: where = "patches attend to patches within ~1-2 of them (score -|d|^2)"; break;
        case VisionSynthHead::Sink:
            where = "patch queries put most mass on token " + std::to_string(truth->sinkToken) +
                    (v.prefix > 0 ? " (the last prefix token)" : " (a background patch)");
            break;
        case VisionSynthHead::Object:
            where = "attention stays in the query's region (" + std::to_string(truth->objectPatches) +
                    " patches on the shapes, the rest background)";
            break;
        case VisionSynthHead::Noise: where = "diffuse random attention"; break;
        }
        std::printf("  head %2d  %-14s %s\n", h, visionSynthHeadName(kind), where.c_str());
    }
    return 0;
}

int synthVerb(Args& a, SynthOptions& o) {
    const std::string out = a.get("o");
    if (o.vision) return synthVision(out, *o.vision, progressLine(!a.has("no-progress")));
    const long long tokens = o.tokens;
    const auto started = std::chrono::steady_clock::now();
    auto truth = writeSyntheticTrace(out, o, progressLine(!a.has("no-progress")));
    if (!truth) return fail(kVerb, truth.status());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

    std::printf("wrote %s: T=%lld, %d layer(s), %zu heads (%d kv heads), d=%d, %s, seed %llu\n", out.c_str(), tokens,
                o.layers, truth->heads.size(), truth->kvHeads, o.headDim, dtypeName(o.dtype),
                static_cast<unsigned long long>(o.seed));
    std::error_code ec;
    const uintmax_t bytes = std::filesystem::file_size(out, ec);
    if (!ec) std::printf("size: %s (%ju bytes) in %.1f s\n", humanBytes(bytes).c_str(), bytes, seconds);
    std::printf("planted (every layer):\n");
    for (size_t h = 0; h < truth->heads.size(); ++h) {
        const SynthHead kind = truth->heads[h];
        std::string where;
        switch (kind) {
        case SynthHead::FirstTokenSink: where = "most mass on key 0"; break;
        case SynthHead::HiddenSink:
            where = "sink at key " + std::to_string(truth->hiddenSinkPosition) + " (and a weaker one at key 0)";
            break;
        case SynthHead::LocalBand: where = "mass within ~16 keys behind each query"; break;
        case SynthHead::PreviousToken: where = "query i attends to key i-1"; break;
        case SynthHead::Induction:
            where = "queries [" + std::to_string(truth->repeatStart) + "," +
                    std::to_string(truth->repeatStart + truth->repeatLength) + ") attend to i-" +
                    std::to_string(truth->repeatLength - 1) + " (token after the earlier copy)";
            break;
        case SynthHead::Documents: where = "attention stays inside each query's document"; break;
        case SynthHead::Noise: where = "diffuse random attention"; break;
        }
        std::printf("  head %2zu  %-17s %s\n", h, synthHeadName(kind), where.c_str());
    }
    std::printf("repeated segment: tokens [%lld,%lld) copy [%lld,%lld)\n", static_cast<long long>(truth->repeatStart),
                static_cast<long long>(truth->repeatStart + truth->repeatLength),
                static_cast<long long>(truth->repeatStart - truth->repeatLength),
                static_cast<long long>(truth->repeatStart));
    std::printf("documents: %d, starting at", o.documents);
    for (size_t i = 0; i < truth->documents.size(); ++i)
        if (i == 0 || truth->documents[i] != truth->documents[i - 1]) std::printf(" %zu", i);
    std::printf("\n");
    return 0;
}
}  // namespace

ATTNSCOPE_CLI_VERB_PARSED(
    "synth",
    "synth -o FILE [--tokens T] [--layers N] [--heads H] [--kv-heads K] [--head-dim D] [--kv-groups G] "
    "[--dtype f32|f16|bf16] [--documents N] [--seed S] [--vision ROWSxCOLS[,prefix=N][,patch=P]] [--no-progress]",
    "write a synthetic trace with planted attention patterns (ground truth printed)", SynthOptions, parseSynthArgs,
    synthVerb);

}  // namespace attnscope::cli
