// Facts about building on the torch wheel that must keep holding (see CMakeLists.txt and the README's notes).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "aha/core/build_info.h"
#include "aha/io/file.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

std::string needed_libraries(const std::string& binary) {
  std::string out;
  FILE* p = popen(("readelf -d '" + binary + "' 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
    out.append(buf.data(), n);
  pclose(p);
  return out;
}

// The wheel's libtorch.so exports a std::filesystem that crashes when it wins symbol lookup; aha's link order
// keeps libstdc++'s in front. Without that, remove_all of a directory tree dies with SIGSEGV here.
TEST(Toolchain, StdFilesystemComesFromLibstdcxx) {
  const fs::path root = fs::temp_directory_path() / "aha_toolchain_fs";
  fs::remove_all(root);
  fs::create_directories(root / "a" / "b");
  aha::io::write_file_atomic((root / "a" / "b" / "f").string(), "x");
  EXPECT_EQ(fs::remove_all(root), 4u);
  EXPECT_FALSE(fs::exists(root));
}

// Binaries must load on machines without a GPU driver: nothing may depend on libcuda.so (the driver or its
// stub).
TEST(Toolchain, NoBinaryNeedsTheCudaDriver) {
  for (const char* binary : {AHA_LIB, AHA_CLI}) {
    const std::string needed = needed_libraries(binary);
    ASSERT_THAT(needed, HasSubstr("NEEDED")) << binary << ": " << needed;
    EXPECT_THAT(needed, Not(HasSubstr("libcuda.so"))) << binary;
  }
}

TEST(Toolchain, RunsWithoutAGpu) {
  const aha::BuildInfo b = aha::build_info();
  EXPECT_EQ(b.torch_version.substr(0, 6), "2.11.0");
  if (!b.cuda_available) {
    EXPECT_TRUE(b.gpus.empty());
  }
}

}  // namespace
