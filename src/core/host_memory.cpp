#include "aha/core/host_memory.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace aha::core {

bool keep_freed_host_memory() {
  const char* choice = std::getenv("AHA_HOST_MALLOC");
  if (choice && std::strcmp(choice, "system") == 0) return false;
#if defined(__GLIBC__)
  // No mmap'd blocks (every block from the heap, reused after free) and no trimming of the heap's top.
  return mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max()) == 1;
#else
  return false;
#endif
}

}  // namespace aha::core
