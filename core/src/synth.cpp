// Synthetic traces: a random token sequence with a repeated segment and documents, and per layer
// one kv head per planted pattern (query heads duplicated per GQA group, each with its own noise).
#include "attnscope/synth.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "synth_patterns.h"

namespace attnscope {

namespace {
constexpr int64_t kVocabulary = 32000;     ///< token ids are drawn from [0, kVocabulary)
constexpr int64_t kMaxTokens = int64_t(1) << 22;
constexpr float kGroupNoise = 0.02f;       ///< per query head jitter inside a GQA group (logit space)
constexpr uint64_t kSeedMix = 0x9E3779B97F4A7C15ull;  ///< golden-ratio increment: decorrelates sub-seeds

std::mt19937_64 subRng(uint64_t seed, uint64_t a, uint64_t b) {
    return std::mt19937_64(seed ^ (a * kSeedMix) ^ ((b + 1) * kSeedMix * kSeedMix));
}

Status invalid(const std::string& what) { return {ErrorCode::InvalidArgument, "synth: " + what}; }
}  // namespace

const char* synthHeadName(SynthHead h) {
    switch (h) {
    case SynthHead::FirstTokenSink: return "first-token-sink";
    case SynthHead::HiddenSink: return "hidden-sink";
    case SynthHead::LocalBand: return "local-band";
    case SynthHead::PreviousToken: return "previous-token";
    case SynthHead::Induction: return "induction";
    case SynthHead::Documents: return "documents";
    case SynthHead::Noise: return "noise";
    }
    return "unknown";
}

Result<std::pair<TraceWriter, SynthTruth>> makeSyntheticTrace(const SynthOptions& o) {
    const int64_t t = o.tokens;
    if (t < 2 || t > kMaxTokens)
        return invalid("--tokens " + std::to_string(t) + " must be in [2, " + std::to_string(kMaxTokens) + "]");
    if (o.layers < 1) return invalid("layers " + std::to_string(o.layers) + " must be at least 1");
    if (o.headDim < 1) return invalid("head dim " + std::to_string(o.headDim) + " must be at least 1");
    if (o.kvGroups < 1) return invalid("kv groups " + std::to_string(o.kvGroups) + " must be at least 1");
    if (o.heads.empty()) return invalid("no heads requested");
    if (o.documents < 1 || o.documents > t)
        return invalid("documents " + std::to_string(o.documents) + " must be in [1, T=" + std::to_string(t) + "]");
    SynthTruth truth;
    truth.hiddenSinkPosition = o.hiddenSinkPosition >= 0 ? o.hiddenSinkPosition : t / 3;
    truth.repeatLength = o.repeatLength >= 0 ? o.repeatLength : t / 4;
    truth.repeatStart = o.repeatStart >= 0 ? o.repeatStart : t / 2;
    if (truth.hiddenSinkPosition < 1 || truth.hiddenSinkPosition >= t)
        return invalid("hidden sink position " + std::to_string(truth.hiddenSinkPosition) + " must be in [1, T)");
    if (truth.repeatStart - truth.repeatLength < 0 || truth.repeatStart + truth.repeatLength > t)
        return invalid("repeated segment [" + std::to_string(truth.repeatStart) + ", +" +
                       std::to_string(truth.repeatLength) + ") and its source must lie inside [0, T)");

    // Tokens: random ids, the segment before repeatStart copied after it.
    synth::Sequence seq;
    seq.tokens = t;
    seq.vocabulary = kVocabulary;
    seq.hiddenSink = truth.hiddenSinkPosition;
    auto rng = subRng(o.seed, 0, 0);
    std::uniform_int_distribution<int64_t> tokenDist(0, kVocabulary - 1);
    seq.tokenIds.resize(size_t(t));
    for (auto& id : seq.tokenIds) id = tokenDist(rng);
    for (int64_t i = 0; i < truth.repeatLength; ++i)
        seq.tokenIds[size_t(truth.repeatStart + i)] = seq.tokenIds[size_t(truth.repeatStart - truth.repeatLength + i)];
    // Documents: even split with ±25% jitter on each boundary (jagged, never empty).
    std::vector<int64_t> bounds = {0};
    for (int d = 1; d < o.documents; ++d) {
        const double even = double(t) * d / o.documents, jitter = 0.25 * double(t) / o.documents;
        int64_t b = std::llround(even + std::uniform_real_distribution<double>(-jitter, jitter)(rng));
        bounds.push_back(std::clamp<int64_t>(b, bounds.back() + 1, t - (o.documents - d)));
    }
    bounds.push_back(t);
    seq.documents.resize(size_t(t));
    for (int d = 0; d < o.documents; ++d)
        for (int64_t i = bounds[size_t(d)]; i < bounds[size_t(d) + 1]; ++i) seq.documents[size_t(i)] = d;
    truth.documents = seq.documents;
    for (SynthHead h : o.heads)
        for (int g = 0; g < o.kvGroups; ++g) truth.heads.push_back(h);

    TraceMetadata meta;
    meta.model = "synthetic";
    meta.source = std::string("attnscope synth ") + ATTNSCOPE_VERSION;
    meta.kind = TraceKind::CausalLM;
    meta.tokenIds = seq.tokenIds;
    meta.documents = seq.documents;
    meta.tokens.reserve(size_t(t));
    for (int64_t id : seq.tokenIds) meta.tokens.push_back("t" + std::to_string(id));
    for (int64_t i = 0; i < t; ++i) meta.text += (i ? " " : "") + meta.tokens[size_t(i)];
    LayerConfig cfg;
    cfg.kvHeads = int(o.heads.size());
    cfg.heads = cfg.kvHeads * o.kvGroups;
    cfg.headDim = o.headDim;
    cfg.scale = 1.0 / std::sqrt(double(o.headDim));
    cfg.causal = true;
    cfg.positional = "synthetic";
    meta.layers.assign(size_t(o.layers), cfg);
    meta.extraJson = "{\"synthetic\":{\"hidden_sink\":" + std::to_string(truth.hiddenSinkPosition) +
                     ",\"repeat_start\":" + std::to_string(truth.repeatStart) +
                     ",\"repeat_length\":" + std::to_string(truth.repeatLength) + ",\"seed\":" + std::to_string(o.seed) + "}}";

    TraceWriter writer(std::move(meta));
    // Stored q = q̂·d^¼ and k = k̂·d^¼, so scale·q·k = q̂·k̂ with scale = 1/√d.
    const float quarter = float(std::pow(double(o.headDim), 0.25));
    std::normal_distribution<float> unit(0.0f, 1.0f);
    for (int layer = 0; layer < o.layers; ++layer) {
        std::vector<MatrixRM> qs, ks, vs;
        for (size_t p = 0; p < o.heads.size(); ++p) {
            auto headRng = subRng(o.seed, uint64_t(layer) + 1, p);
            auto codes = synth::buildHead(o.heads[p], seq, o.headDim, headRng);
            if (!codes) return codes.status();
            for (int g = 0; g < o.kvGroups; ++g) {
                MatrixRM q = codes->q;
                if (o.kvGroups > 1)
                    for (Eigen::Index i = 0; i < q.size(); ++i) q.data()[i] += kGroupNoise * unit(headRng);
                qs.push_back(q * quarter);
            }
            ks.push_back(codes->k * quarter);
            MatrixRM v(t, o.headDim);
            for (Eigen::Index i = 0; i < v.size(); ++i) v.data()[i] = unit(headRng);
            vs.push_back(std::move(v));
        }
        writer.addLayer(layer, o.dtype, qs, ks, vs);
    }
    return std::pair<TraceWriter, SynthTruth>(std::move(writer), std::move(truth));
}

Result<SynthTruth> writeSyntheticTrace(const std::string& path, const SynthOptions& options) {
    auto made = makeSyntheticTrace(options);
    if (!made) return made.status();
    if (Status s = made->first.write(path); !s) return s;
    return std::move(made->second);
}

}  // namespace attnscope
