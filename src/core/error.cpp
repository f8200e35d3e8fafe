#include "aha/core/error.h"

#include <cstring>

namespace aha::detail {

void throw_check_failure(const char* file, int line, const char* condition, const std::string& message) {
  // Keep only the path below the project root so messages read the same on every machine.
  const char* rel = file;
  for (const char* marker : {"/src/", "/include/", "/kernels/", "/tests/", "/examples/"}) {
    if (const char* p = std::strstr(file, marker)) {
      rel = p + 1;
      break;
    }
  }
  std::string text = message.empty() ? std::string("check failed") : message;
  throw Error(text + " (check `" + condition + "` failed at " + rel + ":" + std::to_string(line) + ")");
}

}  // namespace aha::detail
