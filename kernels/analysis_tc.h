#pragma once
// Host-side entry points of the tensor-core analysis passes. Q/K/V are 16-bit (bf16 or f16, the
// trace's own dtype when it has one) on the device, [heads or kv heads, T, dim] row-major; each
// pass recomputes S = Q·Kᵀ tiles on the tensor cores (fp32 accumulation) and turns them into
// p = exp(s - L) and what the pass accumulates. One launch covers every query head of a layer
// (grid.y = head); the query heads of a kv group read the same K/V rows, which stay in L2 between
// them. analysis_mma.cu: the stats, estimate and masked passes (and an lse pass) with S and P in
// mma.sync registers; analysis_tc.cu: the wmma lse pass for any spec and the map.
#include <cuda_runtime_api.h>

#include "attnscope/status.h"
#include "launch.h"

namespace attnscope::gpu {

/// Rows of per-row sums written by the stats pass, in this order (each [T] floats).
enum RowStat : int {
    kRowMass = 0,
    kRowPlogp,
    kRowDistance,
    kRowFirst,
    kRowSelf,
    kRowRecent,
    kRowPrev,
    kRowNext,
    kRowDuplicate,
    kRowInduction,
    kRowRepeat,
    kRowDocument,
    kRowStatCount
};

constexpr int kMaxPassBlockSizes = 4;

/// Candidate mask of a masked pass (CandidateMask / the top-k block list).
enum PassMaskKind : int {
    kPassMaskNone = 0,
    kPassMaskWindow,
    kPassMaskSinkWindow,
    kPassMaskVerticalSlash,
    kPassMaskBlocks
};

/// One query head of a pass.
struct HeadPassArgs {
    const void* q = nullptr;  ///< [T, dim] of this query head
    const void* k = nullptr;  ///< [T, dim] of its kv head
    const void* v = nullptr;  ///< bf16 whatever the trace's dtype (f16 V is converted first)
    AnalysisSpec spec;
    float* lse = nullptr;  ///< [T]: written by the lse pass, read by the others
    // Stats / estimate pass.
    float* rowStats = nullptr;               ///< [kRowStatCount][T]
    float* column = nullptr;                 ///< [T], atomically accumulated
    float* offset = nullptr;                 ///< [origin + T], atomically accumulated
    long long origin = 0;                    ///< T - 1 for non-causal heads, else 0
    float* blocks[kMaxPassBlockSizes] = {};  ///< [nb × nb] per block size (multiples of 64)
    float* numerator = nullptr;              ///< [Tpad, dimPad] Σ p v (stats pass, dense)
    // Masked pass.
    int maskKind = kPassMaskNone;
    long long maskWindow = 0, maskSinks = 0;
    const unsigned char* vertical = nullptr;       ///< [T] kept keys
    const unsigned char* slash = nullptr;          ///< [origin + T] kept offsets
    const int* slashPrefix = nullptr;              ///< [origin + T + 1] running count of `slash` (tile skipping)
    const unsigned char* verticalTiles = nullptr;  ///< [ceil(T/64)] any kept key in the 64-key tile
    const unsigned char* keptBlocks = nullptr;     ///< [nb × nb] top-k blocks at maskBlockSize
    long long maskBlockSize = 64, maskBlockCols = 0;
    float* maskMass = nullptr;    ///< [T] Σ_{j∈mask} p_ij
    double* maskError = nullptr;  ///< [2] Σ_i ‖O_mask,i − O_i‖², Σ_i ‖O_i‖² (atomically accumulated)
};

/// What every head of a pass shares.
struct LayerPassArgs {
    const HeadPassArgs* heads = nullptr;  ///< device array [heads]
    int heads_ = 0;
    int tokens = 0, dim = 0;
    long long rowBegin = 0, rowEnd = 0;  ///< query rows of this pass
    int keySplit = 1;                    ///< estimate pass: CTAs per row tile, each a strip of the key tiles
    ElemType elem = ElemType::BF16;
    // Role templates (all optional, device [T]). The stats pass compares ids per element only
    // when given them; otherwise launchTemplatePairs adds the templates from listed pairs.
    const int* tokenIds = nullptr;   ///< dense ranks of the token ids (equal ids, equal ranks)
    const int* ngram = nullptr;      ///< repeated-context ids (-1 = none)
    const int* documents = nullptr;  ///< context documents (in-document mass)
    bool excludeBos = false, excludeCurrentToken = false;
    long long recentTokens = 4;
    int blockSizeCount = 0;
    long long blockSizes[kMaxPassBlockSizes] = {};
};

/// Lse: pass 1 on the wmma kernel (any spec); LseFragments: pass 1 on the register-fragment
/// kernel (analysis_mma.cu); Stats, Estimate, Masked: analysis_mma.cu.
enum class PassKind { Lse, LseFragments, Stats, Estimate, Masked };

/// The largest head dim the passes take (dims are padded to 64, 128 or 256 inside).
constexpr int kMaxPassDim = 256;

/// Token-template pairs for launchTemplatePairs: x = the row i, y = the key j | template << 30
/// (0 duplicate, 1 induction, 2 repeated context: the row sums kRowDuplicate + template).
constexpr unsigned kPairTemplateShift = 30;
constexpr unsigned kPairKeyMask = (1u << kPairTemplateShift) - 1;

/// Adds p_ij of each listed (i, j) pair of every head to its template's row sum in rowStats
/// (after the stats pass, which leaves those sums zero when the ids are not passed to it).
/// `pairs`: device uint2 [count].
Status launchTemplatePairs(const LayerPassArgs& args, const void* pairs, long long count, cudaStream_t stream);

/// Runs one pass over the rows [rowBegin, rowEnd) of every head.
Status launchAnalysisPass(PassKind kind, const LayerPassArgs& args, cudaStream_t stream);
/// The register-fragment passes (every kind but Lse); launchAnalysisPass calls it.
Status launchMmaPass(PassKind kind, const LayerPassArgs& args, cudaStream_t stream);

/// The padded head dim the passes compute with (64, 128 or 256): the stats pass's numerator
/// rows have this stride.
inline int passDimPad(int dim) { return dim <= 64 ? 64 : dim <= 128 ? 128 : 256; }

/// Where the map's pass 1 runs inside launchMapPasses (Ready: the caller computed it).
enum class MapLse { Ready, Fragments, Wmma };

/// One head's map pooling (launchMapPasses): p = exp(s - lse) of the rect's allowed pairs summed,
/// maxed and counted per cell.
struct MapArgs {
    const void* q = nullptr;
    const void* k = nullptr;
    int tokens = 0, dim = 0;
    ElemType elem = ElemType::BF16;
    AnalysisSpec spec;
    const float* lse = nullptr;  ///< indexed by the absolute row
    CellGrid grid;
    double* sums = nullptr;
    float* maxima = nullptr;
    unsigned long long* allowed = nullptr;
};

/// Whether the register-fragment pooling (map_mma.cu) takes the grid: cells of whole multiples
/// of 16 rows and 8 keys on boundaries that a warp's 16 rows and an n8 tile's 8 keys never
/// cross (every overview whose T is a multiple of 16 × cells, the block mass at 64 / 128).
/// Other grids (zoomed rects, ragged splits) take the wmma kernel, which splits per element.
bool mapFragmentsTake(const CellGrid& grid);

/// The pooling of MapArgs on mma.sync fragments (S and P never leave the registers; a warp
/// reduces a cell once per run of keys in it); the lse of the rect's rows must be ready.
Status launchMapFragments(const MapArgs& args, cudaStream_t stream);

/// The map's passes on warpgroup MMAs (sm_90a: kernels/sm90/map_sm90.cu; launch them on compute
/// capability 9.0 only, where the engine's forward path is wgmma). Head dims 64 and 128, any
/// AnalysisSpec. launchMapLseSm90 writes `lse` (absolute rows, [T]) for the rect's rows: Q·Kᵀ and
/// the online max / sum alone (no P·V), the sink folded in. launchMapPoolSm90 is
/// launchMapFragments on wgmma for aligned grids whose cells hold whole multiples of 128 keys
/// (mapSm90PoolTakes: each 128-key tile in one cell column), the lse of its rows ready.
bool mapSm90Takes(int dim);
bool mapSm90PoolTakes(const CellGrid& grid);
Status launchMapLseSm90(const MapArgs& args, float* lse, cudaStream_t stream);
Status launchMapPoolSm90(const MapArgs& args, cudaStream_t stream);

/// The map: pass 1 over the rect's rows (lse indexed by absolute row, [T]), then pooling into
/// cells (CellGrid) — one head. `headScratch`: device memory of sizeof(HeadPassArgs);
/// `pass1`: Ready when the rect's rows of `lse` are already computed (ForwardLse), else the
/// kernel that computes them; `wgmmaPool`: grids mapSm90PoolTakes pool on launchMapPoolSm90
/// (other aligned grids on launchMapFragments).
Status launchMapPasses(const void* q, const void* k, ElemType elem, int tokens, int dim, const AnalysisSpec& spec,
                       float* lse, const CellGrid& grid, double* sums, float* maxima, unsigned long long* allowed,
                       void* headScratch, MapLse pass1, bool wgmmaPool, cudaStream_t stream);

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
