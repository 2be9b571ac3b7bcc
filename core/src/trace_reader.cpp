// Trace::open: maps the file, reads only the header, and validates everything before use.
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapped_guard.h"
#include "trace_impl.h"

namespace attnscope {

MappedFile::~MappedFile() {
    if (m_data) munmap(const_cast<std::byte*>(m_data), m_size);
    if (m_fd >= 0) ::close(m_fd);
}

namespace {
int64_t mtimeNs(const struct stat& st) { return int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec; }
}  // namespace

Status MappedFile::checkUnchanged(const std::string& path) const {
    if (m_fd < 0) return Status::success();
    struct stat st {};
    if (fstat(m_fd, &st) != 0)
        return Status(ErrorCode::IoError, path + ": cannot stat the open file: " + std::strerror(errno));
    if (uint64_t(st.st_size) != m_size)
        return Status(ErrorCode::IoError, path + ": the file changed on disk after it was opened (" +
                                              std::to_string(m_size) + " bytes then, " + std::to_string(st.st_size) +
                                              " now: truncated or rewritten); reopen it");
    if (mtimeNs(st) != m_mtimeNs)
        return Status(ErrorCode::IoError, path +
                                              ": the file was modified on disk after it was opened (same size, "
                                              "new contents); reopen it");
    return Status::success();
}

Status MappedFile::open(const std::string& path) {
    // O_NONBLOCK: a FIFO or device given by mistake must not block open(); it is refused below.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return Status(ErrorCode::IoError, path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return Status(ErrorCode::IoError, path + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Status(ErrorCode::IoError, path + ": not a regular file");
    }
    m_size = uint64_t(st.st_size);
    if (m_size == 0) {  // mmap refuses empty files; the caller reports truncation
        ::close(fd);
        return Status::success();
    }
    // Read-only private mapping: the input file is never modified.
    void* p = mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    if (p == MAP_FAILED) {
        ::close(fd);
        m_size = 0;
        return Status(ErrorCode::IoError, path + ": cannot memory-map: " + std::strerror(err));
    }
    m_data = static_cast<const std::byte*>(p);
    m_fd = fd;  // kept to notice a file truncated or rewritten while open
    m_mtimeNs = mtimeNs(st);
    return Status::success();
}

namespace {

Result<DType> parseDType(const std::string& name, const std::string& s, const std::string& where) {
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::U8})
        if (s == dtypeName(t)) return t;
    return Status(ErrorCode::Unsupported, where + ": tensor " + name + ": dtype '" + s +
                                              "' is not supported (expected " +
                                              (name == kImageTensorName ? "U8" : "F32, F16 or BF16") + ")");
}

/// A non-negative integer that fits a double exactly (shape entries, offsets).
bool readUInt(const Json& v, uint64_t& out) {
    constexpr double kMaxExact = 9007199254740992.0;  // 2^53
    if (!v.isNumber()) return false;
    const double d = v.asNumber();
    if (!std::isfinite(d) || d < 0 || d > kMaxExact || d != std::floor(d)) return false;
    out = uint64_t(d);
    return true;
}

}  // namespace

Result<TensorView> parseTensorEntry(const std::string& name, const Json& entry, const std::byte* dataSection,
                                    uint64_t dataSize, uint64_t maxTensorBytes, const std::string& where) {
    const std::string tensor = where + ": tensor " + name + ": ";
    if (!entry.isObject()) return Status(ErrorCode::Format, tensor + "header entry must be an object");
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype || !dtype->isString()) return Status(ErrorCode::Format, tensor + "missing string field 'dtype'");
    if (!shape || !shape->isArray()) return Status(ErrorCode::Format, tensor + "missing array field 'shape'");
    if (!offsets || !offsets->isArray() || offsets->size() != 2)
        return Status(ErrorCode::Format, tensor + "field 'data_offsets' must be an array [begin,end]");

    TensorView view;
    view.name = name;
    auto dt = parseDType(name, dtype->asString(), where);
    if (!dt) return dt.status();
    view.dtype = *dt;

    // numel and bytes with overflow checks: a hostile shape like [2^40,2^40,8] must not wrap.
    uint64_t bytes = dtypeSize(view.dtype);
    for (const Json& d : shape->asArray()) {
        uint64_t n = 0;
        if (!readUInt(d, n))
            return Status(ErrorCode::Format, tensor + "shape entry " + d.dump() + " is not a non-negative integer");
        view.shape.push_back(int64_t(n));
    }
    for (const int64_t n : view.shape)
        if (!checkedMul(bytes, uint64_t(n), bytes))
            return Status(ErrorCode::Format, tensor + "shape " + shapeString(view.shape) + " × " +
                                                 dtypeName(view.dtype) + " overflows a 64-bit byte count");
    if (bytes > maxTensorBytes)
        return Status(ErrorCode::Format, tensor + "shape " + shapeString(view.shape) + " × " + dtypeName(view.dtype) +
                                             " claims " + std::to_string(bytes) + " bytes, more than the limit of " +
                                             std::to_string(maxTensorBytes));

    uint64_t begin = 0, end = 0;
    if (!readUInt(offsets->asArray()[0], begin) || !readUInt(offsets->asArray()[1], end) || begin > end)
        return Status(ErrorCode::Format, tensor + "data_offsets " + offsets->dump() +
                                             " must be non-negative integers [begin,end] with begin <= end");
    if (end > dataSize)
        return Status(ErrorCode::Format, tensor + "data_offsets [" + std::to_string(begin) + "," + std::to_string(end) +
                                             "] run past the end of the data section (" + std::to_string(dataSize) +
                                             " bytes)");
    if (end - begin != bytes)
        return Status(ErrorCode::Format, tensor + "shape " + shapeString(view.shape) + " × " + dtypeName(view.dtype) +
                                             " needs " + std::to_string(bytes) + " bytes but data_offsets span " +
                                             std::to_string(end - begin));
    view.offset = begin;
    view.bytes = bytes;
    view.data = dataSection ? dataSection + begin : nullptr;
    return view;
}

namespace {

Status truncatedWhileOpen(const std::string& path) {
    return Status(ErrorCode::IoError, path + ": the file was truncated while it was being read; reopen it");
}

/// A file that is no trace at all (a PNG, a text file, a model's weights) says so first, then why.
Status notATrace(const std::string& path, const std::string& why) {
    return Status(ErrorCode::Format, path + ": not an attnscope trace (.attn.safetensors): " + why);
}

/// Reads the header length and the header JSON; fills the data section of `impl`.
Result<Json> readHeader(Trace::Impl& impl) {
    using namespace traceformat;
    const std::string& where = impl.path;
    const uint64_t size = impl.file.size();
    if (size < kHeaderLengthBytes)
        return notATrace(where, "the file is truncated: " + std::to_string(size) +
                                    " bytes, but a trace starts with an 8-byte header length");
    // Copied out of the mapping under the guard: the file may be truncated while it opens.
    std::byte lengthBytes[kHeaderLengthBytes];
    std::byte firstHeaderByte{0};
    if (!detail::guarded([&] {
            std::memcpy(lengthBytes, impl.file.data(), kHeaderLengthBytes);
            if (size > kHeaderLengthBytes) firstHeaderByte = impl.file.data()[kHeaderLengthBytes];
        }))
        return truncatedWhileOpen(where);
    uint64_t headerLength = 0;
    for (uint64_t i = 0; i < kHeaderLengthBytes; ++i)  // little-endian, independent of the host
        headerLength |= uint64_t(std::to_integer<uint8_t>(lengthBytes[i])) << (8 * i);
    // A safetensors header is a JSON object: a file whose header does not open with '{' is some
    // other kind of file, not a damaged trace.
    const bool looksLikeSafetensors = std::to_integer<char>(firstHeaderByte) == '{' && headerLength <= kMaxHeaderBytes;
    if (headerLength > size - kHeaderLengthBytes) {
        const std::string detail = "header length " + std::to_string(headerLength) +
                                   " runs past the end of the file (" + std::to_string(size) + " bytes)";
        if (!looksLikeSafetensors) return notATrace(where, "not a safetensors file: its " + detail);
        return Status(ErrorCode::Format, where + ": " + detail + ": the file is truncated");
    }
    if (headerLength > kMaxHeaderBytes)
        return notATrace(where, "header length " + std::to_string(headerLength) + " exceeds the limit of " +
                                    std::to_string(kMaxHeaderBytes) + " bytes");
    std::string text(headerLength, '\0');
    if (!detail::guarded([&] { std::memcpy(text.data(), impl.file.data() + kHeaderLengthBytes, headerLength); }))
        return truncatedWhileOpen(where);
    if (!looksLikeSafetensors)
        return notATrace(where, "not a safetensors file: the header after the 8-byte length is not a JSON object");
    auto header = Json::parse(text, where + ": header");
    if (!header) return header.status();
    if (!header->isObject()) return Status(ErrorCode::Format, where + ": header must be a JSON object");
    impl.dataSection = impl.file.data() + kHeaderLengthBytes + headerLength;
    impl.dataSize = size - kHeaderLengthBytes - headerLength;
    return header;
}

Status openInto(Trace::Impl& impl, const OpenOptions& options, const ProgressFn& progress) {
    if (Status st = impl.file.open(impl.path); !st) return st;
    auto header = readHeader(impl);
    if (!header) return header.status();

    const Json* meta = header->find(traceformat::kMetadataKey);
    if (!meta)
        return notATrace(impl.path,
                         "a safetensors file without __metadata__ (model weights?); a trace's header has "
                         "__metadata__ with format \"" +
                             std::string(traceformat::kFormat) + "\"");
    auto parsed = parseTraceMetadata(*meta, impl.path, impl.warnings);
    if (!parsed) return parsed.status();
    impl.meta = std::move(*parsed);

    std::vector<TensorView> tensors;
    for (const auto& [name, entry] : header->asObject()) {
        if (name == traceformat::kMetadataKey) continue;
        auto view = parseTensorEntry(name, entry, impl.dataSection, impl.dataSize, options.maxTensorBytes, impl.path);
        if (!view) return view.status();
        tensors.push_back(std::move(*view));
    }
    if (Status st = assembleLayers(std::move(tensors), impl); !st) return st;
    if (options.scanValues) return scanNonFinite(impl, progress);
    return Status::success();
}

}  // namespace

Trace::Trace(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Trace::~Trace() = default;

Result<std::shared_ptr<const Trace>> Trace::open(const std::string& path, const OpenOptions& options,
                                                 const ProgressFn& progress) {
    static std::atomic<uint64_t> nextOpenId{1};
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->openId = nextOpenId++;
    if (Status st = openInto(*impl, options, progress); !st) return st;
    return std::shared_ptr<const Trace>(new Trace(std::move(impl)));
}

}  // namespace attnscope
