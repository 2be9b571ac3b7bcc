#pragma once
// Kernel records for the tests of what reads a profile (exports, the kernel timeline).
#include <cstdint>

#include "attnscope/profiler.h"

namespace attnscope::testing {

/// A kernel of variant `variant` on stream `stream`, running [start, start + dur) µs.
inline KernelRecord kernelRecord(int variant, uint32_t stream, double start, double dur) {
    KernelRecord r;
    r.variantIndex = variant;
    r.streamId = stream;
    r.startUs = start;
    r.durationUs = dur;
    return r;
}

}  // namespace attnscope::testing
