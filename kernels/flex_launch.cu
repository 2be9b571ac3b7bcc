// The block-mask builder for the built-in mask functors and the forward entry point. Forward
// instantiations: {bf16, fp16} × {64, 128} × {(full, identity), (causal, identity), (program,
// identity), (program, program score)} (flex_forward_*.cu); other mods compose through programs.
#include <cmath>
#include <string>

#include "flex_dispatch.cuh"
#include "flex_forward.cuh"

namespace attnscope::gpu {
namespace {

using namespace attnscope::flex;

template <typename Mask>
Status classify(Mask mask, int tokens, int nq, int nk, unsigned char* state, cudaStream_t stream, LaunchLog* log) {
    constexpr int kThreads = 256;
    const dim3 grid(nk, nq);
    classifyBlocksKernel<Mask><<<grid, kThreads, 0, stream>>>(mask, tokens, nk, state);
    ATTNSCOPE_CUDA_TRY_LAUNCH("classifyBlocksKernel");
    return recordLaunch(classifyBlocksKernel<Mask>, "flex_block_mask_classify", grid, dim3(kThreads), 0, log);
}

}  // namespace

Status buildBlockMask(MaskFunctor mask, const MaskProgram& program, int tokens, unsigned char* state,
                      const BlockMaskView& view, cudaStream_t stream, LaunchLog* log) {
    const int nq = view.numQBlocks, nk = view.numKvBlocks;
    if (nq <= 0 || nk <= 0) return {ErrorCode::InvalidArgument, "buildBlockMask: tokens must be > 0"};
    switch (mask) {
    case MaskFunctor::Full: ATTNSCOPE_TRY_STATUS(classify(FullMask{}, tokens, nq, nk, state, stream, log)); break;
    case MaskFunctor::Causal: ATTNSCOPE_TRY_STATUS(classify(CausalMask{}, tokens, nq, nk, state, stream, log)); break;
    case MaskFunctor::Program:
        ATTNSCOPE_TRY_STATUS(classify(ProgramMask{program}, tokens, nq, nk, state, stream, log));
        break;
    }
    constexpr int kThreads = 128;
    const dim3 grid((nq + kThreads - 1) / kThreads);
    packBlocksKernel<<<grid, kThreads, 0, stream>>>(state, nq, nk, const_cast<int*>(view.kvNum),
                                                    const_cast<int*>(view.kvIdx), const_cast<int*>(view.fullNum),
                                                    const_cast<int*>(view.fullIdx));
    ATTNSCOPE_CUDA_TRY_LAUNCH("packBlocksKernel");
    return recordLaunch(packBlocksKernel<0>, "flex_block_mask_pack", grid, dim3(kThreads), 0, log);
}

Status launchForward(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    if (a.params.heads % a.params.kvHeads != 0)
        return {ErrorCode::InvalidArgument, "flex forward: heads must be a multiple of kvHeads"};
    if (!(a.params.scale > 0.0f) || !std::isfinite(a.params.scale))
        return {ErrorCode::InvalidArgument,
                "flex forward: softmax scale " + std::to_string(a.params.scale) + " (expected a finite value > 0)"};
    if (a.headDim != 64 && a.headDim != 128)
        return {ErrorCode::Unsupported,
                "flex forward: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
    if (a.path == ForwardPath::Wgmma)
        return a.elem == ElemType::BF16 ? forwardSm90Bf16(a, stream, log) : forwardSm90F16(a, stream, log);
    return a.elem == ElemType::BF16 ? forwardBf16(a, stream, log) : forwardF16(a, stream, log);
}

}  // namespace attnscope::gpu
