// TraceWriter (safetensors layout) and atomic file writes.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <fcntl.h>
#include <filesystem>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "trace_impl.h"

namespace attnscope {

void encodeValues(DType dtype, const float* values, size_t count, std::byte* out) {
    switch (dtype) {
    case DType::F32:
        if (count) std::memcpy(out, values, count * sizeof(float));
        break;
    case DType::F16:
        for (size_t i = 0; i < count; ++i) {
            const uint16_t h = half::floatToF16(values[i]);
            std::memcpy(out + 2 * i, &h, 2);
        }
        break;
    case DType::BF16:
        for (size_t i = 0; i < count; ++i) {
            const uint16_t b = half::floatToBf16(values[i]);
            std::memcpy(out + 2 * i, &b, 2);
        }
        break;
    case DType::U8:  // image bytes: rounded and clamped to 0..255
        for (size_t i = 0; i < count; ++i) {
            const float v = std::isnan(values[i]) ? 0.0f : std::clamp(values[i], 0.0f, 255.0f);
            out[i] = std::byte(uint8_t(std::lround(v)));
        }
        break;
    }
}

std::string headerText(const TraceMetadata& metadata, const std::vector<TensorSpec>& tensors,
                       const std::vector<uint64_t>& bytes) {
    using namespace traceformat;
    Json header = Json::object();
    // __metadata__ is stored as an object of strings; metadataJson gives it as text.
    auto meta = Json::parse(TraceWriter::metadataJson(metadata), "metadata");
    header.set(kMetadataKey, meta ? *meta : Json::object());
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const TensorSpec& t = tensors[i];
        Json shape = Json::array();
        for (int64_t d : t.shape) shape.push(d);
        Json entry = Json::object();
        entry.set("dtype", dtypeName(t.dtype));
        entry.set("shape", std::move(shape));
        entry.set("data_offsets", Json(Json::Array{Json(offset), Json(offset + bytes[i])}));
        header.set(t.name, std::move(entry));
        offset += bytes[i];
    }
    std::string text = header.dump();
    // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
    const uint64_t padded = (text.size() + kHeaderAlignment - 1) / kHeaderAlignment * kHeaderAlignment;
    text.resize(padded, ' ');
    return text;
}

void putHeaderLength(uint64_t length, std::byte* out) {
    for (uint64_t i = 0; i < traceformat::kHeaderLengthBytes; ++i) out[i] = std::byte((length >> (8 * i)) & 0xFF);
}

TraceWriter::TraceWriter(TraceMetadata metadata) : m_meta(std::move(metadata)) {}

void TraceWriter::addTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                            const std::vector<float>& values) {
    // A shape/values mismatch is written as given: the reader then rejects the file with the
    // shape × dtype error, rather than the writer silently padding or truncating.
    std::vector<std::byte> bytes(values.size() * dtypeSize(dtype));
    encodeValues(dtype, values.data(), values.size(), bytes.data());
    m_entries.push_back({std::move(name), dtype, std::move(shape), std::move(bytes)});
}

void TraceWriter::addRawTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                               std::vector<std::byte> bytes) {
    m_entries.push_back({std::move(name), dtype, std::move(shape), std::move(bytes)});
}

void TraceWriter::addImage(int width, int height, std::vector<uint8_t> rgb) {
    std::vector<std::byte> bytes(rgb.size());
    if (!rgb.empty()) std::memcpy(bytes.data(), rgb.data(), rgb.size());
    addRawTensor(kImageTensorName, DType::U8, {height, width, 3}, std::move(bytes));
}

namespace {

/// Stacks per-head [T,d] matrices into one [heads,T,d] buffer.
std::vector<float> stackHeads(const std::vector<MatrixRM>& heads, std::vector<int64_t>& shape) {
    const int64_t rows = heads.empty() ? 0 : heads.front().rows();
    const int64_t cols = heads.empty() ? 0 : heads.front().cols();
    shape = {int64_t(heads.size()), rows, cols};
    std::vector<float> values;
    values.reserve(size_t(heads.size() * rows * cols));
    for (const MatrixRM& h : heads) values.insert(values.end(), h.data(), h.data() + h.size());
    return values;
}

}  // namespace

void TraceWriter::addLayer(int layer, DType dtype, const std::vector<MatrixRM>& q, const std::vector<MatrixRM>& k,
                           const std::vector<MatrixRM>& v) {
    const std::string prefix = "layers." + std::to_string(layer) + ".";
    for (auto [slot, heads] : {std::pair{"q", &q}, std::pair{"k", &k}, std::pair{"v", &v}}) {
        std::vector<int64_t> shape;
        std::vector<float> values = stackHeads(*heads, shape);
        addTensor(prefix + slot, dtype, std::move(shape), values);
    }
}

std::vector<std::byte> TraceWriter::serialize() const {
    using namespace traceformat;
    // Learned sinks travel in LayerConfig; they are stored as layers.i.sinks [heads] F32.
    std::vector<Entry> entries = m_entries;
    for (size_t i = 0; i < m_meta.layers.size(); ++i) {
        const std::vector<float>& sinks = m_meta.layers[i].sinks;
        const std::string name = "layers." + std::to_string(i) + ".sinks";
        if (sinks.empty() ||
            std::any_of(entries.begin(), entries.end(), [&](const Entry& e) { return e.name == name; }))
            continue;
        std::vector<std::byte> bytes(sinks.size() * sizeof(float));
        encodeValues(DType::F32, sinks.data(), sinks.size(), bytes.data());
        entries.push_back({name, DType::F32, {int64_t(sinks.size())}, std::move(bytes)});
    }
    std::vector<TensorSpec> specs;
    std::vector<uint64_t> sizes;
    uint64_t dataBytes = 0;
    for (const Entry& e : entries) {
        specs.push_back({e.name, e.dtype, e.shape});
        sizes.push_back(e.bytes.size());
        dataBytes += e.bytes.size();
    }
    const std::string text = headerText(m_meta, specs, sizes);
    std::vector<std::byte> out(kHeaderLengthBytes + text.size() + dataBytes);
    putHeaderLength(text.size(), out.data());
    std::memcpy(out.data() + kHeaderLengthBytes, text.data(), text.size());
    std::byte* data = out.data() + kHeaderLengthBytes + text.size();
    for (const Entry& e : entries) {
        if (!e.bytes.empty()) std::memcpy(data, e.bytes.data(), e.bytes.size());
        data += e.bytes.size();
    }
    return out;
}

Status TraceWriter::write(const std::string& path) const {
    const std::vector<std::byte> bytes = serialize();
    return writeFileAtomic(path, bytes.data(), bytes.size());
}

Status ioError(const std::string& path, const std::string& what, int err) {
    return Status(ErrorCode::IoError, path + ": " + what + ": " + std::strerror(err));
}

uint64_t simulatedDiskLimit() {
    const char* v = std::getenv("ATTNSCOPE_TEST_DISK_FULL");
    if (!v || !*v) return std::numeric_limits<uint64_t>::max();
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    return end && *end == 0 ? uint64_t(n) : std::numeric_limits<uint64_t>::max();
}

namespace {

/// Writes all of [p, p + size) at the file's current position `offset` (counting from 0).
bool writeAll(int fd, const char* p, size_t size) {
    const uint64_t limit = simulatedDiskLimit();
    uint64_t offset = 0;
    while (size > 0) {
        size_t chunk = size;
        if (offset + chunk > limit) {
            if (offset >= limit) {
                errno = ENOSPC;
                return false;
            }
            chunk = size_t(limit - offset);
        }
        const ssize_t n = ::write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += n;
        size -= size_t(n);
        offset += uint64_t(n);
    }
    return true;
}

std::string folderOf(const std::string& path) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    return dir.empty() ? std::string(".") : dir.string();
}

/// Why a file cannot be created in `dir` (errno `err` from open), in words naming the folder.
Status folderError(const std::string& path, int err) {
    const std::string dir = folderOf(path);
    if (err == ENOENT || err == ENOTDIR)
        return Status(ErrorCode::IoError, path + ": cannot write: the folder " + dir + " does not exist");
    if (err == EACCES || err == EPERM || err == EROFS) return ioError(path, "cannot write in the folder " + dir, err);
    return ioError(path, "cannot create a file in the folder " + dir, err);
}

}  // namespace

Result<int> createTempBeside(const std::string& path, std::string& tmp) {
    constexpr int kMaxNameAttempts = 100;
    constexpr mode_t kFileMode = 0666;  // reduced by the umask, like any new file
    // The temporary lives in the target's directory so that rename() is atomic (same filesystem).
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return Status(ErrorCode::IoError, path + ": cannot write: it is a directory (give a file name)");
    std::random_device rd;
    for (int attempt = 0; attempt < kMaxNameAttempts; ++attempt) {
        char suffix[16];
        std::snprintf(suffix, sizeof suffix, ".tmp-%08x", unsigned(rd()));
        tmp = path + suffix;
        const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
        if (fd >= 0) return fd;
        if (errno != EEXIST) return folderError(path, errno);
    }
    return ioError(path, "cannot create a temporary file", EEXIST);
}

Status checkOutputFile(const std::string& path) {
    if (path.empty()) return Status(ErrorCode::InvalidArgument, "no output file name given");
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return Status(ErrorCode::IoError, path + ": cannot write: it is a directory (give a file name)");
    const std::string dir = folderOf(path);
    if (!std::filesystem::exists(dir, ec)) return folderError(path, ENOENT);
    if (!std::filesystem::is_directory(dir, ec)) return folderError(path, ENOTDIR);
    if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0) return folderError(path, errno);
    return Status::success();
}

Status checkOutputDirectory(const std::string& dir) {
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec))
        return Status(ErrorCode::IoError, dir + ": cannot write: the folder does not exist");
    if (!std::filesystem::is_directory(dir, ec))
        return Status(ErrorCode::IoError, dir + ": cannot write: it exists and is not a folder");
    if (::faccessat(AT_FDCWD, dir.c_str(), W_OK | X_OK, AT_EACCESS) != 0)
        return ioError(dir, "cannot write in the folder", errno);
    return Status::success();
}

Status commitTemp(int fd, const std::string& tmp, const std::string& path) {
    namespace fs = std::filesystem;
    if (::fsync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return ioError(path, "cannot flush to disk", err);
    }
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return ioError(path, "cannot close", err);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        if (err == EISDIR || err == ENOTEMPTY || err == EEXIST)
            return Status(ErrorCode::IoError, path + ": cannot write: it is a directory (give a file name)");
        return ioError(path, "cannot rename " + tmp + " into place", err);
    }
    // Make the rename itself durable; failure here does not undo the write, so it is not an error.
    const fs::path dir = fs::path(path).parent_path();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return Status::success();
}

Status writeFileAtomic(const std::string& path, const void* data, size_t size) {
    std::string tmp;
    auto fd = createTempBeside(path, tmp);
    if (!fd) return fd.status();
    if (!writeAll(*fd, static_cast<const char*>(data), size)) {
        const int err = errno;
        ::close(*fd);
        ::unlink(tmp.c_str());
        return ioError(path, "cannot write", err);
    }
    return commitTemp(*fd, tmp, path);
}

Status writeFileAtomic(const std::string& path, const std::string& text) {
    return writeFileAtomic(path, text.data(), text.size());
}

}  // namespace attnscope
