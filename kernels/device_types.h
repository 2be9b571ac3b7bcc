#pragma once
// Plain parameter structs shared by host code (g++) and device code (nvcc, later NVRTC): no CUDA
// or standard-library headers, so a JIT-compiled user mod can include this file as is.

namespace attnscope::flex {

/// FlexAttention block size: the block mask and the query tile of the forward kernel.
constexpr int kMaskBlock = 128;
/// Terms of a composed mask program (A op (B op (C op D))).
constexpr int kMaxMaskTerms = 4;

enum MaskTermKind : int {
    kTermFull = 0,
    kTermCausal,
    kTermSliding,      ///< 0 <= q - k < window
    kTermPrefix,       ///< k < prefix or k <= q
    kTermDocument,     ///< k <= q and docs[q] == docs[k]
    kTermDilated,      ///< 0 <= q - k < window (already × dilation), (q - k) % dilation == 0
    kTermBlockSparse,  ///< k <= q and blocks[q / blockSize][k / blockSize]
};
enum MaskCombineOp : int { kCombineAnd = 0, kCombineOr = 1 };

struct MaskTerm {
    int kind = kTermFull;
    int window = 0;
    int dilation = 1;
    int prefix = 0;
    const int* docs = nullptr;              ///< device [tokens]
    const unsigned char* blocks = nullptr;  ///< device [blockCols²] kept flags
    int blockSize = kMaskBlock;
    int blockCols = 0;
};

/// A mask_mod evaluated at run time: terms combined right to left.
struct MaskProgram {
    MaskTerm term[kMaxMaskTerms];
    int combine[kMaxMaskTerms] = {};  ///< combine[i] joins term i with the rest
    int count = 1;
    int tokens = 0;  ///< guards document / block lookups
};

enum ScoreKind : int { kScoreNone = 0, kScoreSoftcap, kScoreAlibi, kScoreRelativeBias };

/// A score_mod evaluated at run time.
struct ScoreProgram {
    int kind = kScoreNone;
    float softcap = 0;
    float bias = 0;
    int heads = 1;  ///< ALiBi slope of head h: 2^(-8(h+1)/heads)
};

/// FlexAttention BlockMask (broadcast over batch and head): for query block i, kvNum[i] partial
/// key blocks kvIdx[i·numKvBlocks + j] (mask_mod evaluated) and fullNum[i] full key blocks
/// fullIdx[i·numKvBlocks + j] (no mask_mod call), each list packed to the left.
struct BlockMaskView {
    const int* kvNum = nullptr;
    const int* kvIdx = nullptr;
    const int* fullNum = nullptr;
    const int* fullIdx = nullptr;
    int numQBlocks = 0;
    int numKvBlocks = 0;
};

/// Forward kernel arguments. q/o: [B, H, T, D]; k/v: [B, Hkv, T, D]; lse: [B, H, T].
struct FlexParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* o = nullptr;
    float* lse = nullptr;
    int batch = 1, heads = 1, kvHeads = 1, tokens = 0;
    float scale = 1.0f;
    BlockMaskView mask;
};

}  // namespace attnscope::flex
