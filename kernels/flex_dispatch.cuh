#pragma once
// The forward kernels' host-side dispatch over the built-in mods, instantiated per element type
// and kernel family: flex_forward_{bf16,f16}.cu (mma.sync, sm_80+ and PTX) and
// flex_forward_sm90_{bf16,f16}.cu (wgmma, sm_90a only), so they compile in parallel.
#include <string>

#include "cuda_check.h"
#include "launch.h"
#include "mods.cuh"

namespace attnscope::gpu {

/// Appends the launch's configuration and the kernel's register count to `log` (when given).
template <typename Kernel>
inline Status recordLaunch(Kernel kernel, const std::string& name, dim3 grid, dim3 block, int shared, LaunchLog* log) {
    if (!log) return {};
    cudaFuncAttributes attr{};
    ATTNSCOPE_CUDA_TRY(cudaFuncGetAttributes(&attr, kernel));
    log->push_back({name, grid, block, attr.numRegs, shared + static_cast<int>(attr.sharedSizeBytes)});
    return {};
}

/// Launches Family's kernel for one (mask, score) pair. A Family names its kernel template, block
/// size and shared memory (MmaSyncFamily in flex_forward_{bf16,f16}.cu, HopperFamily in
/// flex_forward_sm90_{bf16,f16}.cu).
template <typename Family, typename Elem, int D, typename Mask, typename Score>
inline Status forward(const ForwardArgs& a, Mask mask, Score score, const char* mods, cudaStream_t stream,
                      LaunchLog* log) {
    auto kernel = Family::template kernel<Elem, D, Mask, Score>();
    constexpr int kShared = Family::template sharedBytes<D>();
    ATTNSCOPE_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
    const dim3 grid(a.params.mask.numQBlocks, a.params.heads, a.params.batch);
    const dim3 block(Family::kThreads);
    kernel<<<grid, block, kShared, stream>>>(a.params, mask, score);
    if (Status launched = cudaStatus(cudaGetLastError(), Family::kName, __FILE__, __LINE__); !launched) return launched;
    return recordLaunch(kernel, std::string(Family::kName) + "<" + mods + ">", grid, block, kShared, log);
}

template <typename Family, typename Elem, int D>
inline Status forwardDispatch(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    // With a score mod every mask runs as a program (full blocks never call it anyway).
    if (a.score.kind != flex::kScoreNone)
        return forward<Family, Elem, D>(a, flex::ProgramMask{a.program}, flex::ProgramScore{a.score}, "program,score",
                                        stream, log);
    switch (a.mask) {
    case MaskFunctor::Full:
        return forward<Family, Elem, D>(a, flex::FullMask{}, flex::IdentityScore{}, "full", stream, log);
    case MaskFunctor::Causal:
        return forward<Family, Elem, D>(a, flex::CausalMask{}, flex::IdentityScore{}, "causal", stream, log);
    case MaskFunctor::Program:
        return forward<Family, Elem, D>(a, flex::ProgramMask{a.program}, flex::IdentityScore{}, "program", stream, log);
    }
    return {ErrorCode::Internal, "flex_dispatch.cuh: unknown mask functor"};
}

template <typename Family, typename Elem>
inline Status forwardHeadDims(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log) {
    return a.headDim == 64 ? forwardDispatch<Family, Elem, 64>(a, stream, log)
                           : forwardDispatch<Family, Elem, 128>(a, stream, log);
}

/// Forward kernels of one element type and family, head dims 64 and 128.
Status forwardBf16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);
Status forwardF16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);
Status forwardSm90Bf16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);
Status forwardSm90F16(const ForwardArgs& a, cudaStream_t stream, LaunchLog* log);

}  // namespace attnscope::gpu
