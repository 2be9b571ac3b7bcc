#pragma once
// Private state of an open trace, shared by the reader (trace_reader.cpp, trace_validate.cpp)
// and the accessors (trace_access.cpp).
#include <optional>
#include <string>
#include <vector>

#include "attnscope/json.h"
#include "attnscope/trace.h"

namespace attnscope {

/// Fixed names of the trace format (docs/trace-format.md).
namespace traceformat {
inline constexpr const char* kFormat = "attnscope.trace";
inline constexpr int kMinVersion = 1;
/// v2 adds the per-layer learned sinks tensor `layers.N.sinks` and the layer key `alibi_slopes`;
/// everything else is v1's.
inline constexpr int kSinksVersion = 2;
inline constexpr int kMaxVersion = 2;
inline constexpr const char* kMetadataKey = "__metadata__";
inline constexpr uint64_t kHeaderLengthBytes = 8;
/// safetensors' own reader refuses headers above 100 MB; so do we.
inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
/// Writers pad the header with spaces so the data section starts 8-byte aligned.
inline constexpr uint64_t kHeaderAlignment = 8;
}  // namespace traceformat

/// The memory mapping of a file, unmapped on destruction.
class MappedFile {
public:
    MappedFile() = default;
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    /// Maps `path` read-only. Errors name the file.
    Status open(const std::string& path);
    const std::byte* data() const { return m_data; }
    uint64_t size() const { return m_size; }
    /// Ok while the file is still what was mapped: same size and modification time (another
    /// program may truncate it or rewrite it in place while it is open). Errors name `path`,
    /// what changed and what to do.
    Status checkUnchanged(const std::string& path) const;

private:
    const std::byte* m_data = nullptr;
    uint64_t m_size = 0;
    int m_fd = -1;          ///< kept open to watch the file (fstat) for changes
    int64_t m_mtimeNs = 0;  ///< modification time at open
};

struct Trace::Impl {
    std::string path;
    uint64_t openId = 0;
    MappedFile file;
    const std::byte* dataSection = nullptr;
    uint64_t dataSize = 0;
    TraceMetadata meta;
    int64_t tokens = 0;
    std::vector<LayerTensors> layers;
    std::optional<TensorView> image;  ///< vision traces' input image (U8 [height, width, 3])
    bool hasQK = false;
    std::vector<NonFiniteCount> nonFinite;
    std::vector<std::string> warnings;
};

/// Parses and checks __metadata__ (all string values). `where` prefixes messages (the file).
Result<TraceMetadata> parseTraceMetadata(const Json& metadata, const std::string& where,
                                         std::vector<std::string>& warnings);

/// Parses one header entry (dtype, shape, data_offsets) into a view over the data section,
/// checking dtype, overflow, offsets and the shape × dtype byte count.
Result<TensorView> parseTensorEntry(const std::string& name, const Json& entry, const std::byte* dataSection,
                                    uint64_t dataSize, uint64_t maxTensorBytes, const std::string& where);

/// Checks offsets do not overlap, assigns tensors to layers, checks shapes against the metadata
/// and against each other (T), and the token count.
Status assembleLayers(std::vector<TensorView> tensors, Trace::Impl& impl);

/// Counts NaN and Inf of every tensor (reads the whole data section).
Status scanNonFinite(Trace::Impl& impl, const ProgressFn& progress);

/// "[2,100,64]"
std::string shapeString(const std::vector<int64_t>& shape);
/// Multiplies with overflow detection; false on overflow or a negative operand.
bool checkedMul(uint64_t a, uint64_t b, uint64_t& out);

/// Stores `count` floats as `dtype` (round-to-nearest-even for F16/BF16) into `out`.
void encodeValues(DType dtype, const float* values, size_t count, std::byte* out);
/// The JSON header (padded to kHeaderAlignment) listing `tensors` in order, tensor i taking
/// bytes[i] bytes of the data section.
std::string headerText(const TraceMetadata& metadata, const std::vector<TensorSpec>& tensors,
                       const std::vector<uint64_t>& bytes);
/// The little-endian header length that starts the file (kHeaderLengthBytes).
void putHeaderLength(uint64_t length, std::byte* out);

/// "PATH: what: strerror(err)" as an IoError.
Status ioError(const std::string& path, const std::string& what, int err);
/// Creates a fresh `path`.tmp-XXXXXXXX in the target's directory (so rename is atomic) for
/// writing; returns its descriptor and sets `tmp` to its name.
Result<int> createTempBeside(const std::string& path, std::string& tmp);
/// The ATTNSCOPE_TEST_DISK_FULL test hook (trace.h): the most bytes an output file may hold, or
/// UINT64_MAX when unset. Writers check it before each write and fail with ENOSPC past it.
uint64_t simulatedDiskLimit();
/// fsync, close and rename `tmp` over `path`, then fsync the directory; on failure `tmp` is
/// removed. Closes `fd` in every case.
Status commitTemp(int fd, const std::string& tmp, const std::string& path);

}  // namespace attnscope
