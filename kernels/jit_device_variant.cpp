// A Custom VariantSpec on the device: its doc / pos arrays, the NVRTC program and the BlockMask
// classified on the GPU from the program's mask (jit_variant.h).
#include <vector>

#include "attnscope/variant_expr.h"
#include "device_variant.h"

namespace attnscope::gpu {

Result<std::unique_ptr<DeviceVariant>> buildCustomDeviceVariant(const VariantSpec& v, int64_t tokens, int heads,
                                                                cudaStream_t stream, LaunchLog* log) {
    if (!v.expr)
        return Status{ErrorCode::InvalidArgument, "variant \"" + v.label + "\": no program (VariantSpec.expr)"};
    auto program = jitProgram(*v.expr);
    if (!program) return program.status();
    auto dv = std::make_unique<DeviceVariant>();
    dv->jit = *program;
    dv->functor = MaskFunctor::Program;
    dv->jitArrays.tokens = static_cast<int>(tokens);
    dv->jitArrays.heads = heads;
    if ((v.expr->maskDeps() | v.expr->scoreDeps()) & kDepArrays) {
        const ExprTokens arrays = exprTokensFromDocuments(variantDocumentIds(v, tokens));
        DeviceArray doc, pos;
        ATTNSCOPE_TRY_STATUS(doc.upload(arrays.doc.data(), arrays.doc.size() * sizeof(int32_t), "doc[] of " + v.label));
        ATTNSCOPE_TRY_STATUS(pos.upload(arrays.pos.data(), arrays.pos.size() * sizeof(int32_t), "pos[] of " + v.label));
        dv->jitArrays.doc = doc.as<int>();
        dv->jitArrays.pos = pos.as<int>();
        dv->arrays.push_back(std::move(doc));
        dv->arrays.push_back(std::move(pos));
    }
    // BlockMask storage as for the built-in variants: states, two counts and two lists per row.
    const int nb = static_cast<int>((tokens + flex::kMaskBlock - 1) / flex::kMaskBlock);
    const size_t cells = static_cast<size_t>(nb) * nb;
    DeviceArray state, counts, lists;
    ATTNSCOPE_TRY_STATUS(state.allocate(cells, "block-mask states"));
    ATTNSCOPE_TRY_STATUS(counts.allocate(2 * nb * sizeof(int), "block-mask counts"));
    ATTNSCOPE_TRY_STATUS(lists.allocate(2 * cells * sizeof(int), "block-mask index lists"));
    dv->view.numQBlocks = nb;
    dv->view.numKvBlocks = nb;
    dv->view.kvNum = counts.as<int>();
    dv->view.fullNum = counts.as<int>() + nb;
    dv->view.kvIdx = lists.as<int>();
    dv->view.fullIdx = lists.as<int>() + cells;
    ATTNSCOPE_TRY_STATUS(jitBuildBlockMask(*dv->jit, dv->jitArrays, state.as<unsigned char>(), dv->view, stream, log));
    std::vector<int> hostCounts(2 * nb);
    ATTNSCOPE_CUDA_TRY(cudaMemcpyAsync(hostCounts.data(), counts.get(), hostCounts.size() * sizeof(int),
                                       cudaMemcpyDeviceToHost, stream));
    ATTNSCOPE_CUDA_TRY(cudaStreamSynchronize(stream));
    for (int c : hostCounts) dv->computedBlocks += c;
    dv->arrays.push_back(std::move(state));
    dv->arrays.push_back(std::move(counts));
    dv->arrays.push_back(std::move(lists));
    return dv;
}

}  // namespace attnscope::gpu
