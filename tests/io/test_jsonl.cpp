#include "aha/io/jsonl.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "aha/io/file.h"

namespace fs = std::filesystem;
using ::testing::HasSubstr;

namespace {

std::string temp_file(const char* name, std::string_view content) {
  auto p = (fs::temp_directory_path() / name).string();
  aha::io::write_file_atomic(p, content);
  return p;
}

std::string error_of(const std::string& path) {
  try {
    aha::io::read_jsonl(path);
  } catch (const aha::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Jsonl, ReadsRecordsWithLineNumbersSkippingBlankLines) {
  auto p = temp_file("aha_jsonl_ok.jsonl", "{\"a\": 1}\n\n   \n{\"a\": 2, \"s\": \"\xC3\xA9\"}\r\n[3]");
  auto records = aha::io::read_jsonl(p);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[0].value["a"], 1);
  EXPECT_EQ(records[1].line, 4);
  EXPECT_EQ(records[1].value["s"], "\xC3\xA9");
  EXPECT_EQ(records[2].line, 5);
  EXPECT_TRUE(records[2].value.is_array());
}

TEST(Jsonl, SyntaxErrorNamesFileAndLine) {
  auto p = temp_file("aha_jsonl_bad.jsonl", "{\"a\": 1}\n{\"a\": }\n");
  const std::string e = error_of(p);
  EXPECT_THAT(e, HasSubstr(p + ":2:"));
  EXPECT_THAT(e, HasSubstr("invalid JSON"));
}

TEST(Jsonl, InvalidUtf8NamesLineAndColumn) {
  auto p = temp_file("aha_jsonl_utf8.jsonl", "{\"a\": 1}\n{\"a\": \"ok\"}\n{\"s\": \"ab\xFF\"}\n");
  const std::string e = error_of(p);
  EXPECT_THAT(e, HasSubstr(p + ":3:10"));
  EXPECT_THAT(e, HasSubstr("invalid UTF-8"));
}

TEST(Jsonl, Utf8Validator) {
  using aha::io::find_invalid_utf8;
  EXPECT_FALSE(find_invalid_utf8("plain ascii"));
  EXPECT_FALSE(find_invalid_utf8("\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80"));  // CJK and an emoji
  EXPECT_EQ(find_invalid_utf8("a\x80"), 1u);                                     // lone continuation byte
  EXPECT_EQ(find_invalid_utf8("ab\xC3"), 2u);                                    // truncated sequence
  EXPECT_EQ(find_invalid_utf8("\xC0\xAF"), 0u);                                  // overlong '/'
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);                              // UTF-16 surrogate
  EXPECT_EQ(find_invalid_utf8("\xF4\x90\x80\x80"), 0u);                          // above U+10FFFF
}

TEST(Jsonl, MissingFileNamesThePath) {
  EXPECT_THAT(error_of("/no/such.jsonl"), HasSubstr("/no/such.jsonl"));
}

TEST(Jsonl, WriterAppendsOneLinePerRecord) {
  auto p = (fs::temp_directory_path() / "aha_jsonl_w.jsonl").string();
  fs::remove(p);
  {
    aha::io::JsonlWriter w(p);
    w.write({{"step", 1}, {"reward", 0.5}});
  }
  {
    aha::io::JsonlWriter w(p);  // append
    w.write({{"step", 2}, {"text", "line\nbreak"}});
  }
  auto records = aha::io::read_jsonl(p);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].value["step"], 2);
  EXPECT_EQ(records[1].value["text"], "line\nbreak");
}

TEST(Jsonl, ReadsTheSharedGsm8kData) {
  const std::string path = std::string(AHA_SOURCE_DIR) + "/../shared/data/gsm8k/test.jsonl";
  if (!fs::exists(path)) GTEST_SKIP() << "../shared/data/gsm8k not present next to the clone";
  auto records = aha::io::read_jsonl(path);
  EXPECT_EQ(records.size(), 1319u);  // GSM8K's test split
  for (const auto& r : records) {
    ASSERT_TRUE(r.value.contains("question")) << "line " << r.line;
    ASSERT_THAT(r.value["answer"].get<std::string>(), HasSubstr("####")) << "line " << r.line;
  }
}

}  // namespace
