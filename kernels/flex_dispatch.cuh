#pragma once
// The forward kernel's host-side dispatch over the built-in mods, instantiated per element type
// in flex_forward_bf16.cu / flex_forward_f16.cu so the two compile in parallel.
#include "cuda_check.h"
#include "flex_forward.cuh"
#include "launch.h"
#include "mods.cuh"

namespace attnscope::gpu {

/// Appends the launch's configuration and the kernel's register count to `log` (when given).
template <typename Kernel>
inline Status recordLaunch(Kernel kernel, const char* name, dim3 grid, dim3 block, int shared, LaunchLog* log) {
    if (!log) return {};
    cudaFuncAttributes attr{};
    ATTNSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, kernel));
    log->push_back({name, grid, block, attr.numRegs, shared + static_cast<int>(attr.sharedSizeBytes)});
    return {};
}

template <typename Elem, int D, typename Mask, typename Score>
inline Status forward(const ForwardArgs& a, Mask mask, Score score, const char* name, cudaStream_t stream,
                      LaunchLog* log) {
    auto kernel = flex::flexForwardKernel<Elem, D, Mask, Score>;
    constexpr int kShared = flex::forwardSharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    const dim3 grid(a.params.mask.numQBlocks, a.params.heads, a.params.batch);
    const dim3 block(flex::ForwardConfig::kThreads);
    kernel<<<grid, block, kShared, stream>>>(a.params, mask, score);
    ATTNSCOPE_CUDA_TRY_LAUNCH("flexForwardKernel");
    return recordLaunch(kernel, name, grid, block, kShared, log);
}

template <typename Elem, int D>
inline Status forwardDispatch(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    // With a score mod every mask runs as a program (full blocks never call it anyway).
    if (a.score.kind != flex::kScoreNone)
        return forward<Elem, D>(a, flex::ProgramMask{a.program}, flex::ProgramScore{a.score},
                                "flex_forward<program,score>", stream, log);
    switch (a.mask) {
    case MaskFunctor::Full:
        return forward<Elem, D>(a, flex::FullMask{}, flex::IdentityScore{}, "flex_forward<full>", stream, log);
    case MaskFunctor::Causal:
        return forward<Elem, D>(a, flex::CausalMask{}, flex::IdentityScore{}, "flex_forward<causal>", stream, log);
    case MaskFunctor::Program:
        return forward<Elem, D>(a, flex::ProgramMask{a.program}, flex::IdentityScore{}, "flex_forward<program>",
                                stream, log);
    }
    return {ErrorCode::Internal, "flex_launch.cu: unknown mask functor"};
}

/// Forward kernels of one element type, head dims 64 and 128.
Status forwardBf16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);
Status forwardF16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);

}  // namespace attnscope::gpu
