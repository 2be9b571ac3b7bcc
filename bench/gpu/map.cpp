// attnscope-bench-gpu-map: the GPU overview map (GpuEngine::attentionMap, tensor-core passes) at
// long T. For each T (d = 64 by default, causal, 512×512 cells, random bf16 Q/K) it prints the
// median milliseconds with host Q/K in (upload included) and with Q/K already on the device
// (uploadHead once, then the map), and at the smallest T the largest error against the CPU map.
// The PyTorch anchor (shared/bench/map_anchor.py) runs in the same device call; the script
// (scripts/device-analysis.sh) prints the ratios.
//   attnscope-bench-gpu-map [--tokens 8192,32768,131072] [--dim 64] [--cells 512] [--reps 10]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attnscope/attention.h"
#include "attnscope/gpu.h"

using namespace attnscope;

namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Random values exactly representable in bf16 (as a bf16 trace stores them).
MatrixRM randomBf16(int64_t rows, int cols, std::mt19937& rng) {
    std::normal_distribution<float> nd(0.0f, 1.0f);
    MatrixRM m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) {
        float x = nd(rng);
        uint32_t b;
        std::memcpy(&b, &x, 4);
        b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;  // round to nearest even
        std::memcpy(&x, &b, 4);
        m.data()[i] = x;
    }
    return m;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int64_t> tokens = {8192, 32768, 131072};
    int dim = 64, cells = 512, reps = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--tokens") {
            tokens.clear();
            size_t p = 0;
            while (p < v.size()) {
                const size_t e = v.find(',', p);
                tokens.push_back(std::stoll(v.substr(p, e - p)));
                p = e == std::string::npos ? v.size() : e + 1;
            }
        } else if (a == "--dim") {
            dim = std::stoi(v);
        } else if (a == "--cells") {
            cells = std::stoi(v);
        } else if (a == "--reps") {
            reps = std::stoi(v);
        } else {
            std::fprintf(
                stderr,
                "usage: attnscope-bench-gpu-map [--tokens 8192,32768,131072] [--dim 64] [--cells 512] [--reps 10]\n");
            return 2;
        }
    }
    auto gpu = createGpuEngine();
    if (!gpu->info().available) {
        std::fprintf(stderr, "attnscope-bench-gpu-map: no GPU: %s\n", gpu->info().reason.c_str());
        return 1;
    }
    std::printf("# %s, d=%d, causal, %dx%d cells, median of %d\n", gpu->info().name.c_str(), dim, cells, cells, reps);
    std::mt19937 rng(7);
    for (size_t ti = 0; ti < tokens.size(); ++ti) {
        const int64_t T = tokens[ti];
        const MatrixRM q = randomBf16(T, dim, rng), k = randomBf16(T, dim, rng);
        AttentionSpec spec;
        spec.scale = 1.0f / std::sqrt(float(dim));
        spec.mask.causal = true;
        const MapRect rect{0, T, 0, T};
        std::vector<double> hostIn, resident;
        for (int r = 0; r < reps + 2; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            auto m = gpu->attentionMap(q, k, spec, rect, cells, cells);
            if (!m) {
                std::fprintf(stderr, "map failed: %s\n", m.message().c_str());
                return 1;
            }
            if (r >= 2) hostIn.push_back(msSince(t0));
        }
        auto head = gpu->uploadHead(q, k);
        if (!head) {
            std::fprintf(stderr, "upload failed: %s\n", head.message().c_str());
            return 1;
        }
        AttentionMap last;
        for (int r = 0; r < reps + 2; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            auto m = gpu->attentionMap(**head, spec, rect, cells, cells);
            if (!m) {
                std::fprintf(stderr, "map failed: %s\n", m.message().c_str());
                return 1;
            }
            if (r >= 2) resident.push_back(msSince(t0));
            last = std::move(*m);
        }
        double err = -1;
        if (ti == 0) {
            // The CPU map (exact, float32) of the same head: largest relative error of the means.
            auto cpu = attentionMap(q, k, spec, rect, cells, cells);
            if (cpu) {
                double peak = 0, worst = 0;
                for (float x : cpu->mean) peak = std::max(peak, double(x));
                for (size_t c = 0; c < cpu->mean.size(); ++c)
                    worst = std::max(worst, std::fabs(double(last.mean[c]) - double(cpu->mean[c])));
                err = peak > 0 ? worst / peak : 0;
            }
        }
        const double flops = 2.0 * 2.0 * double(T) * double(T) * dim / 2.0;  // two passes of Q·Kᵀ, causal half
        std::printf(
            "{\"impl\": \"attnscope-gpu-map\", \"T\": %lld, \"D\": %d, \"cells\": %d, \"ms_host_in\": %.3f, "
            "\"ms_resident\": %.3f, \"tflops_resident\": %.1f%s}\n",
            static_cast<long long>(T), dim, cells, median(hostIn), median(resident),
            flops / (median(resident) * 1e-3) / 1e12,
            err >= 0 ? (", \"max_rel_err_vs_cpu\": " + std::to_string(err)).c_str() : "");
        std::fflush(stdout);
    }
    return 0;
}
