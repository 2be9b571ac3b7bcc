#pragma once
// Error handling across the core API: no exceptions cross it. Every fallible function returns a
// Status or a Result<T> whose message names the file, the tensor or field, and what was expected.
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace attnscope {

enum class ErrorCode {
    Ok = 0,
    InvalidArgument,  ///< a caller passed something out of range
    IoError,          ///< open/read/write/rename failed
    Format,           ///< the file is not a valid trace (header, JSON, offsets, sizes)
    Shape,            ///< tensor shapes disagree with each other or with the metadata
    NumericValues,    ///< NaN/Inf where finite values are required
    Unsupported,      ///< valid but not handled (dtype, head dim, no GPU, no CUPTI…)
    OutOfMemory,      ///< host or device allocation failed
    Cancelled,        ///< the progress callback asked to stop
    Device,           ///< CUDA / CUPTI failure
    Internal,
};

const char* errorCodeName(ErrorCode code);

/// Success, or an error code with a human-readable message.
class [[nodiscard]] Status {
public:
    Status() = default;
    Status(ErrorCode code, std::string message) : m_code(code), m_message(std::move(message)) {}
    static Status success() { return {}; }

    bool ok() const { return m_code == ErrorCode::Ok; }
    explicit operator bool() const { return ok(); }
    ErrorCode code() const { return m_code; }
    const std::string& message() const { return m_message; }

private:
    ErrorCode m_code = ErrorCode::Ok;
    std::string m_message;
};

/// A value or the Status explaining why there is none.
///   Result<int> r = parse(x); if (!r) return r.status(); use(*r);
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_value(std::move(value)) {}
    Result(Status status) : m_status(std::move(status)) {}
    Result(ErrorCode code, std::string message) : m_status(code, std::move(message)) {}

    bool ok() const { return m_value.has_value(); }
    explicit operator bool() const { return ok(); }
    const Status& status() const { return m_status; }
    const std::string& message() const { return m_status.message(); }

    T& value() & { return *m_value; }
    const T& value() const& { return *m_value; }
    T&& value() && { return std::move(*m_value); }
    T& operator*() & { return *m_value; }
    const T& operator*() const& { return *m_value; }
    T* operator->() { return &*m_value; }
    const T* operator->() const { return &*m_value; }

private:
    std::optional<T> m_value;
    Status m_status;
};

}  // namespace attnscope
