// Synthetic traces: a random token sequence with a repeated segment and documents, and per layer
// kv heads taking the planted patterns in turn (query heads duplicated per GQA group, each with its
// own noise). One generator serves both paths: makeSyntheticTrace collects its rows in memory,
// writeSyntheticTrace streams them into the file, so the two give the same bytes.
#include "attnscope/synth.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cmath>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "attnscope/parallel.h"
#include "synth_patterns.h"

namespace attnscope {

namespace {
constexpr int64_t kVocabulary = 32000;  ///< token ids are drawn from [0, kVocabulary)
constexpr int64_t kMaxTokens = int64_t(1) << 22;
constexpr float kGroupNoise = 0.02f;                  ///< per query head jitter inside a GQA group (logit space)
constexpr uint64_t kSeedMix = 0x9E3779B97F4A7C15ull;  ///< golden-ratio increment: decorrelates sub-seeds
constexpr int64_t kMaxHeads = 1 << 16;                ///< per layer, query or kv (LayerConfig counts are int)
/// Rows are generated in blocks of about this many floats (1 MiB): a few blocks per worker is all
/// the memory the generator holds, whatever T is.
constexpr int64_t kBlockElements = int64_t(1) << 18;
/// The file is complete at this fraction of the progress; flushing it to disk takes the rest.
constexpr double kWrittenFraction = 0.99;
constexpr const char* kStage = "synth";  ///< progress label

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

namespace {

enum Slot { kQ = 0, kK = 1, kV = 2, kSlots = 3 };  ///< tensor order within a layer (TraceWriter::addLayer)

/// Validated options and everything derived from them but the tensors.
struct Plan {
    SynthOptions options;
    int kvHeads = 0, queryHeads = 0, groups = 1;  ///< per layer; groups = queryHeads / kvHeads
    synth::Sequence seq;
    SynthTruth truth;
    TraceMetadata meta;
};

Result<Plan> makePlan(const SynthOptions& o) {
    const int64_t t = o.tokens;
    if (t < 2 || t > kMaxTokens)
        return invalid("--tokens " + std::to_string(t) + " must be in [2, " + std::to_string(kMaxTokens) + "]");
    if (o.layers < 1) return invalid("layers " + std::to_string(o.layers) + " must be at least 1");
    if (o.headDim < 1) return invalid("head dim " + std::to_string(o.headDim) + " must be at least 1");
    if (o.kvGroups < 1) return invalid("kv groups " + std::to_string(o.kvGroups) + " must be at least 1");
    if (o.heads.empty()) return invalid("no heads requested");
    if (o.kvHeads < 0 || o.kvHeads > kMaxHeads)
        return invalid("kv heads " + std::to_string(o.kvHeads) + " must be in [1, " + std::to_string(kMaxHeads) +
                       "] (0: one per pattern)");
    if (o.queryHeads < 0 || o.queryHeads > kMaxHeads)
        return invalid("heads " + std::to_string(o.queryHeads) + " must be in [1, " + std::to_string(kMaxHeads) +
                       "] (0: kv heads × kv groups)");
    if (o.documents < 1 || o.documents > t)
        return invalid("documents " + std::to_string(o.documents) + " must be in [1, T=" + std::to_string(t) + "]");
    Plan p;
    p.options = o;
    p.kvHeads = o.kvHeads > 0 ? o.kvHeads : int(std::min<size_t>(o.heads.size(), size_t(kMaxHeads)));
    if (o.queryHeads > 0) {
        if (o.queryHeads % p.kvHeads != 0)
            return invalid("heads " + std::to_string(o.queryHeads) + " must be a multiple of kv heads " +
                           std::to_string(p.kvHeads));
        p.groups = o.queryHeads / p.kvHeads;
        if (o.kvGroups != 1 && o.kvGroups != p.groups)
            return invalid("heads " + std::to_string(o.queryHeads) + " over kv heads " + std::to_string(p.kvHeads) +
                           " gives groups of " + std::to_string(p.groups) + ", not kv groups " +
                           std::to_string(o.kvGroups) + " (give heads or kv groups, not both)");
    } else {
        p.groups = o.kvGroups;
        if (int64_t(p.kvHeads) * p.groups > kMaxHeads)
            return invalid("kv heads " + std::to_string(p.kvHeads) + " × kv groups " + std::to_string(p.groups) +
                           " exceeds " + std::to_string(kMaxHeads) + " query heads");
    }
    p.queryHeads = p.kvHeads * p.groups;

    SynthTruth& truth = p.truth;
    truth.kvHeads = p.kvHeads;
    truth.hiddenSinkPosition = o.hiddenSinkPosition >= 0 ? o.hiddenSinkPosition : t / 3;
    truth.repeatLength = o.repeatLength >= 0 ? o.repeatLength : t / 4;
    truth.repeatStart = o.repeatStart >= 0 ? o.repeatStart : t / 2;
    if (truth.hiddenSinkPosition < 1 || truth.hiddenSinkPosition >= t)
        return invalid("hidden sink position " + std::to_string(truth.hiddenSinkPosition) + " must be in [1, T)");
    if (truth.repeatStart - truth.repeatLength < 0 || truth.repeatStart + truth.repeatLength > t)
        return invalid("repeated segment [" + std::to_string(truth.repeatStart) + ", +" +
                       std::to_string(truth.repeatLength) + ") and its source must lie inside [0, T)");

    // Tokens: random ids, the segment before repeatStart copied after it.
    synth::Sequence& seq = p.seq;
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
    seq.documentCount = o.documents;
    truth.documents = seq.documents;
    for (int kv = 0; kv < p.kvHeads; ++kv) {
        const SynthHead h = o.heads[size_t(kv) % o.heads.size()];
        // Checked here so that a bad head dim fails before any file is created.
        if (Status s = synth::checkHeadDim(h, seq, o.headDim); !s) return s;
        for (int g = 0; g < p.groups; ++g) truth.heads.push_back(h);
    }

    TraceMetadata& meta = p.meta;
    meta.model = "synthetic";
    meta.source = std::string("attnscope synth ") + ATTNSCOPE_VERSION;
    meta.kind = TraceKind::CausalLM;
    meta.tokenIds = seq.tokenIds;
    meta.documents = seq.documents;
    meta.tokens.reserve(size_t(t));
    for (int64_t id : seq.tokenIds) meta.tokens.push_back("t" + std::to_string(id));
    for (int64_t i = 0; i < t; ++i) meta.text += (i ? " " : "") + meta.tokens[size_t(i)];
    LayerConfig cfg;
    cfg.kvHeads = p.kvHeads;
    cfg.heads = p.queryHeads;
    cfg.headDim = o.headDim;
    cfg.scale = 1.0 / std::sqrt(double(o.headDim));
    cfg.causal = true;
    cfg.positional = "synthetic";
    meta.layers.assign(size_t(o.layers), cfg);
    meta.extraJson = "{\"synthetic\":{\"hidden_sink\":" + std::to_string(truth.hiddenSinkPosition) +
                     ",\"repeat_start\":" + std::to_string(truth.repeatStart) +
                     ",\"repeat_length\":" + std::to_string(truth.repeatLength) +
                     ",\"seed\":" + std::to_string(o.seed) + "}}";
    return p;
}

/// Receives generated rows: `rows` rows of head `head` of the layer's q, k or v tensor from row
/// `row0`, row-major. Returning false stops the generator (an error or a cancel).
using RowSink = std::function<bool(Slot slot, int head, int64_t row0, int64_t rows, const float* values)>;

/// Generates kv head `kv` of `layer`: its k and v and the q of its GQA group, a block of rows at a
/// time. The random stream is the kv head's own (so heads run in parallel), consumed in a fixed
/// order: the pattern's codes, the group noise of each query head in turn, then v. Query heads of
/// a group reuse q̂ when it is small (SynthOptions::codeCacheBytes), else re-run the codes from the start.
Status generateKvHead(const Plan& p, int layer, int kv, const RowSink& sink) {
    const SynthOptions& o = p.options;
    const SynthHead pattern = o.heads[size_t(kv) % o.heads.size()];
    const std::mt19937_64 start = subRng(o.seed, uint64_t(layer) + 1, uint64_t(kv));
    // Stored q = q̂·d^¼ and k = k̂·d^¼, so scale·q·k = q̂·k̂ with scale = 1/√d.
    const float quarter = float(std::pow(double(o.headDim), 0.25));
    const int64_t t = o.tokens, d = o.headDim;
    const int64_t blockRows = std::max<int64_t>(1, kBlockElements / d);
    std::vector<float> qHat(size_t(blockRows * d)), kHat(qHat.size()), out(qHat.size());
    std::vector<float> qCache;
    if (p.groups > 1 && t * d * int64_t(sizeof(float)) <= o.codeCacheBytes) qCache.resize(size_t(t * d));
    auto stopped = [] { return Status(ErrorCode::Cancelled, "synth: stopped"); };

    auto codes = synth::HeadCodeStream::start(pattern, p.seq, o.headDim, start);
    if (!codes) return codes.status();
    for (int64_t row0 = 0; row0 < t; row0 += blockRows) {
        const int64_t rows = std::min(blockRows, t - row0), n = rows * d;
        codes->next(rows, qHat.data(), kHat.data());
        if (!qCache.empty()) std::copy(qHat.begin(), qHat.begin() + n, qCache.begin() + row0 * d);
        for (int64_t e = 0; e < n; ++e) out[size_t(e)] = kHat[size_t(e)] * quarter;
        if (!sink(kK, kv, row0, rows, out.data())) return stopped();
        if (p.groups == 1) {
            for (int64_t e = 0; e < n; ++e) out[size_t(e)] = qHat[size_t(e)] * quarter;
            if (!sink(kQ, kv, row0, rows, out.data())) return stopped();
        }
    }
    std::mt19937_64 rng = codes->engine();
    std::normal_distribution<float> unit(0.0f, 1.0f);
    if (p.groups > 1)
        for (int g = 0; g < p.groups; ++g) {
            std::optional<synth::HeadCodeStream> again;
            if (qCache.empty()) {
                auto restarted = synth::HeadCodeStream::start(pattern, p.seq, o.headDim, start);
                if (!restarted) return restarted.status();
                again = std::move(*restarted);
            }
            for (int64_t row0 = 0; row0 < t; row0 += blockRows) {
                const int64_t rows = std::min(blockRows, t - row0), n = rows * d;
                const float* codesRows = qCache.empty() ? qHat.data() : qCache.data() + row0 * d;
                if (again) again->next(rows, qHat.data(), kHat.data());
                for (int64_t e = 0; e < n; ++e) {
                    const float noisy = codesRows[e] + kGroupNoise * unit(rng);
                    out[size_t(e)] = noisy * quarter;
                }
                if (!sink(kQ, kv * p.groups + g, row0, rows, out.data())) return stopped();
            }
        }
    for (int64_t row0 = 0; row0 < t; row0 += blockRows) {
        const int64_t rows = std::min(blockRows, t - row0), n = rows * d;
        for (int64_t e = 0; e < n; ++e) out[size_t(e)] = unit(rng);
        if (!sink(kV, kv, row0, rows, out.data())) return stopped();
    }
    return Status::success();
}

/// Runs generateKvHead for every kv head of layers [layer0, layer1) on the worker pool, handed out
/// layer by layer (a layer's heads overlap the next layer's only at the boundary); returns the
/// first error.
Status generateLayers(const Plan& p, int layer0, int layer1, const std::function<RowSink(int layer)>& sinkFor) {
    const int64_t items = int64_t(layer1 - layer0) * p.kvHeads;
    std::mutex mutex;
    Status first;
    std::atomic<bool> failed{false};
    parallelFor(items, [&](int64_t i, int) {
        if (failed.load(std::memory_order_relaxed)) return;
        const int layer = layer0 + int(i / p.kvHeads), kv = int(i % p.kvHeads);
        const RowSink sink = sinkFor(layer);
        const RowSink guarded = [&](Slot slot, int head, int64_t row0, int64_t rows, const float* values) {
            return !failed.load(std::memory_order_relaxed) && sink(slot, head, row0, rows, values);
        };
        if (Status s = generateKvHead(p, layer, kv, guarded); !s) {
            std::lock_guard lock(mutex);
            if (!failed.exchange(true)) first = s;
        }
    });
    return first;
}

}  // namespace

Result<std::pair<TraceWriter, SynthTruth>> makeSyntheticTrace(const SynthOptions& options) {
    auto plan = makePlan(options);
    if (!plan) return plan.status();
    const Plan& p = *plan;
    const int64_t t = p.options.tokens, d = p.options.headDim;
    TraceWriter writer(p.meta);
    // One layer at a time: its [slot][head] matrices, filled by the generator's rows.
    for (int layer = 0; layer < p.options.layers; ++layer) {
        std::array<std::vector<MatrixRM>, kSlots> tensors;
        tensors[kQ].assign(size_t(p.queryHeads), MatrixRM(t, d));
        tensors[kK].assign(size_t(p.kvHeads), MatrixRM(t, d));
        tensors[kV].assign(size_t(p.kvHeads), MatrixRM(t, d));
        auto sinkFor = [&](int) -> RowSink {
            return [&tensors, d](Slot slot, int head, int64_t row0, int64_t rows, const float* values) {
                std::copy(values, values + rows * d, tensors[slot][size_t(head)].data() + row0 * d);
                return true;
            };
        };
        if (Status s = generateLayers(p, layer, layer + 1, sinkFor); !s.ok()) return s;
        writer.addLayer(layer, p.options.dtype, tensors[kQ], tensors[kK], tensors[kV]);
    }
    return std::pair<TraceWriter, SynthTruth>(std::move(writer), plan->truth);
}

Result<SynthTruth> writeSyntheticTrace(const std::string& path, const SynthOptions& options,
                                       const ProgressFn& progress) {
    auto plan = makePlan(options);
    if (!plan) return plan.status();
    const Plan& p = *plan;
    const int64_t t = p.options.tokens, d = p.options.headDim;
    std::vector<TensorSpec> specs;
    for (int layer = 0; layer < p.options.layers; ++layer) {
        const std::string prefix = "layers." + std::to_string(layer) + ".";
        specs.push_back({prefix + "q", p.options.dtype, {p.queryHeads, t, d}});
        specs.push_back({prefix + "k", p.options.dtype, {p.kvHeads, t, d}});
        specs.push_back({prefix + "v", p.options.dtype, {p.kvHeads, t, d}});
    }
    auto writer = TraceStreamWriter::create(path, p.meta, std::move(specs));
    if (!writer) return writer.status();

    ProgressReporter reporter(progress);
    const double totalElements = double(p.options.layers) * double(p.queryHeads + 2 * p.kvHeads) * double(t * d);
    std::atomic<int64_t> doneElements{0};
    std::mutex errorMutex;
    Status writeError;
    auto sinkFor = [&](int layer) -> RowSink {
        return [&, layer](Slot slot, int head, int64_t row0, int64_t rows, const float* values) {
            const size_t tensor = size_t(layer) * kSlots + size_t(slot);
            if (Status s = (*writer)->write(tensor, (int64_t(head) * t + row0) * d, values, rows * d); !s.ok()) {
                std::lock_guard lock(errorMutex);
                if (writeError.ok()) writeError = s;
                return false;
            }
            const int64_t done = doneElements.fetch_add(rows * d, std::memory_order_relaxed) + rows * d;
            return reporter.report(kWrittenFraction * double(done) / totalElements, kStage);
        };
    };
    const Status generated = generateLayers(p, 0, p.options.layers, sinkFor);
    // A sink that stopped the generator says why: a write error, or the progress callback.
    if (!writeError.ok()) return writeError;
    const Status cancelled(ErrorCode::Cancelled, "synth: cancelled");
    if (reporter.cancelled()) return cancelled;
    if (!generated.ok()) return generated;
    if (!reporter.report(kWrittenFraction, kStage)) return cancelled;
    if (Status c = (*writer)->commit(); !c.ok()) return c;
    reporter.report(1.0, kStage);
    return plan->truth;
}

}  // namespace attnscope
