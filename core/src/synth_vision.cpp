// Synthetic vision traces (attnscope/synth_vision.h). Every pattern is written in logit space:
// q̂_i·k̂_j is the designed score, stored as q = q̂·d^¼, k = k̂·d^¼ with scale 1/√d (as synth.cpp).
#include "attnscope/synth_vision.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "attnscope/vision.h"

namespace attnscope {

namespace {
constexpr int kMaxGridSide = 1024;
constexpr int kMaxPrefix = 64;
constexpr int kMaxPatchSize = 64;
constexpr int kMinHeadDim = 4;       ///< the Local pattern's three columns and filler
constexpr int kPatterns = 4;         ///< Local, Sink, Object, Noise in turn over the kv heads
constexpr double kLocalScale = 1.0;  ///< score −‖Δ‖²: neighbours e^-1, diagonal e^-2, two away e^-4
constexpr double kPrefixAway = 30;   ///< Local heads: prefix keys this many nats below any patch
constexpr double kSinkNats = 3.0;    ///< Sink score beyond log T: the sink takes ≥ 95% of the mass
constexpr double kObjectNats = 8.0;  ///< Object heads: same-region keys this much above log T
constexpr float kFillerSigma = 0.2f;
constexpr uint64_t kSeedMix = 0x9E3779B97F4A7C15ull;
constexpr const char* kStage = "synth";

Status invalid(const std::string& what) { return {ErrorCode::InvalidArgument, "synth --vision: " + what}; }

/// Whether pixel (x, y) of a width × height image lies on one of the shapes.
bool onShape(double x, double y, int width, int height) {
    const double cx = 0.33 * width, cy = 0.4 * height, radius = 0.22 * std::min(width, height);
    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius) return true;
    return x >= 0.58 * width && x < 0.86 * width && y >= 0.55 * height && y < 0.83 * height;
}

struct Grid {
    VisionLayout layout;
    std::vector<uint8_t> object;  ///< per patch: its centre lies on a shape
};

Grid makeGrid(const VisionSynthOptions& o) {
    Grid g;
    g.layout.rows = o.rows;
    g.layout.cols = o.cols;
    g.layout.prefix = o.prefix;
    g.layout.tokens = o.prefix + int64_t(o.rows) * o.cols;
    const int width = o.cols * o.patchSize, height = o.rows * o.patchSize;
    for (int r = 0; r < o.rows; ++r)
        for (int c = 0; c < o.cols; ++c)
            g.object.push_back(onShape((c + 0.5) * o.patchSize, (r + 0.5) * o.patchSize, width, height) ? 1 : 0);
    return g;
}

/// q̂ and k̂ ([T, d] row-major) of one kv head's pattern, filler columns drawn from `rng`.
void patternCodes(VisionSynthHead p, const Grid& g, int64_t sinkToken, int d, std::mt19937_64& rng,
                  std::vector<float>& q, std::vector<float>& k) {
    const VisionLayout& L = g.layout;
    const int64_t T = L.tokens;
    q.assign(size_t(T * d), 0.f);
    k.assign(size_t(T * d), 0.f);
    const double logT = std::log(double(std::max<int64_t>(T, 2)));
    std::normal_distribution<float> filler(0.f, kFillerSigma);
    std::normal_distribution<float> noise(0.f, float(std::pow(double(d), -0.25)));
    int used = 0;
    for (int64_t t = 0; t < T; ++t) {
        float* qr = q.data() + t * d;
        float* kr = k.data() + t * d;
        switch (p) {
        case VisionSynthHead::Local:
            // s = 2a·pᵢ·pⱼ − a‖pⱼ‖² = −a‖pᵢ − pⱼ‖² + a‖pᵢ‖² (the last term is the same for every key).
            used = 3;
            if (L.isPatch(t)) {
                const double r = L.patchRow(t) - 0.5 * (L.rows - 1), c = L.patchCol(t) - 0.5 * (L.cols - 1);
                qr[0] = float(std::sqrt(2 * kLocalScale) * r);
                qr[1] = float(std::sqrt(2 * kLocalScale) * c);
                qr[2] = 1.f;
                kr[0] = float(std::sqrt(2 * kLocalScale) * r);
                kr[1] = float(std::sqrt(2 * kLocalScale) * c);
                kr[2] = float(-kLocalScale * (r * r + c * c));
            } else {
                kr[2] = float(-kPrefixAway);  // queries of prefix tokens (q̂ = 0) attend uniformly
            }
            break;
        case VisionSynthHead::Sink:
            used = 1;
            qr[0] = 1.f;
            if (t == sinkToken) kr[0] = float(logT + kSinkNats);
            break;
        case VisionSynthHead::Object: {
            // ±w on one column: the same region scores w², the other −w².
            used = 1;
            const float w = float(std::sqrt(logT + kObjectNats));
            if (L.isPatch(t)) {
                const float sign = g.object[size_t(t - L.prefix)] ? 1.f : -1.f;
                qr[0] = sign * w;
                kr[0] = sign * w;
            }
            break;
        }
        case VisionSynthHead::Noise: used = 0; break;
        }
        for (int c = used; c < d; ++c) {
            qr[c] = p == VisionSynthHead::Noise ? noise(rng) : filler(rng);
            kr[c] = p == VisionSynthHead::Noise ? noise(rng) : filler(rng);
        }
    }
}

std::string prefixName(int i) { return i == 0 ? "[CLS]" : "[REG" + std::to_string(i - 1) + "]"; }

}  // namespace

const char* visionSynthHeadName(VisionSynthHead h) {
    switch (h) {
    case VisionSynthHead::Local: return "local-2d";
    case VisionSynthHead::Sink: return "register-sink";
    case VisionSynthHead::Object: return "object";
    case VisionSynthHead::Noise: return "noise";
    }
    return "unknown";
}

TraceImage visionSynthImage(const VisionSynthOptions& o) {
    TraceImage img;
    img.width = o.cols * o.patchSize;
    img.height = o.rows * o.patchSize;
    img.rgb.resize(size_t(img.width) * size_t(img.height) * 3);
    const double cx = 0.33 * img.width, cy = 0.4 * img.height, radius = 0.22 * std::min(img.width, img.height);
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) {
            const double fy = double(y) / std::max(1, img.height - 1);
            uint8_t rgb[3] = {uint8_t(90 + 40 * fy), uint8_t(150 + 60 * fy), uint8_t(230 - 150 * fy)};  // sky to grass
            const double px = x + 0.5, py = y + 0.5;
            if (onShape(px, py, img.width, img.height)) {
                const bool disc = (px - cx) * (px - cx) + (py - cy) * (py - cy) <= radius * radius;
                rgb[0] = disc ? 220 : 245;
                rgb[1] = disc ? 50 : 200;
                rgb[2] = disc ? 40 : 40;
            }
            std::copy(rgb, rgb + 3, img.rgb.begin() + (ptrdiff_t(y) * img.width + x) * 3);
        }
    return img;
}

Result<VisionSynthTruth> writeVisionSyntheticTrace(const std::string& path, const VisionSynthOptions& o,
                                                   const ProgressFn& progress) {
    if (o.rows < 1 || o.cols < 1 || o.rows > kMaxGridSide || o.cols > kMaxGridSide)
        return invalid("grid " + std::to_string(o.rows) + "x" + std::to_string(o.cols) + ": each side must be in [1, " +
                       std::to_string(kMaxGridSide) + "]");
    if (o.prefix < 0 || o.prefix > kMaxPrefix)
        return invalid("prefix=" + std::to_string(o.prefix) + " must be in [0, " + std::to_string(kMaxPrefix) + "]");
    if (o.patchSize < 1 || o.patchSize > kMaxPatchSize ||
        int64_t(o.patchSize) * std::max(o.rows, o.cols) > kMaxImageSide)
        return invalid("patch=" + std::to_string(o.patchSize) + " must be in [1, " + std::to_string(kMaxPatchSize) +
                       "] with the image at most " + std::to_string(kMaxImageSide) + " pixels a side");
    if (o.layers < 1 || o.heads < 1) return invalid("layers and heads must be at least 1");
    const int kv = o.kvHeads == 0 ? o.heads : o.kvHeads;
    if (kv < 1 || o.heads % kv != 0)
        return invalid("heads " + std::to_string(o.heads) + " must be a multiple of kv heads " + std::to_string(kv));
    if (o.headDim < kMinHeadDim)
        return invalid("head dim " + std::to_string(o.headDim) + " must be at least " + std::to_string(kMinHeadDim));

    const Grid grid = makeGrid(o);
    const VisionLayout& L = grid.layout;
    const int64_t T = L.tokens, d = o.headDim;
    VisionSynthTruth truth;
    truth.tokens = T;
    truth.localScale = kLocalScale;
    truth.sinkToken = o.prefix > 0 ? o.prefix - 1 : L.patchToken(o.rows - 1, 0);  // a background patch
    for (uint8_t b : grid.object) truth.objectPatches += b;
    const int group = o.heads / kv;

    TraceMetadata meta;
    meta.model = "synthetic-vit";
    meta.source = "attnscope synth --vision";
    meta.kind = TraceKind::Vision;
    meta.patchRows = o.rows;
    meta.patchCols = o.cols;
    for (int i = 0; i < o.prefix; ++i) meta.tokens.push_back(prefixName(i));
    for (int r = 0; r < o.rows; ++r)
        for (int c = 0; c < o.cols; ++c) meta.tokens.push_back(patchTokenName(r, c));
    LayerConfig cfg;
    cfg.heads = o.heads;
    cfg.kvHeads = kv;
    cfg.headDim = o.headDim;
    cfg.scale = 1.0 / std::sqrt(double(d));
    cfg.causal = false;
    cfg.positional = "learned";
    meta.layers.assign(size_t(o.layers), cfg);

    std::vector<TensorSpec> specs;
    for (int l = 0; l < o.layers; ++l) {
        const std::string p = "layers." + std::to_string(l) + ".";
        specs.push_back({p + "q", o.dtype, {o.heads, T, d}});
        specs.push_back({p + "k", o.dtype, {kv, T, d}});
        specs.push_back({p + "v", o.dtype, {kv, T, d}});
    }
    const TraceImage image = visionSynthImage(o);
    if (o.image) specs.push_back({kImageTensorName, DType::U8, {image.height, image.width, 3}});
    auto writer = TraceStreamWriter::create(path, meta, specs);
    if (!writer) return writer.status();

    const float storeScale = float(std::pow(double(d), 0.25));  // q = q̂·d^¼, k = k̂·d^¼
    std::normal_distribution<float> valueDist(0.f, 1.f), jitter(0.f, 0.02f);
    std::vector<float> qHat, kHat, qOut(size_t(o.heads * T * d)), kOut(size_t(kv * T * d)), vOut(size_t(kv * T * d));
    for (int l = 0; l < o.layers; ++l) {
        for (int j = 0; j < kv; ++j) {
            std::mt19937_64 rng(o.seed ^ (uint64_t(l * kv + j + 1) * kSeedMix));
            const auto pattern = VisionSynthHead(j % kPatterns);
            patternCodes(pattern, grid, truth.sinkToken, int(d), rng, qHat, kHat);
            for (int64_t e = 0; e < T * d; ++e) {
                kOut[size_t(j * T * d + e)] = kHat[size_t(e)] * storeScale;
                vOut[size_t(j * T * d + e)] = valueDist(rng);
            }
            for (int g = 0; g < group; ++g) {  // the group's query heads: the pattern with a little jitter
                const int h = j * group + g;
                for (int64_t e = 0; e < T * d; ++e)
                    qOut[size_t(h * T * d + e)] = (qHat[size_t(e)] + (g ? jitter(rng) : 0.f)) * storeScale;
            }
            if (l == 0)
                for (int g = 0; g < group; ++g) truth.heads.push_back(pattern);
        }
        const size_t base = size_t(l) * 3;
        if (Status s = (*writer)->write(base, 0, qOut.data(), int64_t(qOut.size())); !s) return s;
        if (Status s = (*writer)->write(base + 1, 0, kOut.data(), int64_t(kOut.size())); !s) return s;
        if (Status s = (*writer)->write(base + 2, 0, vOut.data(), int64_t(vOut.size())); !s) return s;
        if (progress && !progress(0.95 * double(l + 1) / o.layers, kStage))
            return Status(ErrorCode::Cancelled, "synth --vision: cancelled");
    }
    if (o.image) {
        const std::vector<float> pixels(image.rgb.begin(), image.rgb.end());
        if (Status s = (*writer)->write(specs.size() - 1, 0, pixels.data(), int64_t(pixels.size())); !s) return s;
    }
    if (Status s = (*writer)->commit(); !s) return s;
    // Every layer plants the same patterns: the truth lists the query heads of every layer.
    const std::vector<VisionSynthHead> perLayer = truth.heads;
    for (int l = 1; l < o.layers; ++l) truth.heads.insert(truth.heads.end(), perLayer.begin(), perLayer.end());
    if (progress) progress(1.0, kStage);
    return truth;
}

}  // namespace attnscope
