// libFuzzer target for the variant-token parser (parseVariant: built-in tokens, compositions
// "A&B|C", "cudnn:V" and user programs "expr:..."): any string must parse or give a clean error,
// never a crash, a hang or a sanitizer report. What parses is evaluated the way the CPU reference
// and the tiling use it (variantAllows, variantBlockState, referenceSpec) on a tiny sequence, so
// the expression evaluator is fuzzed too. See docs/reliability.md:
//   build/fuzz/fuzz/fuzz_variant -runs=2000000 build/fuzz/corpus_variant fuzz/corpus_variant
#include <cstdint>
#include <string>

#include "attnscope/variants.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace attnscope;
    constexpr size_t kMaxToken = 4096;  // command-line tokens; longer inputs only slow the search
    if (size > kMaxToken) return 0;
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)splitVariantList(text);
    auto v = parseVariant(text);
    if (!v) {
        if (v.message().empty()) __builtin_trap();  // every refusal says why
        return 0;
    }
    if (v->label.empty()) __builtin_trap();
    constexpr int64_t kT = 9;  // small and odd: partial blocks at the edge
    for (int64_t q = 0; q < kT; q += 2)
        for (int64_t k = 0; k < kT; k += 3) (void)variantAllows(*v, kT, q, k, 1, 2, 0);
    (void)variantBlockState(*v, kT, 0, 1, 4);
    (void)variantRectState(*v, kT, 2, 7, 1, 9);
    auto spec = referenceSpec(*v, kT, 0, 2, 0.125f);
    (void)spec;
    // Labels re-parse for the built-in tokens (they are what reports print); programs keep theirs.
    return 0;
}
