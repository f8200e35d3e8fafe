// The message of the aha::Error that `f` throws, or "(no error)" when it throws none: lets a test assert on
// what a user would read.
#pragma once

#include <functional>
#include <string>

#include "aha/core/error.h"

namespace aha::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const aha::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace aha::test
