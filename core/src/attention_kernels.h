#pragma once
// Internal building blocks of the CPU attention engine: a vectorised exp, the row kernels that
// fuse it with sums and pooling, the mask plan that classifies tiles (skip / no per-element mask /
// per-element mask) and the per-worker score tile S = scale·Q·Kᵀ (+ score mods, mask).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ATTNSCOPE_EXP_AVX2 1
#endif

#include "attnscope/attention.h"
#include "attnscope/progress.h"

namespace attnscope::detail {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- exp -------------------------------------------------------------------------------------
// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 split in two parts (Cody–Waite)
// so r is exact to float precision; |r| ≤ ln2/2, where the degree-7 Taylor polynomial's
// truncation error r⁸/8! < 6e-9 is far below float rounding. Inputs below kExpMin give 0 (the
// result would be denormal), which also maps masked −inf scores to probability 0.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;              // ln 2 rounded to 9 bits: n·kLn2Hi is exact
constexpr float kLn2Lo = -2.12194440054690583e-4f;  // ln 2 − kLn2Hi
constexpr float kExpMin = -87.33654f;               // ln(FLT_MIN)
constexpr float kExpMax = 88.3762626f;              // ln(FLT_MAX)
constexpr int kFloatExponentBias = 127;
constexpr int kFloatMantissaBits = 23;
// 1/k! for k = 2..7
constexpr float kInvFact2 = 1.0f / 2, kInvFact3 = 1.0f / 6, kInvFact4 = 1.0f / 24, kInvFact5 = 1.0f / 120,
                kInvFact6 = 1.0f / 720, kInvFact7 = 1.0f / 5040;

inline float expScalar(float x) {
    if (!(x >= kExpMin)) return 0.0f;
    x = std::min(x, kExpMax);
    const float n = std::nearbyint(x * kLog2e);
    const float r = std::fma(-n, kLn2Lo, std::fma(-n, kLn2Hi, x));
    float p = kInvFact7;
    p = std::fma(p, r, kInvFact6);
    p = std::fma(p, r, kInvFact5);
    p = std::fma(p, r, kInvFact4);
    p = std::fma(p, r, kInvFact3);
    p = std::fma(p, r, kInvFact2);
    p = std::fma(p, r, 1.0f);
    p = std::fma(p, r, 1.0f);
    return std::ldexp(p, static_cast<int>(n));
}

#ifdef ATTNSCOPE_EXP_AVX2
inline __m256 exp8(__m256 x) {
    const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
    __m256 p = _mm256_set1_ps(kInvFact7);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kInvFact6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kInvFact5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kInvFact4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kInvFact3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kInvFact2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    // 2^n: n sits in [-126, 127] after the clamp, so (n + bias) << 23 is a normal float.
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(kFloatExponentBias)),
                                        kFloatMantissaBits);
    return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

/// Largest of s[0..n) (−inf for n = 0).
inline float rowMax(const float* s, int64_t n) {
    int64_t j = 0;
    float m = kNegInf;
#ifdef ATTNSCOPE_EXP_AVX2
    __m256 vm = _mm256_set1_ps(kNegInf);
    for (; j + 8 <= n; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
    m = hmax8(vm);
#endif
    for (; j < n; ++j) m = std::max(m, s[j]);
    return m;
}

/// Σ exp(s[j] − shift) without storing the terms (pass 1).
inline float expSum(const float* s, int64_t n, float shift) {
    int64_t j = 0;
    float total = 0;
#ifdef ATTNSCOPE_EXP_AVX2
    const __m256 vs = _mm256_set1_ps(shift);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        a0 = _mm256_add_ps(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs)));
        a1 = _mm256_add_ps(a1, exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), vs)));
    }
    total = hsum8(_mm256_add_ps(a0, a1));
#endif
    for (; j < n; ++j) total += expScalar(s[j] - shift);
    return total;
}

/// s[j] ← exp(s[j] − shift); returns the sum of the new values.
inline float expInPlace(float* s, int64_t n, float shift) {
    int64_t j = 0;
    float total = 0;
#ifdef ATTNSCOPE_EXP_AVX2
    const __m256 vs = _mm256_set1_ps(shift);
    __m256 acc = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        const __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
        _mm256_storeu_ps(s + j, p);
        acc = _mm256_add_ps(acc, p);
    }
    total = hsum8(acc);
#endif
    for (; j < n; ++j) {
        s[j] = expScalar(s[j] - shift);
        total += s[j];
    }
    return total;
}

/// p = exp(s[j] − shift); colSum[j] += p; colMax[j] = max(colMax[j], p) (pass 2 pooling).
inline void expAccumulate(const float* s, int64_t n, float shift, float* colSum, float* colMax) {
    int64_t j = 0;
#ifdef ATTNSCOPE_EXP_AVX2
    const __m256 vs = _mm256_set1_ps(shift);
    for (; j + 8 <= n; j += 8) {
        const __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
        _mm256_storeu_ps(colSum + j, _mm256_add_ps(_mm256_loadu_ps(colSum + j), p));
        _mm256_storeu_ps(colMax + j, _mm256_max_ps(_mm256_loadu_ps(colMax + j), p));
    }
#endif
    for (; j < n; ++j) {
        const float p = expScalar(s[j] - shift);
        colSum[j] += p;
        colMax[j] = std::max(colMax[j], p);
    }
}

// ---- masks -----------------------------------------------------------------------------------

/// Causal / window / dilation / prefix part of MaskSpec::allows.
inline bool positionalAllows(const MaskSpec& m, int64_t q, int64_t k) {
    if (k < m.prefix) return true;
    const int64_t delta = q - k;
    if (m.causal && delta < 0) return false;
    if (m.window > 0 && (delta >= m.window || -delta >= m.window)) return false;
    if (m.dilation > 1 && delta % m.dilation != 0) return false;
    return true;
}

/// Whether block (q / blockSize, k / blockSize) is kept; out-of-range blocks are not.
inline bool blockKept(const MaskSpec& m, int64_t q, int64_t k) {
    if (m.blockSize <= 0 || m.blockCols <= 0) return false;
    const int64_t bc = k / m.blockSize;
    if (bc >= m.blockCols) return false;
    const size_t idx = static_cast<size_t>((q / m.blockSize) * m.blockCols + bc);
    return idx < m.blocks->size() && (*m.blocks)[idx] != 0;
}

enum class TileClass { Empty, Full, Partial };

/// Per-call view of a MaskSpec that classifies tiles quickly and masks partial ones.
class MaskPlan {
public:
    explicit MaskPlan(const AttentionSpec& spec);
    /// Query positions [pa, pb) × keys [ka, kb).
    TileClass classify(int64_t pa, int64_t pb, int64_t ka, int64_t kb) const;
    /// Sets disallowed entries of a partial tile to −inf. `s` is row-major with leading dim ld.
    void apply(float* s, int64_t ld, int64_t pa, int64_t rows, int64_t ka, int64_t cols) const;
    bool hasScoreMods() const {
        return m_spec.softcap > 0 || m_spec.alibiSlope != 0 || m_spec.relativeBias != 0 || hasExprScore();
    }
    bool hasExprScore() const;
    /// Softcap then ALiBi / relative bias on an already scaled tile.
    void applyScoreMods(float* s, int64_t ld, int64_t pa, int64_t rows, int64_t ka, int64_t cols) const;

private:
    TileClass positional(int64_t pa, int64_t pb, int64_t ka, int64_t kb) const;
    const AttentionSpec& m_spec;
    std::vector<int32_t> m_docRun;  ///< run index of each position: equal runs share a document
};

/// Checks shapes and mask parameters against Tq rows at offset qOffset and Tk keys. `what` names
/// the calling function in messages.
Status validateInputs(const char* what, const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec,
                      int64_t qOffset);

// ---- tiles -----------------------------------------------------------------------------------

constexpr int64_t kTileQ = 128;  ///< query rows per work item
constexpr int64_t kTileK = 512;  ///< keys per score tile: S (256 KiB) stays in L2 next to K's tile

/// One worker's scratch: the scaled query tile and the score tile.
struct ScoreTile {
    MatrixRM qs;
    MatrixRM s;
    void loadQueries(const MatrixRM& q, float scale, int64_t row0, int64_t rows);
    /// S[0:rows, 0:cols] = scores of the loaded queries (positions pa…) against keys [ka, ka+cols),
    /// score mods applied and, for partial tiles, the mask.
    void compute(const MatrixRM& k, const MaskPlan& plan, TileClass cls, int64_t pa, int64_t rows, int64_t ka,
                 int64_t cols);
    float* row(int64_t r) { return s.data() + r * s.cols(); }
};

/// Pass 1 for rows [row0, row0+rows) (positions row0 + qOffset …): the row logsumexp, in double
/// for the sum so long rows keep full float precision.
void tileLogSumExp(ScoreTile& w, const MatrixRM& q, const MatrixRM& k, const AttentionSpec& spec, const MaskPlan& plan,
                   int64_t row0, int64_t rows, int64_t qOffset, bool skipEmpty, float* lseOut);

/// The ProgressReporter pattern every engine entry point uses: report per finished item.
class ItemProgress {
public:
    ItemProgress(const ProgressFn& fn, const char* stage, int64_t items, double from = 0.0, double to = 1.0)
        : m_reporter(fn), m_stage(stage), m_items(items), m_from(from), m_to(to) {}
    bool cancelled() const { return m_reporter.cancelled(); }
    void itemDone();

private:
    ProgressReporter m_reporter;
    const char* m_stage;
    int64_t m_items;
    double m_from, m_to;
    std::atomic<int64_t> m_done{0};
};

}  // namespace attnscope::detail
