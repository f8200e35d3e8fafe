#include "aha/core/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "aha/io/file.h"

using ::testing::HasSubstr;
using ::testing::Not;

namespace {

struct LogState {
  aha::log::Level saved = aha::log::level();
  LogState() { aha::log::set_console(false); }
  ~LogState() {
    aha::log::close_file();
    aha::log::set_level(saved);
    aha::log::set_console(true);
  }
};

TEST(Log, ParsesAndNamesLevels) {
  EXPECT_EQ(aha::log::parse_level("debug"), aha::log::Level::debug);
  EXPECT_EQ(aha::log::level_name(aha::log::Level::warn), "warn");
  try {
    aha::log::parse_level("loud");
    FAIL();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("\"loud\""));
  }
}

TEST(Log, FileSinkReceivesMessagesAtOrAboveTheLevel) {
  LogState state;
  const auto path = (std::filesystem::temp_directory_path() / "aha_test_log.txt").string();
  std::filesystem::remove(path);
  aha::log::set_level(aha::log::Level::info);
  aha::log::open_file(path);
  aha::log::debug("hidden debug ", 1);
  aha::log::info("step ", 3, " reward ", 0.5);
  aha::log::warn("careful");
  aha::log::close_file();
  aha::log::info("after close");
  const std::string text = aha::io::read_file(path);
  EXPECT_THAT(text, HasSubstr("step 3 reward 0.5"));
  EXPECT_THAT(text, HasSubstr("warn"));
  EXPECT_THAT(text, HasSubstr("careful"));
  EXPECT_THAT(text, Not(HasSubstr("hidden debug")));
  EXPECT_THAT(text, Not(HasSubstr("after close")));
  std::filesystem::remove(path);
}

TEST(Log, OffSilencesEverything) {
  LogState state;
  const auto path = (std::filesystem::temp_directory_path() / "aha_test_log_off.txt").string();
  std::filesystem::remove(path);
  aha::log::open_file(path);
  aha::log::set_level(aha::log::Level::off);
  aha::log::error("nothing");
  aha::log::close_file();
  EXPECT_EQ(aha::io::read_file(path), "");
  std::filesystem::remove(path);
}

TEST(Log, UnwritableFileIsAnErrorNamingThePath) {
  LogState state;
  // A regular file where a directory should be: no sink can be opened below it.
  const auto parent = (std::filesystem::temp_directory_path() / "aha_test_log_parent").string();
  aha::io::write_file_atomic(parent, "");
  const std::string path = parent + "/aha.log";
  try {
    aha::log::open_file(path);
    FAIL();
  } catch (const aha::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
  }
}

}  // namespace
