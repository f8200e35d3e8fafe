// Errors: one exception type that carries where it was raised and what it is about.
//
// The library never exits or aborts: every failure is an aha::Error thrown with enough context (a file, a
// JSON path, a key, the offending value) for the user to fix the input without reading the source. AHA_CHECK
// builds the message only when the condition fails, so checks are cheap on hot paths.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace aha {

class Error : public std::runtime_error {
 public:
  // `what()` is the whole message; `context()` the part naming the input (file, JSON path, ...), may be
  // empty.
  explicit Error(std::string message, std::string context = {})
      : std::runtime_error(context.empty() ? message : context + ": " + message),
        message_(std::move(message)),
        context_(std::move(context)) {}

  const std::string& message() const noexcept { return message_; }
  const std::string& context() const noexcept { return context_; }

 private:
  std::string message_;
  std::string context_;
};

namespace detail {

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] void throw_check_failure(const char* file, int line, const char* condition,
                                      const std::string& message);

}  // namespace detail

// Concatenates its arguments with operator<< into one string.
template <class... Args>
std::string str(const Args&... args) {
  return detail::concat(args...);
}

}  // namespace aha

// Throws aha::Error("<message> (check `cond` failed at file:line)") when `cond` is false.
#define AHA_CHECK(cond, ...)                                                                  \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      ::aha::detail::throw_check_failure(__FILE__, __LINE__, #cond, ::aha::str(__VA_ARGS__)); \
    }                                                                                         \
  } while (0)

// Throws aha::Error with the concatenated message; for failures that are not a boolean check.
#define AHA_FAIL(...) throw ::aha::Error(::aha::str(__VA_ARGS__))
