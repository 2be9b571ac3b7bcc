#pragma once
// Synthetic traces with planted, known patterns: ground truth for tests and long-sequence
// benchmarks (T up to 128k). Each layer holds one head per pattern (see SynthHead).
#include <cstdint>
#include <string>
#include <vector>

#include "attnscope/status.h"
#include "attnscope/trace.h"

namespace attnscope {

enum class SynthHead {
    FirstTokenSink,   ///< most queries attend to key 0
    HiddenSink,       ///< a sink at a later position (SynthOptions::hiddenSinkPosition)
    LocalBand,        ///< attention within a short window behind the query
    PreviousToken,    ///< query i attends to i-1
    Induction,        ///< on the repeated segment, i attends to the token after the earlier copy
    Documents,        ///< block-diagonal: attends within its document only
    Noise,            ///< uniform-ish random attention
};
const char* synthHeadName(SynthHead h);

struct SynthOptions {
    int64_t tokens = 1024;
    int layers = 2;
    int headDim = 64;
    int kvGroups = 1;     ///< query heads per kv head (GQA ratio); heads are duplicated per group
    DType dtype = DType::F16;
    uint64_t seed = 1;
    std::vector<SynthHead> heads = {SynthHead::FirstTokenSink, SynthHead::HiddenSink, SynthHead::LocalBand,
                                    SynthHead::PreviousToken,  SynthHead::Induction,  SynthHead::Documents,
                                    SynthHead::Noise,          SynthHead::Noise};
    int64_t hiddenSinkPosition = -1;  ///< -1: T/3
    int64_t repeatStart = -1;         ///< induction: second copy starts here (-1: T/2)
    int64_t repeatLength = -1;        ///< -1: T/4
    int documents = 4;
};

/// The planted ground truth, so tests know where to look.
struct SynthTruth {
    std::vector<SynthHead> heads;     ///< per query head of every layer
    int64_t hiddenSinkPosition = 0;
    int64_t repeatStart = 0, repeatLength = 0;  ///< tokens [repeatStart, +len) copy [repeatStart-len, …)
    std::vector<int32_t> documents;   ///< per token
};

/// Builds the trace in memory (writer ready to write) and its ground truth.
Result<std::pair<TraceWriter, SynthTruth>> makeSyntheticTrace(const SynthOptions& options);
/// Convenience: generate and write atomically to `path`.
Result<SynthTruth> writeSyntheticTrace(const std::string& path, const SynthOptions& options);

}  // namespace attnscope
