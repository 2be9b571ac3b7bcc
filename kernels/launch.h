#pragma once
// Host-side entry points of the .cu files, free of Eigen and of core's GPU interface so nvcc
// compiles only device code and parameter structs. The engine (cuda_engine.cpp) calls these.
#include <cuda_runtime_api.h>

#include <limits>
#include <string>
#include <vector>

#include "attnscope/status.h"
#include "device_types.h"

namespace attnscope::gpu {

enum class ElemType { BF16, F16 };

/// What one launch was, for the profiler's records.
struct LaunchRecord {
    std::string name;
    dim3 grid, block;
    int registers = 0;
    int sharedBytes = 0;
};
using LaunchLog = std::vector<LaunchRecord>;

/// Which instantiation of the forward kernel: the mask functor (Full and Causal are compiled
/// in; everything else runs the MaskProgram) and whether a score_mod is present.
enum class MaskFunctor { Full, Causal, Program };

/// Which forward kernel runs: wgmma needs an sm_90 device (the kernels are built for sm_90a);
/// mma.sync runs on any sm_80+ device (and through PTX on newer ones).
enum class ForwardPath { MmaSync, Wgmma };

struct ForwardArgs {
    flex::FlexParams params;
    MaskFunctor mask = MaskFunctor::Full;
    flex::MaskProgram program;
    flex::ScoreProgram score;  ///< kind == kScoreNone: the identity instantiation
    int headDim = 128;
    ElemType elem = ElemType::BF16;
    ForwardPath path = ForwardPath::MmaSync;
};

/// Builds the BlockMask (view's pointers preallocated: numQBlocks and numQBlocks × numKvBlocks
/// ints, `state` numQBlocks × numKvBlocks bytes) from the mask functor on the GPU.
Status buildBlockMask(MaskFunctor mask, const flex::MaskProgram& program, int tokens, unsigned char* state,
                      const flex::BlockMaskView& view, cudaStream_t stream, LaunchLog* log);

/// The forward kernel: O and lse of every (batch, head) under the BlockMask in args.params.
Status launchForward(const ForwardArgs& args, cudaStream_t stream, LaunchLog* log);

/// Split-KV decode: one query per (batch, head) against `tokens` keys. One CTA takes one key
/// slice of one kv head for up to 16 of its query heads (the M rows of the tensor-core products),
/// so a GQA group reads its K/V once. `partial` holds splits × B × H × (headDim + 2) floats (see
/// decodeWorkspaceFloats); `counters` decodeCounterCount zeroed unsigned ints (the last CTA of a
/// kv head merges the slices in the same launch and sets its counter back to 0).
struct DecodeArgs {
    const void* q = nullptr;  ///< [B, H, 1, D]
    const void* k = nullptr;  ///< [B, Hkv, T, D]
    const void* v = nullptr;
    void* o = nullptr;     ///< [B, H, 1, D]
    float* lse = nullptr;  ///< [B, H]
    int batch = 1, heads = 1, kvHeads = 1, tokens = 0, headDim = 128;
    float scale = 1.0f;
    ElemType elem = ElemType::BF16;
    int splits = 1;
    int keysPerSplit = 0;  ///< set by launchDecode
    float* partial = nullptr;
    unsigned* counters = nullptr;
};
/// Number of KV splits for a decode problem on a GPU with `smCount` SMs.
int decodeSplits(int batch, int heads, int kvHeads, int tokens, int smCount);
size_t decodeWorkspaceFloats(const DecodeArgs& a);
size_t decodeCounterCount(const DecodeArgs& a);
Status launchDecode(const DecodeArgs& args, cudaStream_t stream, LaunchLog* log);

/// Chunked causal linear attention (Lightning-Attention-2 intra/inter chunks, optional decay).
struct LinearArgs {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* o = nullptr;
    float* lse = nullptr;  ///< written as 0: linear attention has no softmax normaliser
    int batch = 1, heads = 1, kvHeads = 1, tokens = 0, headDim = 128;
    float decay = 0.0f;
    ElemType elem = ElemType::BF16;
    float* states = nullptr;  ///< linearWorkspaceFloats floats
};
size_t linearWorkspaceFloats(const LinearArgs& a);
Status launchLinear(const LinearArgs& args, cudaStream_t stream, LaunchLog* log);

/// Mask + score of one head for the analysis passes, with MaskSpec / AttentionSpec semantics.
struct AnalysisSpec {
    float scale = 1.0f, softcap = 0.0f, alibiSlope = 0.0f, relativeBias = 0.0f;
    bool causal = false;
    long long window = 0, prefix = 0, dilation = 1;
    const int* documents = nullptr;       ///< device [T] or null
    const long long* excluded = nullptr;  ///< device, sorted
    int excludedCount = 0;
    const unsigned char* blocks = nullptr;  ///< device block flags or null
    long long blockSize = 128, blockCols = 0, blockRows = 0;
    /// Learned sink logit (AttentionSpec::sinkLogit): the lse passes fold it into L (logaddexp),
    /// so every later pass's p = exp(s - L') follows. -inf = none.
    float sinkLogit = -std::numeric_limits<float>::infinity();
};

/// How pass 2 bins (q, k) pairs into output cells.
struct CellGrid {
    long long q0 = 0, q1 = 0, k0 = 0, k1 = 0;
    int rows = 0, cols = 0;
    long long blockSize = 0;  ///< > 0: cell = (q - q0) / blockSize (block mass); else the map's floor split
};
}  // namespace attnscope::gpu
