// Small trace vocabulary: dtype and kind names, typed tensor views with conversion to float.
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <limits>

#include "half.h"
#include "trace_impl.h"

namespace attnscope {

const char* dtypeName(DType t) {
    switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::U8: return "U8";
    }
    return "?";
}

size_t dtypeSize(DType t) {
    switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::U8: return 1;
    }
    return 0;
}

const char* traceKindName(TraceKind k) {
    switch (k) {
    case TraceKind::CausalLM: return "causal-lm";
    case TraceKind::Encoder: return "encoder";
    case TraceKind::Vision: return "vision";
    }
    return "?";
}

std::string describeCaptureCheck(const CaptureCheck& c) {
    if (!c.present) return "not recorded (the tool that wrote this trace did not check it against the model)";
    char buf[320];
    const char* what = c.compared == "output" ? "|ΔO|/max|v|" : "|Δp|";
    if (c.passed())
        std::snprintf(buf, sizeof buf, "passed: max %s %.2g ≤ %.0e (%s, %lld rows per head of every layer)", what,
                      c.maxAbsDelta, c.tolerance, c.compared.empty() ? "?" : c.compared.c_str(),
                      static_cast<long long>(c.rowsChecked));
    else
        std::snprintf(buf, sizeof buf,
                      "MISMATCH: max %s %.2g in layer %d > %.0e: written with --allow-mismatch; maps and analyses "
                      "may not show what the model computed",
                      what, c.maxAbsDelta, c.worstLayer, c.tolerance);
    return buf;
}

std::string shapeString(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ',';
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

bool checkedMul(uint64_t a, uint64_t b, uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

int64_t TensorView::numel() const {
    uint64_t n = 1;
    for (const int64_t d : shape)
        if (d < 0 || !checkedMul(n, uint64_t(d), n)) return -1;  // the reader never lets this happen
    return n > uint64_t(std::numeric_limits<int64_t>::max()) ? -1 : int64_t(n);
}

namespace {

// Unaligned loads: safetensors does not align tensors, so data may start at any byte.
inline uint16_t load16(const std::byte* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

void convertF32(const std::byte* src, int64_t count, float* out) { std::memcpy(out, src, size_t(count) * 4); }

void convertF16(const std::byte* src, int64_t count, float* out) {
    for (int64_t i = 0; i < count; ++i) out[i] = half::f16ToFloat(load16(src + 2 * i));
}

void convertBF16(const std::byte* src, int64_t count, float* out) {
    for (int64_t i = 0; i < count; ++i) out[i] = half::bf16ToFloat(load16(src + 2 * i));
}

}  // namespace

float TensorView::at(int64_t i) const {
    float v = std::numeric_limits<float>::quiet_NaN();
    toFloat(i, 1, &v);
    return v;
}

void TensorView::toFloat(int64_t first, int64_t count, float* out) const {
    if (count <= 0) return;
    // Out-of-range requests are a caller bug; answer NaN (which views mark) instead of reading
    // outside the mapping.
    const int64_t n = data ? int64_t(bytes / dtypeSize(dtype)) : 0;
    const int64_t begin = std::max<int64_t>(first, 0);
    const int64_t end = std::min<int64_t>(first + count, n);
    if (begin != first || end != first + count) std::fill(out, out + count, std::numeric_limits<float>::quiet_NaN());
    if (end <= begin) return;
    float* dst = out + (begin - first);
    const std::byte* src = data + size_t(begin) * dtypeSize(dtype);
    switch (dtype) {
    case DType::F32: convertF32(src, end - begin, dst); break;
    case DType::F16: convertF16(src, end - begin, dst); break;
    case DType::BF16: convertBF16(src, end - begin, dst); break;
    case DType::U8:
        for (int64_t i = 0; i < end - begin; ++i) dst[i] = float(std::to_integer<uint8_t>(src[i]));
        break;
    }
}

}  // namespace attnscope
