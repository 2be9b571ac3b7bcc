#pragma once
// Host-side entry points of the tensor-core analysis passes (analysis_tc.cu). Q/K/V are 16-bit
// (bf16 or f16, the trace's own dtype when it has one) on the device, [heads or kv heads, T,
// dim] row-major; S = Q·Kᵀ tiles run on the tensor cores (wmma, fp32 accumulation) and each
// pass's epilogue turns them into p = exp(s - L) and accumulates what the pass needs. One launch
// covers every query head of a layer (grid.y = head); the query heads of a kv group read the same
// K/V rows, which stay in L2 between them.
#include <cuda_runtime_api.h>

#include "attnscope/status.h"
#include "launch.h"

namespace attnscope::gpu {

/// Rows of per-row sums written by the stats pass, in this order (each [T] floats).
enum RowStat : int {
    kRowMass = 0, kRowPlogp, kRowDistance, kRowFirst, kRowSelf, kRowRecent, kRowPrev, kRowNext, kRowDuplicate,
    kRowInduction, kRowRepeat, kRowDocument, kRowStatCount
};

constexpr int kMaxPassBlockSizes = 4;

/// Candidate mask of a masked pass (CandidateMask / the top-k block list).
enum PassMaskKind : int { kPassMaskNone = 0, kPassMaskWindow, kPassMaskSinkWindow, kPassMaskVerticalSlash, kPassMaskBlocks };

/// One query head of a pass.
struct HeadPassArgs {
    const void* q = nullptr;  ///< [T, dim] of this query head
    const void* k = nullptr;  ///< [T, dim] of its kv head
    const void* v = nullptr;  ///< bf16 whatever the trace's dtype (f16 V is converted first)
    AnalysisSpec spec;
    float* lse = nullptr;     ///< [T]: written by the lse pass, read by the others
    // Stats / estimate pass.
    float* rowStats = nullptr;  ///< [kRowStatCount][T]
    float* column = nullptr;    ///< [T], atomically accumulated
    float* offset = nullptr;    ///< [origin + T], atomically accumulated
    long long origin = 0;       ///< T - 1 for non-causal heads, else 0
    float* blocks[kMaxPassBlockSizes] = {};  ///< [nb × nb] per block size (multiples of 64)
    float* numerator = nullptr;  ///< [Tpad, dimPad] Σ p v (stats pass, dense)
    // Masked pass.
    int maskKind = kPassMaskNone;
    long long maskWindow = 0, maskSinks = 0;
    const unsigned char* vertical = nullptr;  ///< [T] kept keys
    const unsigned char* slash = nullptr;     ///< [origin + T] kept offsets
    const int* slashPrefix = nullptr;         ///< [origin + T + 1] running count of `slash` (tile skipping)
    const unsigned char* verticalTiles = nullptr;  ///< [ceil(T/64)] any kept key in the 64-key tile
    const unsigned char* keptBlocks = nullptr;     ///< [nb × nb] top-k blocks at maskBlockSize
    long long maskBlockSize = 64, maskBlockCols = 0;
    float* maskMass = nullptr;   ///< [T] Σ_{j∈mask} p_ij
    float* maskDiff = nullptr;   ///< [T] ‖O_mask,i − O_i‖²
    float* maskRef = nullptr;    ///< [T] ‖O_i‖²
};

/// What every head of a pass shares.
struct LayerPassArgs {
    const HeadPassArgs* heads = nullptr;  ///< device array [heads]
    int heads_ = 0;
    int tokens = 0, dim = 0;
    long long rowBegin = 0, rowEnd = 0;   ///< query rows of this pass
    ElemType elem = ElemType::BF16;
    // Role templates (all optional, device [T]).
    const int* tokenIds = nullptr;         ///< dense ranks of the token ids (equal ids, equal ranks)
    const int* ngram = nullptr;            ///< repeated-context ids (-1 = none)
    const int* documents = nullptr;        ///< context documents (in-document mass)
    bool excludeBos = false, excludeCurrentToken = false;
    long long recentTokens = 4;
    int blockSizeCount = 0;
    long long blockSizes[kMaxPassBlockSizes] = {};
};

enum class PassKind { Lse, Stats, Estimate, Masked };

/// The largest head dim the passes take (dims are padded to 64, 128 or 256 inside).
constexpr int kMaxPassDim = 256;

/// Runs one pass over the rows [rowBegin, rowEnd) of every head.
Status launchAnalysisPass(PassKind kind, const LayerPassArgs& args, cudaStream_t stream);

/// The padded head dim the passes compute with (64, 128 or 256): the stats pass's numerator
/// rows have this stride.
inline int passDimPad(int dim) { return dim <= 64 ? 64 : dim <= 128 ? 128 : 256; }

/// The map: pass 1 over the rect's rows (lse indexed by absolute row, [T]), then pooling into
/// cells (CellGrid) — one head. `headScratch`: device memory of sizeof(HeadPassArgs);
/// `lseReady`: the rect's rows of `lse` are already computed (ForwardLse), skip pass 1.
Status launchMapPasses(const void* q, const void* k, ElemType elem, int tokens, int dim, const AnalysisSpec& spec,
                       float* lse, const CellGrid& grid, double* sums, float* maxima, unsigned long long* allowed,
                       void* headScratch, bool lseReady, cudaStream_t stream);

/// Mean (sum / cell area), max and allowed fraction (count / area) per cell of a map grid
/// (the map's floor split), as floats [3][rows × cols].
Status launchMapFinalize(const CellGrid& g, const double* sums, const float* maxima, const unsigned long long* allowed,
                         float* out, cudaStream_t stream);

/// Converts f16 to bf16 on the device (V of f16 traces: P·V runs in bf16, see analysis_tc.cu).
Status launchF16ToBf16(const void* f16, void* bf16, long long count, cudaStream_t stream);

/// Non-finite values among `count` 16-bit elements (adds to *result).
Status launchCountNonFinite(const void* data, long long count, ElemType elem, unsigned long long* result,
                            cudaStream_t stream);

}  // namespace attnscope::gpu
