#include "aha/core/host_memory.h"

#include <gtest/gtest.h>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace {

#if defined(__GLIBC__)
// How many more blocks glibc holds as their own mmap while a 64 MB block is live.
size_t mmaps_for_a_large_block() {
  const size_t before = mallinfo2().hblks;
  void* volatile p = std::malloc(64 << 20);  // volatile: the compiler may not drop the pair
  const size_t during = mallinfo2().hblks;
  std::free(p);
  return during - before;
}

TEST(HostMemory, LargeBlocksComeFromTheHeapAfterTheCallUnlessTheEnvironmentSaysSystem) {
  ASSERT_EQ(mmaps_for_a_large_block(), 1u) << "glibc's default: a fresh mmap per large block";
  ::setenv("AHA_HOST_MALLOC", "system", 1);
  EXPECT_FALSE(aha::core::keep_freed_host_memory());
  EXPECT_EQ(mmaps_for_a_large_block(), 1u);
  ::unsetenv("AHA_HOST_MALLOC");
  EXPECT_TRUE(aha::core::keep_freed_host_memory());
  EXPECT_EQ(mmaps_for_a_large_block(), 0u);
}
#endif

}  // namespace
