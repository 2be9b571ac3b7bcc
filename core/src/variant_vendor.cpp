// Vendor variants: "cudnn:V" is cuDNN's fused SDPA computing V's mask and score mod. The spec
// keeps V's kind, so masks, FLOPs, block density and the CPU reference are V's; only the
// implementation differs (VariantSpec::impl), and only a GPU backend can run it.
#include <string_view>

#include "attnscope/variants.h"

namespace attnscope {

namespace {
constexpr std::string_view kCudnnPrefix = "cudnn:";

/// The variant kinds cuDNN's SDPA graph expresses: a causal right bound, a sliding-window left
/// bound, and pointwise score mods (ALiBi / relative bias as slope·(k − q), tanh softcap).
bool cudnnExpresses(VariantKind k) {
    switch (k) {
    case VariantKind::Full:
    case VariantKind::Causal:
    case VariantKind::Sliding:
    case VariantKind::Alibi:
    case VariantKind::Softcap:
    case VariantKind::RelativeBias: return true;
    default: return false;
    }
}
}  // namespace

const char* vendorVariantTokens() {
    return "cudnn:full, cudnn:causal, cudnn:sliding:W, cudnn:alibi, cudnn:softcap:C, cudnn:relbias:B";
}

Result<VariantSpec> parseVendorVariant(const std::string& text) {
    const std::string inner = text.substr(kCudnnPrefix.size());
    auto bad = [&](const std::string& what) {
        return Status{ErrorCode::InvalidArgument, "variant \"" + text + "\": " + what};
    };
    if (inner.empty()) return bad(std::string("name the mask after \"cudnn:\" (") + vendorVariantTokens() + ")");
    if (inner.find_first_of("&|") != std::string::npos)
        return bad(std::string("cuDNN's SDPA takes one mask, not a composition (") + vendorVariantTokens() + ")");
    auto v = parseVariant(inner);
    if (!v) return bad(v.message());
    if (v->impl != VariantImpl::Builtin) return bad("one \"cudnn:\" prefix is enough");
    if (!cudnnExpresses(v->kind))
        return bad(std::string("cuDNN's SDPA graph has no \"") + variantKindName(v->kind) + "\" mask (" +
                   vendorVariantTokens() + ")");
    v->label = text;
    v->impl = VariantImpl::Cudnn;
    return v;
}

std::string variantNeedsGpu(const VariantSpec& v) {
    if (v.impl != VariantImpl::Cudnn) return {};
    return "\"" + v.label +
           "\" is cuDNN's fused SDPA, a GPU kernel: the CPU backend has no vendor kernel to run (profile on a CUDA "
           "GPU with cuDNN 9, e.g. --gpu)";
}

}  // namespace attnscope
