// Cross-tensor validation of an open trace: offsets, layer completeness, shapes against the
// metadata, T agreement, token count; and the optional NaN/Inf scan.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>

#include "mapped_guard.h"
#include "trace_impl.h"

namespace attnscope {

namespace {

enum Slot { SlotQ, SlotK, SlotV, SlotAttn, SlotOut, SlotSinks, SlotCount };
constexpr std::array<const char*, SlotCount> kSlotNames = {"q", "k", "v", "attn", "out", "sinks"};

/// "layers.{i}.{slot}" -> (i, slot); false for any other name.
bool parseLayerName(const std::string& name, int& layer, int& slot) {
    constexpr std::string_view kPrefix = "layers.";
    constexpr size_t kMaxIndexDigits = 9;  // keeps the index in int range
    if (name.rfind(kPrefix, 0) != 0) return false;
    const size_t dot = name.find('.', kPrefix.size());
    if (dot == std::string::npos) return false;
    const std::string index = name.substr(kPrefix.size(), dot - kPrefix.size());
    if (index.empty() || index.size() > kMaxIndexDigits || (index.size() > 1 && index[0] == '0')) return false;
    if (!std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; })) return false;
    layer = std::stoi(index);
    const std::string part = name.substr(dot + 1);
    for (int s = 0; s < SlotCount; ++s)
        if (part == kSlotNames[size_t(s)]) {
            slot = s;
            return true;
        }
    return false;
}

Status checkOverlaps(const std::vector<TensorView>& tensors, Trace::Impl& impl) {
    std::vector<const TensorView*> order;
    for (const auto& t : tensors)
        if (t.bytes > 0) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
    uint64_t covered = 0;
    for (size_t i = 0; i < order.size(); ++i) {
        covered += order[i]->bytes;
        if (i == 0) continue;
        const TensorView& a = *order[i - 1];
        const TensorView& b = *order[i];
        if (b.offset < a.offset + a.bytes)
            return Status(ErrorCode::Format, impl.path + ": tensor " + b.name + ": data_offsets [" +
                                                 std::to_string(b.offset) + "," + std::to_string(b.offset + b.bytes) +
                                                 "] overlap tensor " + a.name + " [" + std::to_string(a.offset) + "," +
                                                 std::to_string(a.offset + a.bytes) +
                                                 "] (tensors must not share bytes)");
    }
    if (covered < impl.dataSize)
        impl.warnings.push_back(std::to_string(impl.dataSize - covered) +
                                " bytes of the data section belong to no tensor");
    return Status::success();
}

/// Expected [dim0, T, dim2] description for messages.
std::string expectedShape(int slot, const LayerConfig& c) {
    switch (slot) {
    case SlotK:
    case SlotV: return "[kv_heads=" + std::to_string(c.kvHeads) + ", T, head_dim=" + std::to_string(c.headDim) + "]";
    case SlotAttn: return "[heads=" + std::to_string(c.heads) + ", T, T]";
    case SlotSinks: return "[heads=" + std::to_string(c.heads) + "]";
    default: return "[heads=" + std::to_string(c.heads) + ", T, head_dim=" + std::to_string(c.headDim) + "]";
    }
}

class LayerAssembler {
public:
    explicit LayerAssembler(Trace::Impl& impl) : m_impl(impl) {}

    Status run(std::vector<TensorView> tensors) {
        if (Status st = checkOverlaps(tensors, m_impl); !st) return st;
        const size_t numLayers = m_impl.meta.layers.size();
        m_slots.assign(numLayers, {});
        for (auto& t : tensors)
            if (Status st = place(std::move(t)); !st) return st;
        const auto& first = m_slots[0];
        m_impl.hasQK = first[SlotQ] || first[SlotK] || first[SlotV];
        for (size_t i = 0; i < numLayers; ++i)
            if (Status st = checkLayer(int(i)); !st) return st;
        return checkTokens();
    }

private:
    Status error(ErrorCode code, const std::string& what) const { return Status(code, m_impl.path + ": " + what); }

    /// The input image of a vision trace: U8 [height, width, 3], 1..kMaxImageSide each side; only
    /// in vision traces (the byte count was checked with the entry).
    Status placeImage(TensorView t) {
        const std::string what = "tensor " + t.name + " (the input image): ";
        if (m_impl.meta.kind != TraceKind::Vision)
            return error(ErrorCode::Format, what + "only allowed when __metadata__.kind is 'vision' (it is '" +
                                                traceKindName(m_impl.meta.kind) + "')");
        if (t.dtype != DType::U8)
            return error(ErrorCode::Format, what + "dtype '" + dtypeName(t.dtype) + "' (expected U8: RGB bytes)");
        const auto& s = t.shape;
        const auto side = [](int64_t n) { return n >= 1 && n <= kMaxImageSide; };
        if (s.size() != 3 || s[2] != 3 || !side(s[0]) || !side(s[1]))
            return error(ErrorCode::Shape, what + "shape " + shapeString(s) +
                                               " (expected [height, width, 3] with 1 ≤ " + "height, width ≤ " +
                                               std::to_string(kMaxImageSide) + ")");
        if (m_impl.image) return error(ErrorCode::Format, "tensor " + t.name + " appears more than once in the header");
        m_impl.image = std::move(t);
        return Status::success();
    }

    Status place(TensorView t) {
        if (t.name == kImageTensorName) return placeImage(std::move(t));
        if (t.dtype == DType::U8)
            return error(ErrorCode::Format, "tensor " + t.name + ": dtype 'U8' is only allowed for tensor " +
                                                kImageTensorName + " (expected F32, F16 or BF16)");
        int layer = 0, slot = 0;
        if (!parseLayerName(t.name, layer, slot)) {
            m_impl.warnings.push_back("tensor " + t.name + " is not part of trace format v" +
                                      std::to_string(m_impl.meta.version) + " (ignored)");
            return Status::success();
        }
        const size_t numLayers = m_slots.size();
        if (size_t(layer) >= numLayers)
            return error(ErrorCode::Shape, "tensor " + t.name + " belongs to layer " + std::to_string(layer) +
                                               ", but __metadata__.layers lists " + std::to_string(numLayers) +
                                               " layers (expected layers 0.." + std::to_string(numLayers - 1) + ")");
        auto& s = m_slots[size_t(layer)][size_t(slot)];
        if (s) return error(ErrorCode::Format, "tensor " + t.name + " appears more than once in the header");
        s = std::move(t);
        return Status::success();
    }

    /// layers.N.sinks (format v2): [heads] finite logits, read into LayerConfig::sinks.
    Status readSinks(int layer, const TensorView& t) {
        LayerConfig& c = m_impl.meta.layers[size_t(layer)];
        if (m_impl.meta.version < traceformat::kSinksVersion)
            return error(ErrorCode::Format, "tensor " + t.name + " (learned sinks) needs trace format version " +
                                                std::to_string(traceformat::kSinksVersion) +
                                                ", but __metadata__.version is " + std::to_string(m_impl.meta.version));
        if (t.shape.size() != 1 || t.shape[0] != c.heads)
            return error(ErrorCode::Shape, "tensor " + t.name + ": shape " + shapeString(t.shape) +
                                               " does not match __metadata__.layers[" + std::to_string(layer) +
                                               "] (expected " + expectedShape(SlotSinks, c) + ")");
        std::vector<float> values(size_t(c.heads));
        if (!detail::guarded([&] { t.toFloat(0, int64_t(values.size()), values.data()); }))
            return error(ErrorCode::IoError, "tensor " + t.name + ": the file was truncated while it was read");
        for (size_t h = 0; h < values.size(); ++h)
            if (!std::isfinite(values[h]))
                return error(ErrorCode::Format, "tensor " + t.name + ": head " + std::to_string(h) +
                                                    "'s sink logit is " + (std::isnan(values[h]) ? "NaN" : "infinite") +
                                                    " (expected a finite number)");
        c.sinks = std::move(values);
        return Status::success();
    }

    Status checkShape(int layer, int slot, const TensorView& t) {
        if (slot == SlotSinks) return readSinks(layer, t);
        const LayerConfig& c = m_impl.meta.layers[size_t(layer)];
        const bool kv = slot == SlotK || slot == SlotV;
        const int64_t dim0 = kv ? c.kvHeads : c.heads;
        const auto& s = t.shape;
        const bool ok = s.size() == 3 && s[0] == dim0 && (slot == SlotAttn ? s[2] == s[1] : s[2] == c.headDim);
        if (!ok)
            return error(ErrorCode::Shape, "tensor " + t.name + ": shape " + shapeString(s) +
                                               " does not match __metadata__.layers[" + std::to_string(layer) +
                                               "] (expected " + expectedShape(slot, c) + ")");
        const int64_t T = s[1];
        if (T == 0)
            return error(ErrorCode::Shape, "tensor " + t.name + " has T = 0 (a trace needs at least one token)");
        if (m_tName.empty()) {
            m_tName = t.name;
            m_impl.tokens = T;
        } else if (T != m_impl.tokens) {
            return error(ErrorCode::Shape, "tensor " + t.name + " has T = " + std::to_string(T) + " but " + m_tName +
                                               " has T = " + std::to_string(m_impl.tokens) +
                                               " (T must be equal across all tensors)");
        }
        return Status::success();
    }

    Status checkLayer(int layer) {
        auto& slots = m_slots[size_t(layer)];
        const std::string prefix = "layers." + std::to_string(layer) + ".";
        const bool anyQKV = slots[SlotQ] || slots[SlotK] || slots[SlotV];
        if (!anyQKV && !slots[SlotAttn] && !slots[SlotOut])
            return error(ErrorCode::Shape, "layer " + std::to_string(layer) + " has no tensors (expected " + prefix +
                                               "q/k/v or " + prefix + "attn; __metadata__.layers lists " +
                                               std::to_string(m_slots.size()) + " layers)");
        if (m_impl.hasQK) {
            for (int s : {SlotQ, SlotK, SlotV})
                if (!slots[size_t(s)])
                    return error(ErrorCode::Shape, "tensor " + prefix + kSlotNames[size_t(s)] +
                                                       " is missing (expected " +
                                                       expectedShape(s, m_impl.meta.layers[size_t(layer)]) + ")");
        } else if (anyQKV) {
            return error(ErrorCode::Shape, "layer " + std::to_string(layer) +
                                               " has q/k/v but layer 0 has none: a trace has q/k/v in every layer "
                                               "or in none (weights-only)");
        } else if (!slots[SlotAttn]) {
            return error(ErrorCode::Shape, "tensor " + prefix +
                                               "attn is missing (a weights-only trace needs it in "
                                               "every layer)");
        }
        for (int s = 0; s < SlotCount; ++s)
            if (slots[size_t(s)])
                if (Status st = checkShape(layer, s, *slots[size_t(s)]); !st) return st;

        LayerTensors lt;
        if (slots[SlotQ]) lt.q = *slots[SlotQ];
        if (slots[SlotK]) lt.k = *slots[SlotK];
        if (slots[SlotV]) lt.v = *slots[SlotV];
        lt.attn = slots[SlotAttn];
        lt.out = slots[SlotOut];
        lt.sinks = slots[SlotSinks];
        m_impl.layers.push_back(std::move(lt));
        return Status::success();
    }

    Status checkCount(const char* field, size_t count) const {
        if (int64_t(count) == m_impl.tokens) return Status::success();
        return error(ErrorCode::Shape, std::string("__metadata__.") + field + " has " + std::to_string(count) +
                                           " entries but the tensors have T = " + std::to_string(m_impl.tokens) +
                                           " (expected one per token)");
    }

    Status checkTokens() const {
        if (Status st = checkCount("tokens", m_impl.meta.tokens.size()); !st) return st;
        if (!m_impl.meta.tokenIds.empty())
            if (Status st = checkCount("token_ids", m_impl.meta.tokenIds.size()); !st) return st;
        if (!m_impl.meta.documents.empty())
            if (Status st = checkCount("documents", m_impl.meta.documents.size()); !st) return st;
        const auto& m = m_impl.meta;
        if (m.patchRows > 0 && int64_t(m.patchRows) * m.patchCols > m_impl.tokens)
            return error(ErrorCode::Shape, "__metadata__.patch_grid [" + std::to_string(m.patchRows) + "," +
                                               std::to_string(m.patchCols) +
                                               "] has more patches than T = " + std::to_string(m_impl.tokens));
        return Status::success();
    }

    Trace::Impl& m_impl;
    std::vector<std::array<std::optional<TensorView>, SlotCount>> m_slots;
    std::string m_tName;  ///< the tensor that fixed T, for messages
};

struct Counts {
    int64_t nan = 0, inf = 0;
};

/// Counts NaN/Inf in `count` elements: exponent all ones, mantissa non-zero (NaN) or zero (Inf).
template <typename Bits>
Counts countSpecials(const std::byte* p, int64_t count, Bits expMask) {
    Counts c;
    for (int64_t i = 0; i < count; ++i) {
        Bits b;
        std::memcpy(&b, p + i * int64_t(sizeof(Bits)), sizeof b);
        const Bits magnitude = Bits(b & Bits(~(Bits(1) << (8 * sizeof(Bits) - 1))));
        c.nan += magnitude > expMask;
        c.inf += magnitude == expMask;
    }
    return c;
}

Counts countChunk(const TensorView& t, int64_t first, int64_t count) {
    const std::byte* p = t.data + first * int64_t(dtypeSize(t.dtype));
    switch (t.dtype) {
    case DType::F32: return countSpecials<uint32_t>(p, count, 0x7F800000u);
    case DType::F16: return countSpecials<uint16_t>(p, count, 0x7C00);
    case DType::BF16: return countSpecials<uint16_t>(p, count, 0x7F80);
    case DType::U8: return {};  // bytes have no NaN
    }
    return {};
}

}  // namespace

Status assembleLayers(std::vector<TensorView> tensors, Trace::Impl& impl) {
    return LayerAssembler(impl).run(std::move(tensors));
}

Status scanNonFinite(Trace::Impl& impl, const ProgressFn& progress) {
    constexpr int64_t kChunk = 1 << 22;  // elements between progress reports
    std::vector<const TensorView*> all;
    uint64_t totalBytes = 0, doneBytes = 0;
    for (const auto& l : impl.layers)
        for (const TensorView* t : {&l.q, &l.k, &l.v, l.attn ? &*l.attn : nullptr, l.out ? &*l.out : nullptr})
            if (t && t->data) {
                all.push_back(t);
                totalBytes += t->bytes;
            }
    for (const TensorView* t : all) {
        Counts total;
        const int64_t n = t->numel();
        for (int64_t first = 0; first < n; first += kChunk) {
            const int64_t count = std::min(kChunk, n - first);
            Counts c;
            if (!detail::guarded([&] { c = countChunk(*t, first, count); }))
                return Status(ErrorCode::IoError, impl.path + ": tensor " + t->name +
                                                      ": the file was truncated while its values were scanned");
            total.nan += c.nan;
            total.inf += c.inf;
            doneBytes += uint64_t(count) * dtypeSize(t->dtype);
            if (progress && !progress(totalBytes ? double(doneBytes) / double(totalBytes) : 1.0, "scanning values"))
                return Status(ErrorCode::Cancelled, impl.path + ": value scan cancelled");
        }
        if (total.nan || total.inf) {
            impl.nonFinite.push_back({t->name, total.nan, total.inf});
            impl.warnings.push_back("tensor " + t->name + " has " + std::to_string(total.nan) + " NaN and " +
                                    std::to_string(total.inf) + " Inf values");
        }
    }
    if (progress) progress(1.0, "scanning values");
    return Status::success();
}

}  // namespace attnscope
