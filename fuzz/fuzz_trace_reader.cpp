// libFuzzer target for the trace reader: any byte string must give a trace or a clean error,
// never a crash, a hang or an out-of-bounds read. Build with the "fuzz" preset (see README.md):
//   cmake --preset fuzz && cmake --build --preset fuzz
//   mkdir -p build/fuzz/corpus
//   build/fuzz/fuzz/fuzz_trace_reader -max_total_time=60 build/fuzz/corpus fuzz/corpus
// (libFuzzer adds new inputs to the first directory; keep the committed seeds in fuzz/corpus clean.
// Regenerate the seeds with fuzz/make_corpus.py.)
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "attnscope/trace.h"

namespace {

/// One scratch file per fuzzing process (Trace::open reads files, not memory).
const std::string& scratchPath() {
    static const std::string path = "/tmp/fuzz_trace_reader." + std::to_string(getpid()) + ".attn.safetensors";
    return path;
}

bool writeScratch(const uint8_t* data, size_t size) {
    FILE* f = std::fopen(scratchPath().c_str(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(data, 1, size, f) == size;
    return std::fclose(f) == 0 && ok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace attnscope;
    if (!writeScratch(data, size)) return 0;
    OpenOptions options;
    options.scanValues = true;
    options.maxTensorBytes = uint64_t(1) << 24;  // inputs are small; keep allocations bounded
    auto trace = Trace::open(scratchPath(), options);
    if (!trace) {
        // Every error names the file.
        if (trace.message().rfind(scratchPath(), 0) != 0) __builtin_trap();
        return 0;
    }
    const Trace& t = **trace;
    for (Which which : {Which::Q, Which::K, Which::V}) {
        auto head = t.head(0, t.config(0).heads - 1, which);
        if (t.hasQK() != head.ok()) __builtin_trap();  // valid q/k/v traces always give a head
    }
    auto rows = t.storedAttention(0, 0, 0, t.tokens() > 0 ? 1 : 0);
    if (t.layer(0).attn.has_value() != rows.ok()) __builtin_trap();
    return 0;
}
