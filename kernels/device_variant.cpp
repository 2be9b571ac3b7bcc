// VariantSpec -> MaskProgram / ScoreProgram, device copies of per-token data, and the BlockMask.
#include "device_variant.h"

#include <cstdio>

namespace attnscope::gpu {

std::string deviceVariantKey(const VariantSpec& v, int64_t tokens) {
    std::string key = v.label + "|" + std::to_string(tokens);
    for (const VariantSpec* n = &v; n; n = n->other.get()) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "|%d:%p:%p:%zu", int(n->kind), static_cast<const void*>(n->blocks.get()),
                      static_cast<const void*>(n->documentIds.data()), n->documentIds.size());
        key += buf;
        key += std::to_string(n->window) + "," + std::to_string(n->dilation) + "," + std::to_string(n->prefix) + "," +
               std::to_string(n->documents) + "," + std::to_string(n->softcap) + "," + std::to_string(n->bias);
    }
    return key;
}

namespace {

Status termOf(const VariantSpec& v, int64_t T, flex::MaskTerm& t, std::vector<DeviceArray>& arrays) {
    switch (v.kind) {
    case VariantKind::Full: t.kind = flex::kTermFull; break;
    case VariantKind::Causal:
    case VariantKind::Alibi:
    case VariantKind::Softcap:
    case VariantKind::RelativeBias: t.kind = flex::kTermCausal; break;
    case VariantKind::Sliding:
        t.kind = flex::kTermSliding;
        t.window = static_cast<int>(std::min<int64_t>(v.window, T + 1));
        break;
    case VariantKind::PrefixLM:
        t.kind = flex::kTermPrefix;
        t.prefix = static_cast<int>(std::min<int64_t>(v.prefix, T));
        break;
    case VariantKind::DilatedSliding:
        t.kind = flex::kTermDilated;
        t.window = static_cast<int>(std::min<int64_t>(v.window * v.dilation, T + 1));
        t.dilation = static_cast<int>(std::max<int64_t>(1, v.dilation));
        break;
    case VariantKind::Document: {
        t.kind = flex::kTermDocument;
        const std::vector<int32_t> ids = variantDocumentIds(v, T);
        DeviceArray a;
        ATTNSCOPE_TRY_STATUS(a.upload(ids.data(), ids.size() * sizeof(int32_t), "document ids of " + v.label));
        t.docs = a.as<int>();
        arrays.push_back(std::move(a));
        break;
    }
    case VariantKind::BlockSparse: {
        const int64_t bs = std::max<int64_t>(1, v.blockSize);
        const int64_t nb = (T + bs - 1) / bs;
        if (!v.blocks || static_cast<int64_t>(v.blocks->size()) != nb * nb)
            return {ErrorCode::InvalidArgument, "variant \"" + v.label + "\": VariantSpec.blocks must hold " +
                                                    std::to_string(nb * nb) + " flags for T=" + std::to_string(T) +
                                                    ", got " + std::to_string(v.blocks ? v.blocks->size() : 0)};
        t.kind = flex::kTermBlockSparse;
        DeviceArray a;
        ATTNSCOPE_TRY_STATUS(a.upload(v.blocks->data(), v.blocks->size(), "block list of " + v.label));
        t.blocks = a.as<unsigned char>();
        t.blockSize = static_cast<int>(bs);
        t.blockCols = static_cast<int>(nb);
        arrays.push_back(std::move(a));
        break;
    }
    default:
        return {ErrorCode::InvalidArgument,
                std::string("variant kind ") + variantKindName(v.kind) + " has no mask_mod (not a softmax variant)"};
    }
    return {};
}

bool scoreOf(const VariantSpec& v, int heads, flex::ScoreProgram& s) {
    switch (v.kind) {
    case VariantKind::Alibi: s.kind = flex::kScoreAlibi, s.heads = heads; return true;
    case VariantKind::Softcap: s.kind = flex::kScoreSoftcap, s.softcap = v.softcap; return true;
    case VariantKind::RelativeBias: s.kind = flex::kScoreRelativeBias, s.bias = v.bias; return true;
    default: return false;
    }
}

}  // namespace

Status buildDeviceBlockMask(DeviceVariant& dv, int64_t tokens, cudaStream_t stream,
                            const std::function<Status(unsigned char* states)>& build) {
    const int nb = static_cast<int>((tokens + flex::kMaskBlock - 1) / flex::kMaskBlock);
    const size_t cells = static_cast<size_t>(nb) * nb;
    DeviceArray state, counts, lists;
    ATTNSCOPE_TRY_STATUS(state.allocate(cells, "block-mask states"));
    ATTNSCOPE_TRY_STATUS(counts.allocate(2 * nb * sizeof(int), "block-mask counts"));
    ATTNSCOPE_TRY_STATUS(lists.allocate(2 * cells * sizeof(int), "block-mask index lists"));
    dv.view.numQBlocks = nb;
    dv.view.numKvBlocks = nb;
    dv.view.kvNum = counts.as<int>();
    dv.view.fullNum = counts.as<int>() + nb;
    dv.view.kvIdx = lists.as<int>();
    dv.view.fullIdx = lists.as<int>() + cells;
    ATTNSCOPE_TRY_STATUS(build(state.as<unsigned char>()));
    std::vector<int> hostCounts(2 * nb);
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(hostCounts.data(), counts.get(), hostCounts.size() * sizeof(int),
                                       cudaMemcpyDeviceToHost, stream));
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(stream));
    for (int c : hostCounts) dv.computedBlocks += c;
    dv.arrays.push_back(std::move(state));
    dv.arrays.push_back(std::move(counts));
    dv.arrays.push_back(std::move(lists));
    return {};
}

Result<std::unique_ptr<DeviceVariant>> buildDeviceVariant(const VariantSpec& v, int64_t tokens, int heads,
                                                          cudaStream_t stream, LaunchLog* log) {
    if (v.kind == VariantKind::Custom) return buildCustomDeviceVariant(v, tokens, heads, stream, log);
    auto dv = std::make_unique<DeviceVariant>();
    flex::MaskProgram& prog = dv->program;
    prog.count = 0;
    prog.tokens = static_cast<int>(tokens);
    bool haveScore = false;
    for (const VariantSpec* n = &v; n; n = (n->combine == MaskCombine::None ? nullptr : n->other.get())) {
        if (prog.count == flex::kMaxMaskTerms)
            return Status{ErrorCode::Unsupported, "variant \"" + v.label + "\": at most " +
                                                      std::to_string(flex::kMaxMaskTerms) + " composed masks"};
        ATTNSCOPE_TRY_STATUS(termOf(*n, tokens, prog.term[prog.count], dv->arrays));
        prog.combine[prog.count] = n->combine == MaskCombine::Or ? flex::kCombineOr : flex::kCombineAnd;
        ++prog.count;
        if (!haveScore) haveScore = scoreOf(*n, heads, dv->score);
    }
    if (prog.count == 1 && prog.term[0].kind == flex::kTermFull)
        dv->functor = MaskFunctor::Full;
    else if (prog.count == 1 && prog.term[0].kind == flex::kTermCausal)
        dv->functor = MaskFunctor::Causal;
    else
        dv->functor = MaskFunctor::Program;

    ATTNSCOPE_TRY_STATUS(buildDeviceBlockMask(*dv, tokens, stream, [&](unsigned char* states) {
        return buildBlockMask(dv->functor, prog, static_cast<int>(tokens), states, dv->view, stream, log);
    }));
    return dv;
}

}  // namespace attnscope::gpu
