// A Custom VariantSpec on the device: its doc / pos arrays, the NVRTC program and the BlockMask
// classified on the GPU from the program's mask (jit_variant.h).
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
    ATTNSCOPE_TRY_STATUS(buildDeviceBlockMask(*dv, tokens, stream, [&](unsigned char* states) {
        return jitBuildBlockMask(*dv->jit, dv->jitArrays, states, dv->view, stream, log);
    }));
    return dv;
}

}  // namespace attnscope::gpu
