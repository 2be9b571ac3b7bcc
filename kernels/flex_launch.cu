// Instantiations of the forward kernel and the block-mask builder for the built-in mods:
// {bf16, fp16} × {64, 128} × {(full, identity), (causal, identity), (program, identity),
// (program, program score)}. Anything else composes through the run-time programs.
#include "cuda_check.h"
#include "flex_forward.cuh"
#include "launch.h"
#include "mods.cuh"

namespace attnscope::gpu {
namespace {

using namespace attnscope::flex;

template <typename Kernel>
Status recordLaunch(Kernel kernel, const char* name, dim3 grid, dim3 block, int shared, LaunchLog* log) {
    if (!log) return {};
    cudaFuncAttributes attr{};
    ATTNSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, kernel));
    log->push_back({name, grid, block, attr.numRegs, shared + static_cast<int>(attr.sharedSizeBytes)});
    return {};
}

template <typename Elem, int D, typename Mask, typename Score>
Status forward(const ForwardArgs& a, Mask mask, Score score, const char* name, cudaStream_t stream, LaunchLog* log) {
    auto kernel = flexForwardKernel<Elem, D, Mask, Score>;
    constexpr int kShared = forwardSharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    const dim3 grid(a.params.mask.numQBlocks, a.params.heads, a.params.batch);
    const dim3 block(ForwardConfig::kThreads);
    kernel<<<grid, block, kShared, stream>>>(a.params, mask, score);
    ATTNSCOPE_CUDA_TRY_LAUNCH("flexForwardKernel");
    return recordLaunch(kernel, name, grid, block, kShared, log);
}

template <typename Elem, int D>
Status forwardDispatch(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    const bool hasScore = a.score.kind != kScoreNone;
    if (hasScore) {
        if (a.mask == MaskFunctor::Full || a.mask == MaskFunctor::Causal) {
            // Compiled-in masks with a score mod run the program mask (full blocks skip it).
            ProgramMask m{a.program};
            return forward<Elem, D>(a, m, ProgramScore{a.score}, "flex_forward<program,score>", stream, log);
        }
        return forward<Elem, D>(a, ProgramMask{a.program}, ProgramScore{a.score}, "flex_forward<program,score>",
                                stream, log);
    }
    switch (a.mask) {
    case MaskFunctor::Full: return forward<Elem, D>(a, FullMask{}, IdentityScore{}, "flex_forward<full>", stream, log);
    case MaskFunctor::Causal:
        return forward<Elem, D>(a, CausalMask{}, IdentityScore{}, "flex_forward<causal>", stream, log);
    case MaskFunctor::Program:
        return forward<Elem, D>(a, ProgramMask{a.program}, IdentityScore{}, "flex_forward<program>", stream, log);
    }
    return {ErrorCode::Internal, "flex_launch.cu: unknown mask functor"};
}

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
    const bool bf16 = a.elem == ElemType::BF16;
    if (a.headDim == 64) return bf16 ? forwardDispatch<__nv_bfloat16, 64>(a, stream, log)
                                     : forwardDispatch<__half, 64>(a, stream, log);
    if (a.headDim == 128) return bf16 ? forwardDispatch<__nv_bfloat16, 128>(a, stream, log)
                                      : forwardDispatch<__half, 128>(a, stream, log);
    return {ErrorCode::Unsupported, "flex forward: head dim " + std::to_string(a.headDim) + " (expected 64 or 128)"};
}

}  // namespace attnscope::gpu
