#pragma once
// The user-variant part of the GPU self-test (jit_selftest.cpp), run by runGpuSelfTest.
#include <random>

#include "attnscope/gpu.h"

namespace attnscope {
namespace gpu {
class CudaEngine;
}

/// Every resources/variants/*.attnvar (or $ATTNSCOPE_VARIANTS_DIR) on the GPU against its float64
/// reference, its built-in twin and the CPU block classification; NVRTC timings as INFO lines.
Status runUserVariantSelfTest(gpu::CudaEngine& engine, bool quick, std::mt19937_64& rng, SelfTestReport& report);

/// ATTNSCOPE_SELFTEST=user: the GPU self-test runs only the user-variant part.
bool userVariantSelfTestOnly();

}  // namespace attnscope
