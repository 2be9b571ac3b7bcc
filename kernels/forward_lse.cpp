// The analysis's pass 1 on the attention forward kernel (see forward_lse.h).
#include "forward_lse.h"

#include <cstdlib>
#include <cstring>

#include "device_variant.h"

namespace attnscope::gpu {

LsePath lsePathFromEnvironment() {
    const char* lse = std::getenv("ATTNSCOPE_ANALYSIS_LSE");
    if (lse && std::strcmp(lse, "fragments") == 0) return LsePath::Fragments;
    if (lse && std::strcmp(lse, "wmma") == 0) return LsePath::Wmma;
    return LsePath::Forward;
}

ForwardLse::ForwardLse(ForwardPath path) : m_path(path) {}
ForwardLse::~ForwardLse() = default;

bool ForwardLse::takes(const AttentionSpec& spec, int dim) {
    const MaskSpec& m = spec.mask;
    const bool plainMask = m.prefix == 0 && m.dilation <= 1 && m.documents.empty() && m.excludedKeys.empty() &&
                           !m.blocks && (m.window == 0 || m.causal);
    const bool noScoreMod = spec.softcap == 0 && spec.alibiSlope == 0 && spec.relativeBias == 0;
    // A learned sink is folded in by the pass kernels' lse (the forward kernel writes L alone).
    return plainMask && noScoreMod && !spec.hasSink() && (dim == 64 || dim == 128) && spec.scale > 0;
}

Status ForwardLse::run(const void* q, const void* k, const void* v, ElemType elem, int heads, int kvHeads, int tokens,
                       int dim, const AttentionSpec& spec, float* lse, cudaStream_t stream) {
    if (!takes(spec, dim)) return {ErrorCode::Unsupported, "forward lse: this mask or score is not compiled in"};
    VariantSpec variant;
    if (spec.mask.window > 0) {
        variant.kind = VariantKind::Sliding;  // 0 <= q - k < window, as MaskSpec with causal
        variant.window = spec.mask.window;
        variant.label = "sliding:" + std::to_string(variant.window);
    } else {
        variant.kind = spec.mask.causal ? VariantKind::Causal : VariantKind::Full;
        variant.label = spec.mask.causal ? "causal" : "full";
    }
    const std::string key = deviceVariantKey(variant, tokens);
    auto it = m_variants.find(key);
    if (it == m_variants.end()) {
        auto built = buildDeviceVariant(variant, tokens, heads, stream, nullptr);
        if (!built) return built.status();
        it = m_variants.emplace(key, std::move(*built)).first;
    }
    const DeviceVariant& dv = *it->second;
    ATTNSCOPE_TRY_STATUS(
        m_out.allocate(size_t(heads) * size_t(tokens) * size_t(dim) * 2, "forward output (discarded)"));
    ForwardArgs a;
    a.params.q = q, a.params.k = k, a.params.v = v;
    a.params.o = m_out.get(), a.params.lse = lse;
    a.params.batch = 1, a.params.heads = heads, a.params.kvHeads = kvHeads, a.params.tokens = tokens;
    a.params.scale = spec.scale;
    a.params.mask = dv.view;
    a.mask = dv.functor;
    a.program = dv.program;
    a.score = dv.score;
    a.headDim = dim;
    a.elem = elem;
    a.path = m_path;
    return launchForward(a, stream, nullptr);
}

}  // namespace attnscope::gpu
