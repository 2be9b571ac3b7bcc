#pragma once
// Helpers for tests that build traces: small metadata, random Q/K/V, and raw header surgery for
// malformed files.
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attnscope/json.h"
#include "attnscope/trace.h"

namespace testfixture {

using namespace attnscope;

/// Metadata for `layers` identical layers of a causal LM with T tokens "t0", "t1", ….
inline TraceMetadata smallMetadata(int layers, int heads, int kvHeads, int headDim, int64_t T) {
    TraceMetadata m;
    m.model = "test-model";
    m.source = "tst 1.0";
    m.kind = TraceKind::CausalLM;
    m.text = "test text";
    for (int64_t i = 0; i < T; ++i) {
        m.tokens.push_back("t" + std::to_string(i));
        m.tokenIds.push_back(i);
    }
    LayerConfig c;
    c.heads = heads;
    c.kvHeads = kvHeads;
    c.headDim = headDim;
    c.scale = 1.0 / std::sqrt(double(headDim));
    m.layers.assign(size_t(layers), c);
    return m;
}

/// `count` floats from N(0, 1) with a fixed seed.
inline std::vector<float> randomValues(size_t count, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> v(count);
    for (float& x : v) x = dist(rng);
    return v;
}

/// A writer holding random q/k/v for every layer of `m`, stored as `dtype`.
inline TraceWriter randomTrace(const TraceMetadata& m, DType dtype, uint32_t seed = 1) {
    TraceWriter w(m);
    const int64_t T = int64_t(m.tokens.size());
    for (size_t i = 0; i < m.layers.size(); ++i) {
        const LayerConfig& c = m.layers[i];
        const std::string p = "layers." + std::to_string(i) + ".";
        w.addTensor(p + "q", dtype, {c.heads, T, c.headDim}, randomValues(size_t(c.heads * T * c.headDim), seed++));
        w.addTensor(p + "k", dtype, {c.kvHeads, T, c.headDim}, randomValues(size_t(c.kvHeads * T * c.headDim), seed++));
        w.addTensor(p + "v", dtype, {c.kvHeads, T, c.headDim}, randomValues(size_t(c.kvHeads * T * c.headDim), seed++));
    }
    return w;
}

/// A file image split into its header JSON and data section.
struct FileImage {
    Json header;
    std::vector<std::byte> data;
};

inline FileImage splitImage(const std::vector<std::byte>& bytes) {
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(std::to_integer<uint8_t>(bytes[size_t(i)])) << (8 * i);
    const std::string text(reinterpret_cast<const char*>(bytes.data()) + 8, size_t(n));
    FileImage img;
    img.header = *Json::parse(text);
    img.data.assign(bytes.begin() + 8 + std::ptrdiff_t(n), bytes.end());
    return img;
}

/// Header length + `headerText` + data, exactly as given (no padding).
inline std::vector<std::byte> joinImage(const std::string& headerText, const std::vector<std::byte>& data) {
    std::vector<std::byte> out(8 + headerText.size());
    const uint64_t n = headerText.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = std::byte((n >> (8 * i)) & 0xFF);
    std::memcpy(out.data() + 8, headerText.data(), headerText.size());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

/// Re-encodes `bytes` after letting `edit` change the parsed header (and the data, if it wants).
inline std::vector<std::byte> editImage(const std::vector<std::byte>& bytes,
                                        const std::function<void(Json& header, std::vector<std::byte>& data)>& edit) {
    FileImage img = splitImage(bytes);
    edit(img.header, img.data);
    return joinImage(img.header.dump(), img.data);
}

/// Header member `name` (a tensor entry or __metadata__), for in-place edits.
inline Json& member(Json& header, const std::string& name) {
    for (auto& [k, v] : header.asObject())
        if (k == name) return v;
    return header.set(name, Json());
}

}  // namespace testfixture
