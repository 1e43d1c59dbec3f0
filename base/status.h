// Status and Result<T>: errors as values.
//
// Every fallible call in trainrun returns a Status (or a Result<T> holding either a
// value or a non-ok Status). The message names the thing at fault: the field, file,
// rank or host. Only the launcher's main() turns a code into an exit code and words.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace trainrun {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad command line or flag value (exit 64)
  kInvalidJob,        // the job file is wrong (exit 65)
  kNotSupported,      // a valid request this build or version cannot do yet (exit 65)
  kNotFound,          // a file, run or object does not exist
  kAlreadyExists,     // a run id or file that must be new already exists
  kPermissionDenied,  // the OS or a service refused access
  kIoError,           // a local read or write failed
  kUnavailable,       // a peer, node or service cannot be reached (exit 69)
  kUploadFailed,      // outputs or logs did not reach run history (exit 74)
  kCanceled,          // stopped on request: trainrun got SIGTERM/SIGINT/SIGHUP (exit 143)
  kInternal,          // a bug or an impossible state (exit 70)
};

// A short lowercase name for a code, e.g. "invalid job".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns the same code with "context: message". Ok stays ok.
  Status WithContext(std::string_view context) const;

  // For places that have decided an error is only worth a log line.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status InvalidArgumentError(std::string message);
Status InvalidJobError(std::string message);
Status NotSupportedError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status IoError(std::string message);
Status UnavailableError(std::string message);
Status UploadFailedError(std::string message);
Status InternalError(std::string message);

// Turns an errno value into a Status: "what: strerror(err)". ENOENT becomes
// kNotFound, EACCES/EPERM kPermissionDenied, everything else kIoError.
Status ErrnoStatus(int err, std::string_view what);

// Result<T> holds a T or a non-ok Status. Constructing it from an ok Status is a
// bug and yields kInternal.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : data_(std::move(status)) {  // NOLINT
    if (std::get<Status>(data_).ok()) {
      data_ = Status(StatusCode::kInternal, "Result built from an ok Status");
    }
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(data_);
  }

  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace trainrun

#define TR_CONCAT_INNER(a, b) a##b
#define TR_CONCAT(a, b) TR_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when expr is not ok.
#define TR_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::trainrun::Status tr_status_ = (expr);  \
    if (!tr_status_.ok()) return tr_status_; \
  } while (false)

// TR_ASSIGN_OR_RETURN(auto x, MakeX()); returns the error, else binds the value.
#define TR_ASSIGN_OR_RETURN(lhs, expr)                                                        \
  auto TR_CONCAT(tr_result_, __LINE__) = (expr);                                              \
  if (!TR_CONCAT(tr_result_, __LINE__).ok()) return TR_CONCAT(tr_result_, __LINE__).status(); \
  lhs = std::move(TR_CONCAT(tr_result_, __LINE__)).value()
