// TraceStreamWriter: a trace written in place, tensor piece by tensor piece, for files too large to
// build in memory (real model sizes: 13 GB for 32 layers of a Llama-3-8B shape at 32k tokens).
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <unistd.h>

#include "trace_impl.h"

namespace attnscope {

struct TraceStreamWriter::Impl {
    std::string path, tmp;
    int fd = -1;
    std::vector<TensorSpec> tensors;
    std::vector<uint64_t> fileOffsets;  ///< where each tensor's data starts in the file
    std::vector<uint64_t> elements;     ///< each tensor's element count
    uint64_t fileSize = 0;
};

namespace {

/// "12.9 GB (12884901888 bytes)": sizes a person can read, with the exact count.
std::string sizeText(uint64_t bytes) {
    const bool tera = bytes >= uint64_t(1'000'000'000'000);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s (%llu bytes)", double(bytes) / (tera ? 1e12 : 1e9), tera ? "TB" : "GB",
                  static_cast<unsigned long long>(bytes));
    return buf;
}

bool pwriteAll(int fd, const std::byte* p, uint64_t size, uint64_t offset) {
    const uint64_t limit = simulatedDiskLimit();  // the full-disk test hook (trace.h)
    while (size > 0) {
        uint64_t chunk = size;
        if (offset + chunk > limit) {
            if (offset >= limit) {
                errno = ENOSPC;
                return false;
            }
            chunk = limit - offset;
        }
        const ssize_t n = ::pwrite(fd, p, size_t(chunk), off_t(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += n;
        size -= uint64_t(n);
        offset += uint64_t(n);
    }
    return true;
}

}  // namespace

TraceStreamWriter::TraceStreamWriter(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

TraceStreamWriter::~TraceStreamWriter() {
    if (m_impl->fd >= 0) {
        ::close(m_impl->fd);
        ::unlink(m_impl->tmp.c_str());
    }
}

Result<std::unique_ptr<TraceStreamWriter>> TraceStreamWriter::create(const std::string& path,
                                                                     const TraceMetadata& metadata,
                                                                     std::vector<TensorSpec> tensors) {
    using namespace traceformat;
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    for (size_t i = 0; i < metadata.layers.size(); ++i) {
        const std::string name = "layers." + std::to_string(i) + ".sinks";
        if (!metadata.layers[i].sinks.empty() &&
            std::none_of(tensors.begin(), tensors.end(), [&](const TensorSpec& t) { return t.name == name; }))
            return Status(ErrorCode::InvalidArgument, path + ": layer " + std::to_string(i) +
                                                          " has learned sinks but the tensors list no " + name +
                                                          " (write its logits like any other tensor)");
    }
    const uint64_t tensorLimit = OpenOptions{}.maxTensorBytes;
    std::vector<uint64_t> bytes;
    uint64_t dataBytes = 0;
    for (const TensorSpec& t : tensors) {
        uint64_t n = 1;
        for (int64_t d : t.shape)
            if (d < 0 || !checkedMul(n, uint64_t(d), n))
                return Status(ErrorCode::InvalidArgument, path + ": tensor " + t.name + ": shape " +
                                                              shapeString(t.shape) + " overflows a 64-bit count");
        uint64_t b = 0;
        if (!checkedMul(n, dtypeSize(t.dtype), b) || b > tensorLimit)
            return Status(ErrorCode::InvalidArgument, path + ": tensor " + t.name + ": shape " + shapeString(t.shape) +
                                                          " × " + dtypeName(t.dtype) + " would exceed the reader's " +
                                                          "limit of " + sizeText(tensorLimit) + " per tensor");
        if (dataBytes > std::numeric_limits<uint64_t>::max() - b)
            return Status(ErrorCode::InvalidArgument, path + ": the tensors overflow a 64-bit byte count");
        dataBytes += b;
        bytes.push_back(b);
        impl->elements.push_back(n);
    }
    const std::string header = headerText(metadata, tensors, bytes);
    if (header.size() > kMaxHeaderBytes)
        return Status(ErrorCode::InvalidArgument, path + ": the header would be " + std::to_string(header.size()) +
                                                      " bytes, above the reader's limit of " +
                                                      std::to_string(kMaxHeaderBytes) + " (too many tokens)");
    const uint64_t dataStart = kHeaderLengthBytes + header.size();
    if (dataBytes > uint64_t(std::numeric_limits<off_t>::max()) - dataStart)
        return Status(ErrorCode::InvalidArgument,
                      path + ": " + sizeText(dataBytes) + " of tensors exceed a file offset");
    impl->fileSize = dataStart + dataBytes;
    uint64_t offset = dataStart;
    for (uint64_t b : bytes) {
        impl->fileOffsets.push_back(offset);
        offset += b;
    }

    // Refuse up front rather than fail with ENOSPC gigabytes later.
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(path).parent_path();
    std::error_code ec;
    const fs::space_info space = fs::space(dir.empty() ? fs::path(".") : dir, ec);
    if (!ec && space.available < impl->fileSize)
        return Status(ErrorCode::IoError, path + ": the trace needs " + sizeText(impl->fileSize) + " but only " +
                                              sizeText(space.available) + " are free there");

    auto fd = createTempBeside(path, impl->tmp);
    if (!fd) return fd.status();
    impl->fd = *fd;
    impl->tensors = std::move(tensors);
    std::unique_ptr<TraceStreamWriter> writer(new TraceStreamWriter(std::move(impl)));
    Impl& w = *writer->m_impl;
    if (::ftruncate(w.fd, off_t(w.fileSize)) != 0)
        return ioError(path, "cannot size " + w.tmp + " to " + sizeText(w.fileSize), errno);
    std::vector<std::byte> head(dataStart);
    putHeaderLength(header.size(), head.data());
    std::memcpy(head.data() + kHeaderLengthBytes, header.data(), header.size());
    if (!pwriteAll(w.fd, head.data(), head.size(), 0)) return ioError(path, "cannot write the header", errno);
    return writer;
}

uint64_t TraceStreamWriter::fileSize() const { return m_impl->fileSize; }

Status TraceStreamWriter::write(size_t tensor, int64_t first, const float* values, int64_t count) {
    const Impl& w = *m_impl;
    if (w.fd < 0) return Status(ErrorCode::InvalidArgument, w.path + ": write after commit");
    if (tensor >= w.tensors.size() || first < 0 || count < 0 || uint64_t(first) > w.elements[tensor] ||
        uint64_t(count) > w.elements[tensor] - uint64_t(first))
        return Status(
            ErrorCode::InvalidArgument,
            w.path + ": elements [" + std::to_string(first) + ", +" + std::to_string(count) + ") outside " +
                (tensor < w.tensors.size() ? "tensor " + w.tensors[tensor].name : std::string("the tensors")));
    const DType dtype = w.tensors[tensor].dtype;
    const size_t esize = dtypeSize(dtype);
    thread_local std::vector<std::byte> encoded;
    encoded.resize(size_t(count) * esize);
    encodeValues(dtype, values, size_t(count), encoded.data());
    if (!pwriteAll(w.fd, encoded.data(), encoded.size(), w.fileOffsets[tensor] + uint64_t(first) * esize))
        return ioError(w.path, "cannot write tensor " + w.tensors[tensor].name + " to " + w.tmp, errno);
    return Status::success();
}

Status TraceStreamWriter::commit() {
    Impl& w = *m_impl;
    if (w.fd < 0) return Status(ErrorCode::InvalidArgument, w.path + ": already committed");
    const int fd = w.fd;
    w.fd = -1;  // commitTemp closes it (and removes the temporary on failure)
    return commitTemp(fd, w.tmp, w.path);
}

}  // namespace attnscope
