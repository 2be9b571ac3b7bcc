#pragma once
// Synthetic traces with planted, known patterns: ground truth for tests and long-sequence
// benchmarks (T up to 4M) at real model dimensions. Each layer's kv heads take the planted patterns
// in turn (SynthOptions::heads, cycled), each shared by a GQA group of query heads.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attnscope/progress.h"
#include "attnscope/status.h"
#include "attnscope/synth_vision.h"
#include "attnscope/trace.h"

namespace attnscope {

enum class SynthHead {
    FirstTokenSink,  ///< most queries attend to key 0
    HiddenSink,      ///< a sink at a later position (SynthOptions::hiddenSinkPosition)
    LocalBand,       ///< attention within a short window behind the query
    PreviousToken,   ///< query i attends to i-1
    Induction,       ///< on the repeated segment, i attends to the token after the earlier copy
    Documents,       ///< block-diagonal: attends within its document only
    Noise,           ///< uniform-ish random attention
};
const char* synthHeadName(SynthHead h);

struct SynthOptions {
    int64_t tokens = 1024;
    int layers = 2;
    int headDim = 64;
    int kvGroups = 1;  ///< query heads per kv head (GQA ratio); heads are duplicated per group
    /// Kv heads per layer; 0: one per entry of `heads`. Kv head j plants heads[j % heads.size()].
    int kvHeads = 0;
    /// Query heads per layer, a multiple of the kv heads; 0: kvHeads × kvGroups. When set,
    /// kvGroups must be 1 or agree (queryHeads = kvHeads × kvGroups).
    int queryHeads = 0;
    DType dtype = DType::F16;
    uint64_t seed = 1;
    std::vector<SynthHead> heads = {SynthHead::FirstTokenSink, SynthHead::HiddenSink, SynthHead::LocalBand,
                                    SynthHead::PreviousToken,  SynthHead::Induction,  SynthHead::Documents,
                                    SynthHead::Noise,          SynthHead::Noise};
    int64_t hiddenSinkPosition = -1;  ///< -1: T/3
    int64_t repeatStart = -1;         ///< induction: second copy starts here (-1: T/2)
    int64_t repeatLength = -1;        ///< -1: T/4
    int documents = 4;
    /// Memory against time, not content: a kv head keeps its q̂ ([T, d] floats) for its GQA group's
    /// query heads up to this size (T = 64k at d = 128), per worker thread; larger ones re-run the
    /// pattern's codes for each query head instead (about twice the time). 0: always re-run.
    int64_t codeCacheBytes = int64_t(32) << 20;
    /// `synth --vision`: write a vision trace instead (writeVisionSyntheticTrace, synth_vision.h);
    /// its layers, heads, head dim, dtype and seed come from there, not from the fields above.
    std::optional<VisionSynthOptions> vision;
};

/// The planted ground truth, so tests know where to look.
struct SynthTruth {
    std::vector<SynthHead> heads;  ///< per query head of every layer
    int kvHeads = 0;               ///< per layer; query head h uses kv head h / (heads.size() / kvHeads)
    int64_t hiddenSinkPosition = 0;
    int64_t repeatStart = 0, repeatLength = 0;  ///< tokens [repeatStart, +len) copy [repeatStart-len, …)
    std::vector<int32_t> documents;             ///< per token
};

/// Builds the trace in memory (writer ready to write) and its ground truth. Small traces only
/// (tests): it holds every tensor; writeSyntheticTrace streams.
Result<std::pair<TraceWriter, SynthTruth>> makeSyntheticTrace(const SynthOptions& options);
/// Generates and writes the trace to `path` without holding it: the header first, then each
/// layer's kv heads generated in parallel (a block of rows at a time) and written in place, into a
/// temporary file beside `path` that is flushed and renamed into place. Memory per worker thread is
/// a few MB plus q̂ up to codeCacheBytes, at any size; the token metadata (about 300 bytes a token
/// while the header is built) comes on top. The file is byte for byte what makeSyntheticTrace's
/// writer writes.
/// Fails before writing when the file would not fit in the free space or the reader's limits.
Result<SynthTruth> writeSyntheticTrace(const std::string& path, const SynthOptions& options,
                                       const ProgressFn& progress = {});

}  // namespace attnscope
