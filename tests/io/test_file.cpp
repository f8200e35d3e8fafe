#include "aha/io/file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "aha/core/error.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

fs::path temp_dir(const char* name) {
  auto d = fs::temp_directory_path() / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(File, WriteAtomicThenRead) {
  auto d = temp_dir("aha_test_file_rw");
  const std::string data("abc\0def", 7);
  aha::io::write_file_atomic((d / "x.bin").string(), data);
  EXPECT_EQ(aha::io::read_file((d / "x.bin").string()), data);
  aha::io::write_file_atomic((d / "x.bin").string(), "replaced");
  EXPECT_EQ(aha::io::read_file((d / "x.bin").string()), "replaced");
  // No temporary files left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
}

TEST(File, AbandonedAtomicFileLeavesTheOldVersion) {
  auto d = temp_dir("aha_test_file_abandon");
  const auto path = (d / "ckpt").string();
  aha::io::write_file_atomic(path, "old");
  {
    aha::io::AtomicFile f(path);
    f.write("new, half written");
    // destroyed without commit(), as when an exception unwinds a save
  }
  EXPECT_EQ(aha::io::read_file(path), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
}

TEST(File, MissingFileErrorNamesThePath) {
  try {
    aha::io::read_file("/no/such/file.json");
    FAIL();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/no/such/file.json"));
    EXPECT_THAT(e.what(), HasSubstr("No such file"));
  }
  EXPECT_THROW(aha::io::read_file(fs::temp_directory_path().string()), aha::Error);
}

TEST(File, MappedFileIsCopyOnWrite) {
  auto d = temp_dir("aha_test_file_map");
  const auto path = (d / "m.bin").string();
  aha::io::write_file_atomic(path, "hello");
  {
    auto m = aha::io::MappedFile::open(path);
    ASSERT_EQ(m->size(), 5u);
    EXPECT_EQ(std::memcmp(m->bytes().data(), "hello", 5), 0);
    std::memcpy(m->bytes().data(), "HELLO", 5);  // private mapping: the file must not change
  }
  EXPECT_EQ(aha::io::read_file(path), "hello");
  aha::io::write_file_atomic(path, "");
  EXPECT_EQ(aha::io::MappedFile::open(path)->size(), 0u);
}

TEST(File, MakeDirsCreatesParents) {
  auto d = temp_dir("aha_test_file_dirs");
  aha::io::make_dirs((d / "a/b/c").string());
  EXPECT_TRUE(fs::is_directory(d / "a/b/c"));
  aha::io::make_dirs((d / "a/b/c").string());  // idempotent
}

}  // namespace
