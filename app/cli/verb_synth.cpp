// attnscope-cli synth: writes a synthetic trace with planted patterns and says where they are.
#include <cstdio>
#include <string>

#include "attnscope/synth.h"
#include "cli.h"

namespace attnscope::cli {
namespace {
constexpr const char* kVerb = "synth";

std::optional<DType> parseDType(const std::string& s) {
    if (s == "f32") return DType::F32;
    if (s == "f16") return DType::F16;
    if (s == "bf16") return DType::BF16;
    return std::nullopt;
}

int synthVerb(Args& a) {
    a.description("Writes a synthetic causal-LM trace whose heads carry planted, known patterns (first-token sink, "
                  "hidden sink, local band, previous-token, induction on a repeated segment, documents, noise), one kv "
                  "head per pattern and --kv-groups query heads per kv head, and prints where each pattern is.")
        .option("o", "output trace file (*.attn.safetensors)")
        .option("tokens", "sequence length T (2 .. 4194304)", "1024")
        .option("layers", "number of layers", "2")
        .option("head-dim", "head dim d (at least 32 for T up to 128k)", "64")
        .option("kv-groups", "query heads per kv head (GQA ratio)", "1")
        .option("dtype", "f32, f16 or bf16", "f16")
        .option("documents", "number of documents", "4")
        .option("seed", "random seed", "1");
    if (!a.parse()) return a.exitCode();
    const std::string out = a.get("o");
    if (out.empty()) return fail(kVerb, "missing -o FILE");
    SynthOptions o;
    std::string err;
    struct IntOpt {
        const char* name;
        long long lo, hi;
        long long* value;
    };
    long long tokens = 0, layers = 0, dim = 0, groups = 0, docs = 0, seed = 0;
    for (const IntOpt& opt : {IntOpt{"tokens", 2, 1LL << 22, &tokens}, IntOpt{"layers", 1, 1024, &layers},
                              IntOpt{"head-dim", 1, 4096, &dim}, IntOpt{"kv-groups", 1, 64, &groups},
                              IntOpt{"documents", 1, 1LL << 22, &docs}, IntOpt{"seed", 0, INT64_MAX, &seed}}) {
        auto v = a.getInt(opt.name, &err);
        if (!v) return fail(kVerb, err);
        if (*v < opt.lo || *v > opt.hi)
            return fail(kVerb, std::string("--") + opt.name + " " + std::to_string(*v) + " out of range [" +
                                   std::to_string(opt.lo) + ", " + std::to_string(opt.hi) + "]");
        *opt.value = *v;
    }
    const auto dtype = parseDType(a.get("dtype"));
    if (!dtype) return fail(kVerb, "--dtype " + a.get("dtype") + ": expected f32, f16 or bf16");
    o.tokens = tokens;
    o.layers = int(layers);
    o.headDim = int(dim);
    o.kvGroups = int(groups);
    o.documents = int(docs);
    o.seed = uint64_t(seed);
    o.dtype = *dtype;
    auto truth = writeSyntheticTrace(out, o);
    if (!truth) return fail(kVerb, truth.status());

    std::printf("wrote %s: T=%lld, %d layer(s), %zu heads (%zu kv heads), d=%d, %s, seed %llu\n", out.c_str(), tokens,
                o.layers, truth->heads.size(), o.heads.size(), o.headDim, dtypeName(o.dtype),
                static_cast<unsigned long long>(o.seed));
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
    std::printf("repeated segment: tokens [%lld,%lld) copy [%lld,%lld)\n",
                static_cast<long long>(truth->repeatStart),
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

ATTNSCOPE_CLI_VERB("synth",
                   "synth -o FILE [--tokens T] [--layers N] [--head-dim D] [--kv-groups G] [--dtype f32|f16|bf16] "
                   "[--documents N] [--seed S]",
                   "write a synthetic trace with planted attention patterns (ground truth printed)", synthVerb);

}  // namespace attnscope::cli
