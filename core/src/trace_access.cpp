// Accessors of an open trace: metadata, tensor views, and per-head float matrices.
#include <cmath>

#include <cstring>

#include "half.h"
#include "mapped_guard.h"
#include "trace_impl.h"

namespace attnscope {

const std::string& Trace::path() const { return m_impl->path; }
uint64_t Trace::openId() const { return m_impl->openId; }
const TraceMetadata& Trace::metadata() const { return m_impl->meta; }
int64_t Trace::tokens() const { return m_impl->tokens; }
int Trace::numLayers() const { return int(m_impl->layers.size()); }
const LayerConfig& Trace::config(int layer) const { return m_impl->meta.layers.at(size_t(layer)); }
const LayerTensors& Trace::layer(int layer) const { return m_impl->layers.at(size_t(layer)); }
uint64_t Trace::fileSize() const { return m_impl->file.size(); }
bool Trace::hasQK() const { return m_impl->hasQK; }
const std::vector<NonFiniteCount>& Trace::nonFinite() const { return m_impl->nonFinite; }
const std::vector<std::string>& Trace::warnings() const { return m_impl->warnings; }

DType Trace::dtype() const {
    const LayerTensors& l = m_impl->layers.front();
    return m_impl->hasQK ? l.q.dtype : l.attn->dtype;
}

namespace {

Status checkLayerHead(const Trace& t, int layer, int head) {
    if (layer < 0 || layer >= t.numLayers())
        return Status(ErrorCode::InvalidArgument, t.path() + ": layer " + std::to_string(layer) +
                                                      " out of range (the trace has " + std::to_string(t.numLayers()) +
                                                      " layers)");
    const int heads = t.config(layer).heads;
    if (head < 0 || head >= heads)
        return Status(ErrorCode::InvalidArgument, t.path() + ": head " + std::to_string(head) + " of layer " +
                                                      std::to_string(layer) + " out of range (the layer has " +
                                                      std::to_string(heads) + " heads)");
    return Status::success();
}

Status truncatedWhileReading(const Trace& t, const TensorView& v) {
    return Status(ErrorCode::IoError, t.path() + ": tensor " + v.name +
                                          ": the file was truncated while it was open (its pages are gone); reopen it");
}

/// Converts elements of `v` from the mapping under the SIGBUS guard, with the file checked for
/// changes before and after (a rewrite during the copy would mix old and new values).
Status convertGuarded(const Trace& t, const Trace::Impl& impl, const TensorView& v, int64_t first, int64_t count,
                      float* out) {
    if (Status st = impl.file.checkUnchanged(t.path()); !st) return st;
    if (!detail::guarded([&] { v.toFloat(first, count, out); })) return truncatedWhileReading(t, v);
    return impl.file.checkUnchanged(t.path());
}

/// Counts NaN/Inf in converted floats via the exponent bits (vectorises, unlike std::isfinite).
int64_t countNonFinite(const float* p, int64_t n) {
    constexpr uint32_t kExpMask = 0x7F800000;
    int64_t count = 0;
    for (int64_t i = 0; i < n; ++i) count += (half::floatBits(p[i]) & kExpMask) == kExpMask;
    return count;
}

}  // namespace

Result<HeadMatrix> Trace::head(int layer, int head, Which which) const {
    if (Status st = checkLayerHead(*this, layer, head); !st) return st;
    if (!hasQK())
        return Status(ErrorCode::Unsupported, path() + ": weights-only trace: layer " + std::to_string(layer) +
                                                  " has no q/k/v (maps come from layers.N.attn)");
    const LayerConfig& c = config(layer);
    const LayerTensors& l = this->layer(layer);
    const TensorView& t = which == Which::Q ? l.q : (which == Which::K ? l.k : l.v);
    // GQA: query heads are grouped; each group of heads/kvHeads shares one K/V head.
    const int index = which == Which::Q ? head : head / (c.heads / c.kvHeads);
    const int64_t T = tokens(), d = c.headDim;

    HeadMatrix out;
    try {
        out.m.resize(T, d);
    } catch (const std::bad_alloc&) {
        return Status(ErrorCode::OutOfMemory, path() + ": tensor " + t.name + ": cannot allocate " + std::to_string(T) +
                                                  "×" + std::to_string(d) + " floats");
    }
    if (Status st = convertGuarded(*this, *m_impl, t, int64_t(index) * T * d, T * d, out.m.data()); !st) return st;
    out.nonFinite = countNonFinite(out.m.data(), T * d);
    return out;
}

Result<MatrixRM> Trace::storedAttention(int layer, int head, int64_t q0, int64_t q1) const {
    if (Status st = checkLayerHead(*this, layer, head); !st) return st;
    const LayerTensors& l = this->layer(layer);
    if (!l.attn)
        return Status(ErrorCode::Unsupported, path() + ": layer " + std::to_string(layer) +
                                                  " has no stored attention (tensor layers." + std::to_string(layer) +
                                                  ".attn is absent)");
    const int64_t T = tokens();
    if (q0 < 0 || q1 < q0 || q1 > T)
        return Status(ErrorCode::InvalidArgument, path() + ": query rows [" + std::to_string(q0) + "," +
                                                      std::to_string(q1) + ") out of range [0," + std::to_string(T) +
                                                      ")");
    MatrixRM m;
    try {
        m.resize(q1 - q0, T);
    } catch (const std::bad_alloc&) {
        return Status(ErrorCode::OutOfMemory, path() + ": tensor " + l.attn->name + ": cannot allocate " +
                                                  std::to_string(q1 - q0) + "×" + std::to_string(T) + " floats");
    }
    if (Status st = convertGuarded(*this, *m_impl, *l.attn, (int64_t(head) * T + q0) * T, (q1 - q0) * T, m.data()); !st)
        return st;
    return m;
}

const TensorView* Trace::imageTensor() const { return m_impl->image ? &*m_impl->image : nullptr; }

Result<TraceImage> Trace::image() const {
    const TensorView* t = imageTensor();
    if (!t) return Status(ErrorCode::Unsupported, path() + ": the trace has no tensor " + kImageTensorName);
    TraceImage img;
    img.height = int(t->shape[0]);
    img.width = int(t->shape[1]);
    try {
        img.rgb.resize(t->bytes);
    } catch (const std::bad_alloc&) {
        return Status(ErrorCode::OutOfMemory,
                      path() + ": tensor " + t->name + ": cannot allocate " + std::to_string(t->bytes) + " bytes");
    }
    if (Status st = read(*t, 0, t->bytes, img.rgb.data()); !st) return st;
    return img;
}

Status Trace::checkUnchanged() const { return m_impl->file.checkUnchanged(m_impl->path); }

Status Trace::read(const TensorView& t, uint64_t offset, uint64_t bytes, void* dst) const {
    const std::byte* base = m_impl->dataSection;
    if (!t.data || t.data < base || uint64_t(t.data - base) + t.bytes > m_impl->dataSize)
        return Status(ErrorCode::InvalidArgument, path() + ": tensor " + t.name + " is not a tensor of this trace");
    if (offset > t.bytes || bytes > t.bytes - offset)
        return Status(ErrorCode::InvalidArgument, path() + ": tensor " + t.name + ": bytes [" + std::to_string(offset) +
                                                      "," + std::to_string(offset + bytes) + ") out of range (" +
                                                      std::to_string(t.bytes) + " bytes)");
    if (Status st = checkUnchanged(); !st) return st;
    if (!detail::guarded([&] { std::memcpy(dst, t.data + offset, bytes); })) return truncatedWhileReading(*this, t);
    return checkUnchanged();
}

}  // namespace attnscope
