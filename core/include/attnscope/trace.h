#pragma once
// Trace format v2 (v1 files read as before; docs/trace-format.md): one safetensors file, *.attn.safetensors, with
// Q/K/V per layer and an "attnscope.trace" __metadata__ block. The reader memory-maps the file,
// validates everything before use, and converts to float only on access.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "attnscope/matrix.h"
#include "attnscope/progress.h"
#include "attnscope/status.h"

namespace attnscope {

/// Tensor element types. U8 holds only the input image of a vision trace (tensor `image`); layer
/// tensors are F32, F16 or BF16.
enum class DType { F32, F16, BF16, U8 };
const char* dtypeName(DType t);  ///< "F32", "F16", "BF16", "U8" (safetensors spelling)
size_t dtypeSize(DType t);

enum class TraceKind { CausalLM, Encoder, Vision };
const char* traceKindName(TraceKind k);  ///< "causal-lm", "encoder", "vision"

/// Per-layer attention settings, as recorded by the capture tool.
struct LayerConfig {
    int heads = 0;
    int kvHeads = 0;  ///< GQA: heads % kvHeads == 0; query head h uses kv head h / (heads/kvHeads)
    int headDim = 0;
    double scale = 0;  ///< multiplier of q·k (usually 1/sqrt(headDim))
    bool causal = true;
    int64_t slidingWindow = 0;  ///< 0 = none; else key k visible from query q iff q - k < window
    double softcap = 0;         ///< 0 = none; else s <- c * tanh(s / c)
    bool alibi = false;         ///< ALiBi bias slope_h·(k - q), standard slopes 2^(-8(h+1)/H) unless alibiSlopes
    /// ALiBi slopes of the model, one per query head (format v2 `alibi_slopes`: Falcon's are the
    /// standard ones times its 1/sqrt(d), BLOOM's and MPT's differ for head counts that are not a
    /// power of two); empty = the standard slopes. Only with `alibi`.
    std::vector<float> alibiSlopes;
    std::string positional = "rope-applied";  ///< "rope-applied", "learned", "alibi", "none", …
    /// Learned sink logits, one per query head (format v2 tensor `layers.N.sinks`, GPT-OSS);
    /// empty = none. Filled by the reader from the tensor, written as that tensor by TraceWriter.
    std::vector<float> sinks;
    bool hasSinks() const { return !sinks.empty(); }
};

class Json;
/// One layer's settings as the trace format stores them (docs/trace-format.md "layers": heads,
/// kv_heads, head_dim, scale, causal, sliding_window (null = none), softcap (null = none), alibi,
/// positional). The writer and `attnscope-cli info --json` share it.
Json layerConfigJson(const LayerConfig& c);

/// What the capture tool found when it recomputed the model's attention from what it recorded
/// (metadata `capture_check`, docs/trace-format.md). Absent in traces from other tools.
struct CaptureCheck {
    bool present = false;
    std::string status;      ///< "passed", or "mismatch" (written only with --allow-mismatch)
    double maxAbsDelta = 0;  ///< largest |Δ| over the checked rows (probabilities or output)
    std::string compared;    ///< "probabilities" (eager) or "output" (the attention function's)
    double tolerance = 0;
    int worstLayer = -1;      ///< file layer of maxAbsDelta
    int64_t rowsChecked = 0;  ///< rows per layer and head that were compared
    bool passed() const { return !present || status == "passed"; }
};
/// One line for `info` and the GUI, e.g. "passed: max |Δp| 2.4e-07 ≤ 1e-04 (probabilities, 48
/// rows per head of every layer)" or "MISMATCH: max |Δp| 0.60 in layer 2 > 1e-04: written with
/// --allow-mismatch; maps and analyses may not show what the model computed".
std::string describeCaptureCheck(const CaptureCheck& c);

struct TraceMetadata {
    std::string format = "attnscope.trace";
    /// The lowest format version the content needs: the writer stores max(version, 2 when a
    /// layer has learned sinks or ALiBi slopes of its own, else 1); the reader reports what the
    /// file says.
    int version = 1;
    std::string model;
    std::string source;  ///< capture tool and version, e.g. "attnscope_capture 0.1"
    TraceKind kind = TraceKind::CausalLM;
    int patchRows = 0, patchCols = 0;  ///< vision only
    std::string text;
    std::vector<std::string> tokens;  ///< display strings, one per position
    std::vector<int64_t> tokenIds;
    std::vector<LayerConfig> layers;
    std::vector<int32_t> documents;  ///< optional document id per token (synthetic traces)
    std::string extraJson;           ///< optional "extra" metadata object, verbatim JSON
    CaptureCheck captureCheck;       ///< optional "capture_check" (the capture tool's self-check)
};

/// A tensor inside the mapped file. Zero-copy: `data` points into the mapping. Read it through
/// Trace::read / head / storedAttention, which survive the file being truncated while open.
struct TensorView {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t offset = 0;  ///< from the start of the data section
    uint64_t bytes = 0;
    const std::byte* data = nullptr;

    int64_t numel() const;
    /// Element `i` (flat, row-major) converted to float.
    float at(int64_t i) const;
    /// Converts `count` elements starting at flat index `first` into `out`.
    void toFloat(int64_t first, int64_t count, float* out) const;
};

struct LayerTensors {
    TensorView q;                     ///< [heads, T, d]
    TensorView k;                     ///< [kvHeads, T, d]
    TensorView v;                     ///< [kvHeads, T, d]
    std::optional<TensorView> attn;   ///< [heads, T, T] probabilities (weights-only traces)
    std::optional<TensorView> out;    ///< [heads, T, d] attention output for validation
    std::optional<TensorView> sinks;  ///< [heads] learned sink logits (v2; values in LayerConfig::sinks)
};

enum class Which { Q, K, V };

/// Limits of the optional `image` tensor of a vision trace (docs/trace-format.md, "Vision").
inline constexpr const char* kImageTensorName = "image";
inline constexpr int kMaxImageSide = 8192;  ///< pixels, each of height and width

/// The input image of a vision trace (tensor `image`, U8 [height, width, 3]): the RGB pixels the
/// model saw, after the processor's resize/crop and before normalisation. Copied out of the
/// mapping (the file may change while open), so it stays valid after the trace is closed.
struct TraceImage {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  ///< row-major [height][width][3]
    /// Pixel rows [r·height/rows, (r+1)·height/rows) and columns likewise: what patch (r, c) of a
    /// rows × cols grid covers.
    int rowBegin(int r, int rows) const { return int(int64_t(r) * height / rows); }
    int colBegin(int c, int cols) const { return int(int64_t(c) * width / cols); }
};

/// One head's Q, K or V as floats, with a count of NaN/Inf values found while converting.
struct HeadMatrix {
    MatrixRM m;  ///< [T, d]
    int64_t nonFinite = 0;
};

struct NonFiniteCount {
    std::string tensor;
    int64_t nan = 0;
    int64_t inf = 0;
};

struct OpenOptions {
    /// Scan every value for NaN/Inf at open (reads the whole file). Off by default so that
    /// opening a multi-GB trace stays cheap; `attnscope-cli info` turns it on.
    bool scanValues = false;
    /// Refuse files whose tensors claim more than this many bytes (absurd sizes).
    uint64_t maxTensorBytes = uint64_t(1) << 40;
};

class Trace {
public:
    ~Trace();
    Trace(const Trace&) = delete;
    Trace& operator=(const Trace&) = delete;

    /// Memory-maps and validates `path`. Errors name the file, the tensor/field and what was
    /// expected, e.g. "demo.attn.safetensors: tensor layers.3.k: shape [2,100,64] × F16 needs
    /// 25600 bytes but data_offsets span 25598".
    static Result<std::shared_ptr<const Trace>> open(const std::string& path, const OpenOptions& options = {},
                                                     const ProgressFn& progress = {});

    const std::string& path() const;
    /// Unique per open in this process, never reused: caches keyed by it (device copies of a
    /// layer) cannot mistake a reopened or new trace for this one.
    uint64_t openId() const;
    const TraceMetadata& metadata() const;
    int64_t tokens() const;  ///< T
    int numLayers() const;
    const LayerConfig& config(int layer) const;
    const LayerTensors& layer(int layer) const;
    uint64_t fileSize() const;
    DType dtype() const;                                   ///< dtype of layer 0's q
    bool hasQK() const;                                    ///< false for weights-only traces (maps yes, variants no)
    const std::vector<NonFiniteCount>& nonFinite() const;  ///< filled when scanValues was set
    const std::vector<std::string>& warnings() const;
    /// The `image` tensor of a vision trace (U8 [height, width, 3]), or nullptr when it has none.
    const TensorView* imageTensor() const;
    /// The image's pixels, read under the same rules as head() (an IoError, never a crash, when
    /// the file changed since it was opened); Unsupported when the trace has no image.
    Result<TraceImage> image() const;

    /// Query head `head` of `layer` as [T, d] floats. For K and V, `head` is the query head and
    /// is mapped to its kv head (GQA).
    Result<HeadMatrix> head(int layer, int head, Which which) const;
    /// [T, T] probabilities of a weights-only trace, rows [q0, q1).
    Result<MatrixRM> storedAttention(int layer, int head, int64_t q0, int64_t q1) const;
    /// Copies bytes [offset, offset + bytes) of tensor `t` (one of this trace's) into `dst`, as
    /// stored. Thread-safe. Like head() and storedAttention(), it refuses with an IoError naming
    /// the file, never crashes, when the file was truncated or rewritten since it was opened.
    Status read(const TensorView& t, uint64_t offset, uint64_t bytes, void* dst) const;
    /// Ok while the file on disk is still the one that was opened (same size and modification
    /// time); else an IoError saying what changed: reopen the trace.
    Status checkUnchanged() const;

    struct Impl;

private:
    explicit Trace(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// Builds a trace in memory and writes it atomically (temp file + rename). Used by the tests,
/// the synthetic generator and the capture tool's tests.
class TraceWriter {
public:
    explicit TraceWriter(TraceMetadata metadata);
    /// Adds a tensor from floats, stored as `dtype`. Shape product must equal values.size().
    void addTensor(std::string name, DType dtype, std::vector<int64_t> shape, const std::vector<float>& values);
    /// Adds raw bytes as-is (for tests that build malformed files).
    void addRawTensor(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes);
    /// Adds layer i's q/k/v from per-head matrices (q: heads × [T,d], k/v: kvHeads × [T,d]).
    /// Layers whose LayerConfig has sinks get `layers.i.sinks` (F32) written with them at
    /// serialize(), unless a tensor of that name was added.
    void addLayer(int layer, DType dtype, const std::vector<MatrixRM>& q, const std::vector<MatrixRM>& k,
                  const std::vector<MatrixRM>& v);
    /// Adds the input image of a vision trace as tensor `image` (U8 [height, width, 3]);
    /// rgb.size() must be height·width·3 (else the reader refuses the file).
    void addImage(int width, int height, std::vector<uint8_t> rgb);
    /// The complete file image (header length, JSON header, data).
    std::vector<std::byte> serialize() const;
    /// Writes atomically: `path`.tmp-XXXX then rename.
    Status write(const std::string& path) const;

    /// JSON of the metadata, as stored under __metadata__ (string values).
    static std::string metadataJson(const TraceMetadata& m);

private:
    struct Entry {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        std::vector<std::byte> bytes;
    };
    TraceMetadata m_meta;
    std::vector<Entry> m_entries;
};

/// A tensor as the safetensors header lists it; its data offsets follow from the order.
struct TensorSpec {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
};

/// Writes a trace too large to build in memory. The header goes first (every tensor's offsets
/// follow from the shapes), then the tensors' data is written in place, in any order and from any
/// number of threads, into a temporary file beside `path`; commit() flushes it and renames it into
/// place. The file is byte for byte what TraceWriter writes for the same tensors. Destroying an
/// uncommitted writer removes the temporary file.
class TraceStreamWriter {
public:
    /// Creates the temporary file, sized for the whole trace, with its header. Fails, naming
    /// `path`, when a byte count overflows, a tensor exceeds the reader's default limit
    /// (OpenOptions::maxTensorBytes), the header exceeds the reader's limit, or the file would not
    /// fit in the free space of the target's filesystem.
    static Result<std::unique_ptr<TraceStreamWriter>> create(const std::string& path, const TraceMetadata& metadata,
                                                             std::vector<TensorSpec> tensors);
    ~TraceStreamWriter();
    TraceStreamWriter(const TraceStreamWriter&) = delete;
    TraceStreamWriter& operator=(const TraceStreamWriter&) = delete;

    /// Total file size (header and data).
    uint64_t fileSize() const;
    /// Converts `count` floats to tensor `tensor`'s dtype (as TraceWriter::addTensor does) and
    /// writes them from flat element `first`. Thread-safe for disjoint ranges.
    Status write(size_t tensor, int64_t first, const float* values, int64_t count);
    /// Flushes to disk and renames into place (atomic). The writer is finished afterwards.
    Status commit();

    struct Impl;

private:
    explicit TraceStreamWriter(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// Writes bytes to `path` atomically (temp file in the same directory, fsync, rename). The one
/// home of output writing: every writer (traces, images, figures, reports, exports) goes through
/// it or through TraceStreamWriter, which shares its temporary/commit steps. On any failure the
/// temporary is removed and an existing `path` is left as it was; errors name `path` and the
/// reason (a missing folder, a folder that cannot be written, a directory in the way, a full disk).
/// Test hook: with ATTNSCOPE_TEST_DISK_FULL=N in the environment no output file may grow past N
/// bytes (a write beyond fails with ENOSPC, as on a full disk); tests/core/tst_output_errors.
Status writeFileAtomic(const std::string& path, const void* data, size_t size);
Status writeFileAtomic(const std::string& path, const std::string& text);

/// Checks, before any work, that `path` can be written as a file: its folder exists and can be
/// written, and `path` is not a directory. Writers call it up front so that a long run does not
/// end in a refusal; writeFileAtomic checks the same things again when it writes.
Status checkOutputFile(const std::string& path);
/// The same for a folder of outputs (a report): `dir` exists as a folder and can be written.
Status checkOutputDirectory(const std::string& dir);

}  // namespace attnscope
