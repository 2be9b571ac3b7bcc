#pragma once
// A VariantSpec on the device: its mask program, score program and BlockMask, built once per
// (variant, T) and cached by the buffers that use it.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attnscope/variants.h"
#include "device_memory.h"
#include "jit_variant.h"
#include "launch.h"

namespace attnscope::gpu {

struct DeviceVariant {
    MaskFunctor functor = MaskFunctor::Full;
    flex::MaskProgram program;
    flex::ScoreProgram score;
    flex::BlockMaskView view;
    std::vector<DeviceArray> arrays;  ///< documents, block flags, block-mask lists (owned)
    long long computedBlocks = 0;     ///< partial + full blocks (filled by countBlocks)
    /// Custom: the NVRTC-compiled program (jit_variant.h) and its functors' arrays; the forward
    /// launch goes to jitLaunchForward instead of launchForward.
    std::shared_ptr<JitProgram> jit;
    JitArrays jitArrays;
};

/// Cache key of a variant at T (label plus the identity of its block list / document ids).
std::string deviceVariantKey(const VariantSpec& v, int64_t tokens);

/// Translates a softmax variant to device programs and builds its BlockMask on `stream`.
Result<std::unique_ptr<DeviceVariant>> buildDeviceVariant(const VariantSpec& v, int64_t tokens, int heads,
                                                          cudaStream_t stream, LaunchLog* log);

/// Gives `dv` its BlockMask for T tokens: allocates the storage (state bytes, two counts and two
/// index lists per query block) into dv.view, lets `build` classify the blocks into it (the state
/// bytes are its argument), counts the computed blocks for the FLOP accounting (once per variant,
/// off the timed path) and keeps the storage in dv.arrays. Built-in and Custom variants share it.
Status buildDeviceBlockMask(DeviceVariant& dv, int64_t tokens, cudaStream_t stream,
                            const std::function<Status(unsigned char* states)>& build);

/// The Custom part of buildDeviceVariant (jit_device_variant.cpp).
Result<std::unique_ptr<DeviceVariant>> buildCustomDeviceVariant(const VariantSpec& v, int64_t tokens, int heads,
                                                                cudaStream_t stream, LaunchLog* log);

}  // namespace attnscope::gpu
