#pragma once
// IEEE half (F16) and bfloat16 (BF16) <-> float conversions, round-to-nearest-even: the one home of
// the 16-bit float policy (trace reading and writing in core, packing for the GPU in kernels).
// Written with plain integer ops and selects so that loops over them vectorise.
#include <cstdint>
#include <cstring>

namespace attnscope::half {

inline uint32_t floatBits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float bitsFloat(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// F16 layout: 1 sign, 5 exponent (bias 15), 10 mantissa. F32: 1, 8 (bias 127), 23.
constexpr uint32_t kF16ExpMask = 0x1F;
constexpr uint32_t kF16MantBits = 10;
constexpr uint32_t kF32MantBits = 23;
constexpr uint32_t kExpBiasDelta = 127 - 15;
constexpr uint32_t kF32ExpMask = 0x7F800000;
constexpr float kF16SubnormalUnit = 1.0f / 16777216.0f;  // 2^-24

/// F16 bits -> float (exact).
inline float f16ToFloat(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    const uint32_t exp = (h >> kF16MantBits) & kF16ExpMask;
    const uint32_t mant = h & 0x3FF;
    const uint32_t mantShift = mant << (kF32MantBits - kF16MantBits);
    const uint32_t normal = ((exp + kExpBiasDelta) << kF32MantBits) | mantShift;
    const uint32_t special = kF32ExpMask | mantShift;  // Inf / NaN keep their payload
    const uint32_t subnormal = floatBits(float(mant) * kF16SubnormalUnit);
    // Select with masks rather than branches so that conversion loops vectorise.
    const uint32_t isSubnormal = 0u - uint32_t(exp == 0);
    const uint32_t isSpecial = 0u - uint32_t(exp == kF16ExpMask);
    const uint32_t magnitude =
        (subnormal & isSubnormal) | (special & isSpecial) | (normal & ~(isSubnormal | isSpecial));
    return bitsFloat(sign | magnitude);
}

/// float -> F16 bits, round to nearest even; overflow gives Inf, NaN stays a (quiet) NaN.
inline uint16_t floatToF16(float f) {
    const uint32_t x = floatBits(f);
    const uint16_t sign = uint16_t((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7FFFFFFF;
    const uint32_t e = ax >> kF32MantBits;                                        // biased F32 exponent
    if (ax > kF32ExpMask) return uint16_t(sign | 0x7E00 | ((ax >> 13) & 0x1FF));  // NaN
    constexpr uint32_t kFirstInfExp = 127 + 16;                                   // 2^16 and above: Inf
    if (e >= kFirstInfExp) return uint16_t(sign | 0x7C00);
    constexpr uint32_t kFirstNormalExp = 127 - 14;  // 2^-14, smallest F16 normal
    if (e >= kFirstNormalExp) {
        // Drop 13 mantissa bits with round-to-nearest-even; a carry correctly bumps the exponent
        // (and 65520 and above reach 0x7C00 = Inf).
        uint32_t h = ((e - kExpBiasDelta) << kF16MantBits) | ((ax >> 13) & 0x3FF);
        const uint32_t rest = ax & 0x1FFF;
        h += (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ? 1 : 0;
        return uint16_t(sign | h);
    }
    // Subnormal F16: value / 2^-24 rounded to an integer. With m the 24-bit significand,
    // value = m * 2^(e-150), so the integer is m >> (126 - e).
    const uint32_t shift = 126 - e;
    if (e == 0 || shift > 24) return sign;  // below half the smallest subnormal
    const uint32_t m = (ax & 0x7FFFFF) | 0x800000;
    uint32_t q = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    q += (rest > halfway || (rest == halfway && (q & 1))) ? 1 : 0;
    return uint16_t(sign | q);
}

/// BF16 bits -> float (exact: BF16 is the top half of an F32).
inline float bf16ToFloat(uint16_t b) { return bitsFloat(uint32_t(b) << 16); }

/// float -> BF16 bits, round to nearest even; NaN stays a quiet NaN.
inline uint16_t floatToBf16(float f) {
    const uint32_t x = floatBits(f);
    if ((x & 0x7FFFFFFF) > kF32ExpMask) return uint16_t((x >> 16) | 0x40);
    const uint32_t rounding = 0x7FFF + ((x >> 16) & 1);
    return uint16_t((x + rounding) >> 16);
}

}  // namespace attnscope::half
