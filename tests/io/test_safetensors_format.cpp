// The torch-free safetensors format layer: st::parse (validation of untrusted files) and st::layout
// (writing).
#include "aha/io/safetensors_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "aha/core/error.h"

namespace st = aha::io::st;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

const std::vector<st::Dtype> kAllDtypes = {
    st::Dtype::F64, st::Dtype::F32, st::Dtype::F16, st::Dtype::BF16, st::Dtype::F8_E4M3, st::Dtype::F8_E5M2,
    st::Dtype::I64, st::Dtype::I32, st::Dtype::I16, st::Dtype::I8,   st::Dtype::U8,      st::Dtype::BOOL};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i)
    s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file image: the length prefix, `header` and `buffer_bytes` bytes of data (0, 1, 2, ...).
std::string image(const std::string& header, size_t buffer_bytes = 0) {
  std::string s = le64(header.size()) + header;
  for (size_t i = 0; i < buffer_bytes; ++i)
    s.push_back(static_cast<char>(i));
  return s;
}

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

st::Header parse(const std::string& file) {
  return st::parse(bytes(file), "t.safetensors");
}

// The message of the aha::Error that parsing `file` throws (fails the test when it throws nothing or another
// type).
std::string parse_error(const std::string& file) {
  try {
    parse(file);
  } catch (const aha::Error& e) {
    EXPECT_EQ(e.context(), "t.safetensors");
    EXPECT_THAT(e.what(), StartsWith("t.safetensors: "));
    return e.message();
  }
  ADD_FAILURE() << "parse accepted an invalid file";
  return "";
}

std::string layout_error(std::vector<st::TensorEntry> entries,
                         const std::map<std::string, std::string>& meta = {}) {
  try {
    st::layout(entries, meta);
  } catch (const aha::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "layout accepted invalid entries";
  return "";
}

st::TensorEntry entry(std::string name, st::Dtype dtype, std::vector<int64_t> shape) {
  st::TensorEntry e;
  e.name = std::move(name);
  e.dtype = dtype;
  e.shape = std::move(shape);
  return e;
}

// One F32 tensor entry of the header JSON.
std::string f32(const std::string& name, const std::string& shape, uint64_t begin, uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"F32\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

}  // namespace

// ---- dtypes -----------------------------------------------------------------------------------------------

TEST(SafetensorsFormat, DtypeNamesAndSizes) {
  const std::vector<std::string> names = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2",
                                          "I64", "I32", "I16", "I8",   "U8",      "BOOL"};
  const std::vector<size_t> sizes = {8, 4, 2, 2, 1, 1, 8, 4, 2, 1, 1, 1};
  for (size_t i = 0; i < kAllDtypes.size(); ++i) {
    EXPECT_EQ(st::dtype_name(kAllDtypes[i]), names[i]);
    EXPECT_EQ(st::dtype_size(kAllDtypes[i]), sizes[i]) << names[i];
    ASSERT_TRUE(st::parse_dtype(names[i]).has_value()) << names[i];
    EXPECT_EQ(*st::parse_dtype(names[i]), kAllDtypes[i]);
  }
  for (const char* bad : {"f32", "F128", "", "FLOAT", "F8", "U16", "C64", "F32 "})
    EXPECT_FALSE(st::parse_dtype(bad).has_value()) << bad;
}

TEST(SafetensorsFormat, TensorEntryNumelAndNbytes) {
  st::TensorEntry e = entry("x", st::Dtype::F16, {2, 3, 4});
  e.begin = 16;
  e.end = 64;
  EXPECT_EQ(e.numel(), 24u);
  EXPECT_EQ(e.nbytes(), 48u);
  EXPECT_EQ(entry("s", st::Dtype::F32, {}).numel(), 1u);  // a scalar
  EXPECT_EQ(entry("z", st::Dtype::F32, {3, 0, 2}).numel(), 0u);
}

// ---- parse: valid files -----------------------------------------------------------------------------------

TEST(SafetensorsFormat, ParsesOneTensor) {
  const std::string file = image("{" + f32("w", "[2]", 0, 8) + "}", 8);
  const st::Header h = parse(file);
  ASSERT_EQ(h.tensors.size(), 1u);
  const st::TensorEntry& t = h.tensors[0];
  EXPECT_EQ(t.name, "w");
  EXPECT_EQ(t.dtype, st::Dtype::F32);
  EXPECT_EQ(t.shape, std::vector<int64_t>({2}));
  EXPECT_EQ(t.begin, 0u);
  EXPECT_EQ(t.end, 8u);
  EXPECT_EQ(h.buffer_start, file.size() - 8);
  EXPECT_TRUE(h.metadata.empty());
  EXPECT_EQ(h.find("w"), &h.tensors[0]);
  EXPECT_EQ(h.find("v"), nullptr);
  EXPECT_EQ(h.find("__metadata__"), nullptr);
}

TEST(SafetensorsFormat, ParsesEmptyHeaderAndMetadataOnly) {
  const st::Header empty = parse(image("{}"));
  EXPECT_TRUE(empty.tensors.empty());
  EXPECT_EQ(empty.buffer_start, 10u);

  const st::Header meta = parse(image(R"({"__metadata__":{"format":"pt","note":"x y"}})"));
  EXPECT_TRUE(meta.tensors.empty());
  EXPECT_EQ(meta.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x y"}}));
}

TEST(SafetensorsFormat, KeepsTheHeaderOrder) {
  // Header order differs from both name order and offset order.
  const std::string header = "{" + f32("m", "[1]", 8, 12) + "," + f32("z", "[2]", 0, 8) + "," +
                             f32("a", "[1]", 12, 16) + R"(,"__metadata__":{"k":"v"}})";
  const st::Header h = parse(image(header, 16));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "m");
  EXPECT_EQ(h.tensors[1].name, "z");
  EXPECT_EQ(h.tensors[2].name, "a");
  EXPECT_EQ(h.find("a")->begin, 12u);
  EXPECT_EQ(h.metadata.at("k"), "v");
}

TEST(SafetensorsFormat, ParsesScalarsZeroSizeAndEveryDtype) {
  std::string header = "{";
  uint64_t offset = 0;
  for (st::Dtype d : kAllDtypes) {
    const uint64_t end = offset + 3 * st::dtype_size(d);
    header += "\"t_" + std::string(st::dtype_name(d)) + "\":{\"dtype\":\"" + std::string(st::dtype_name(d)) +
              "\",\"shape\":[3],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) +
              "]},";
    offset = end;
  }
  header += R"("scalar":{"dtype":"F64","shape":[],"data_offsets":[)" + std::to_string(offset) + "," +
            std::to_string(offset + 8) + "]},";
  header += R"("empty":{"dtype":"I32","shape":[4,0],"data_offsets":[)" + std::to_string(offset + 8) + "," +
            std::to_string(offset + 8) + "]}}";
  const st::Header h = parse(image(header, offset + 8));
  ASSERT_EQ(h.tensors.size(), kAllDtypes.size() + 2);
  for (size_t i = 0; i < kAllDtypes.size(); ++i) {
    EXPECT_EQ(h.tensors[i].dtype, kAllDtypes[i]);
    EXPECT_EQ(h.tensors[i].nbytes(), 3 * st::dtype_size(kAllDtypes[i]));
  }
  const st::TensorEntry* scalar = h.find("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->numel(), 1u);
  const st::TensorEntry* empty = h.find("empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, std::vector<int64_t>({4, 0}));
  EXPECT_EQ(empty->nbytes(), 0u);
}

TEST(SafetensorsFormat, AcceptsZeroSizeTensorsAnywhereAndPaddedHeaders) {
  // Zero-size tensors at the start, between two tensors and at the end; spaces after the JSON (writers pad).
  const std::string header = "{" + f32("a", "[0]", 0, 0) + "," + f32("b", "[1]", 0, 4) + "," +
                             f32("c", "[0,5]", 4, 4) + "," + f32("d", "[1]", 4, 8) + "," +
                             f32("e", "[0]", 8, 8) + "}      ";
  const st::Header h = parse(image(header, 8));
  EXPECT_EQ(h.tensors.size(), 5u);
  EXPECT_EQ(h.buffer_start, 8 + header.size());
}

TEST(SafetensorsFormat, LargeDimensionsThatFitAreCheckedAgainstTheBytes) {
  // 2^62 U8 elements do not overflow: the shape is valid, and the byte count is what rejects it.
  const std::string msg = parse_error(image(R"({"x":{"dtype":"U8","shape":[4611686018427387904],)"
                                            R"("data_offsets":[0,1]}})",
                                            1));
  EXPECT_THAT(msg, HasSubstr("needs 4611686018427387904 bytes but data_offsets span 1"));
}

TEST(SafetensorsFormat, ErrorsNameTheSource) {
  try {
    st::parse(bytes(std::string(3, 'x')), "/some/dir/model.safetensors");
    FAIL() << "no error";
  } catch (const aha::Error& e) {
    EXPECT_EQ(e.context(), "/some/dir/model.safetensors");
    EXPECT_THAT(e.what(), StartsWith("/some/dir/model.safetensors: "));
  }
}

// ---- parse: malformed files, one test per problem ---------------------------------------------------------

TEST(SafetensorsFormatErrors, EmptyFile) {
  EXPECT_THAT(parse_error(""), HasSubstr("0 bytes, shorter than the 8-byte header length"));
}

TEST(SafetensorsFormatErrors, SevenByteFile) {
  EXPECT_THAT(parse_error(std::string(7, '\0')), HasSubstr("7 bytes, shorter than the 8-byte header length"));
}

TEST(SafetensorsFormatErrors, HeaderLengthPastTheEnd) {
  // Claims 100 bytes of header, holds 20.
  const std::string file = le64(100) + std::string(20, ' ');
  EXPECT_THAT(parse_error(file), HasSubstr("header length 100 runs past the end of the file (28 bytes)"));
  // One byte short of a valid file.
  const std::string good = image("{" + f32("w", "[1]", 0, 4) + "}", 4);
  const size_t header_bytes = good.size() - 12;
  const std::string cut = good.substr(0, 8 + header_bytes - 1);
  EXPECT_THAT(parse_error(cut), HasSubstr("runs past the end of the file"));
}

TEST(SafetensorsFormatErrors, HeaderLengthOver100MB) {
  EXPECT_THAT(parse_error(le64(100'000'001) + "{}"),
              HasSubstr("header length 100000001 exceeds the 100 MB limit"));
  EXPECT_THAT(parse_error(le64(std::numeric_limits<uint64_t>::max()) + "{}"),
              HasSubstr("exceeds the 100 MB limit"));
  // Exactly the limit is not "too large", only past the end of this small file.
  EXPECT_THAT(parse_error(le64(st::kMaxHeaderBytes) + "{}"), HasSubstr("runs past the end of the file"));
}

TEST(SafetensorsFormatErrors, HeaderTooShortForJson) {
  EXPECT_THAT(parse_error(le64(0)), HasSubstr("header of 0 bytes cannot hold a JSON object"));
  EXPECT_THAT(parse_error(le64(1) + "{"), HasSubstr("header of 1 bytes cannot hold a JSON object"));
}

TEST(SafetensorsFormatErrors, BadJson) {
  EXPECT_THAT(parse_error(image(R"({"a":)")), HasSubstr("header is not valid JSON"));
  EXPECT_THAT(parse_error(image(R"({"a":{"dtype":"F32",}})")), HasSubstr("header is not valid JSON"));
  EXPECT_THAT(parse_error(image(std::string("{\"a\0\":1}", 8))), HasSubstr("header is not valid JSON"));
  // Invalid UTF-8 in a name.
  EXPECT_THAT(parse_error(image("{\"\xff\xfe\":1}")), HasSubstr("header is not valid JSON"));
  // Only the header's bytes are JSON: a valid object followed by data is fine, but data inside the length is
  // not.
  EXPECT_THAT(parse_error(le64(4) + "{}xx"), HasSubstr("header is not valid JSON"));
}

TEST(SafetensorsFormatErrors, HeaderNotAnObject) {
  for (const char* header : {"[1, 2]", "\"text\"", "42", "null", "[{\"a\":{}}]"})
    EXPECT_THAT(parse_error(image(header)), HasSubstr("header JSON must be an object")) << header;
}

TEST(SafetensorsFormatErrors, EntryNotAnObject) {
  EXPECT_THAT(parse_error(image(R"({"w":[1,2]})")), HasSubstr("tensor \"w\": entry must be an object"));
}

TEST(SafetensorsFormatErrors, MissingOrUnknownField) {
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":"F32","shape":[1]}})", 4)),
              HasSubstr("tensor \"w\": entry needs dtype, shape and data_offsets"));
  EXPECT_THAT(parse_error(image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("entry needs dtype, shape and data_offsets"));
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4)),
              HasSubstr("entry needs dtype, shape and data_offsets"));
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 4)),
              HasSubstr("tensor \"w\": unknown field \"extra\""));
}

TEST(SafetensorsFormatErrors, UnknownDtype) {
  const std::string msg =
      parse_error(image(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16));
  EXPECT_THAT(msg, HasSubstr("tensor \"w\": unknown dtype \"F128\""));
  EXPECT_THAT(msg, HasSubstr("supported: F64 F32"));
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("unknown dtype \"f32\""));
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4)),
              HasSubstr("tensor \"w\": dtype must be a string"));
}

TEST(SafetensorsFormatErrors, NegativeShape) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[-1]", 0, 4) + "}", 4)),
              HasSubstr("tensor \"w\": shape must be an array of non-negative integers, got [-1]"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[2,-3]", 0, 4) + "}", 4)),
              HasSubstr("non-negative integers"));
}

TEST(SafetensorsFormatErrors, FloatOrNonNumericShape) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[2.0]", 0, 8) + "}", 8)),
              HasSubstr("tensor \"w\": shape must be an array of non-negative integers, got [2.0]"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[1e3]", 0, 4000) + "}", 4000)),
              HasSubstr("non-negative integers"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[\"2\"]", 0, 8) + "}", 8)),
              HasSubstr("non-negative integers"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[true]", 0, 4) + "}", 4)),
              HasSubstr("non-negative integers"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[[2]]", 0, 8) + "}", 8)), HasSubstr("non-negative integers"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "2", 0, 8) + "}", 8)),
              HasSubstr("shape must be an array of non-negative integers"));
  // Past 2^64 a JSON number is read as a float.
  EXPECT_THAT(parse_error(image("{" + f32("w", "[18446744073709551616]", 0, 4) + "}", 4)),
              HasSubstr("non-negative integers"));
}

TEST(SafetensorsFormatErrors, DeeplyNestedShapeIsRejectedWithoutRecursion) {
  // A hostile header of nested arrays must be rejected, not crash by recursing (stack overflow) on its way to
  // the message; the message stays short.
  const size_t depth = 1'000'000;
  const std::string shape = std::string(depth, '[') + std::string(depth, ']');
  const std::string msg = parse_error(image("{" + f32("w", shape, 0, 4) + "}", 4));
  EXPECT_THAT(msg, HasSubstr("shape must be an array of non-negative integers, got [array]"));
  EXPECT_LT(msg.size(), 300u);
}

TEST(SafetensorsFormatErrors, ShapeTooLarge) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[4294967296,4294967296,2]", 0, 4) + "}", 4)),
              HasSubstr("tensor \"w\": shape [4294967296,4294967296,2] is too large"));
  // numel fits, numel * 4 bytes does not.
  EXPECT_THAT(parse_error(image("{" + f32("w", "[4611686018427387904]", 0, 4) + "}", 4)),
              HasSubstr("is too large"));
  // A dimension past INT64_MAX cannot be a torch size even when the product is 0.
  EXPECT_THAT(parse_error(image("{" + f32("w", "[18446744073709551615,0]", 0, 0) + "}")),
              HasSubstr("is too large"));
}

TEST(SafetensorsFormatErrors, LongShapeIsElidedInMessages) {
  std::string shape = "[";
  for (int i = 0; i < 10000; ++i)
    shape += i ? ",1" : "1";
  shape += "]";
  const std::string msg = parse_error(image("{" + f32("w", shape, 0, 8) + "}", 8));
  EXPECT_THAT(msg, HasSubstr("needs 4 bytes but data_offsets span 8"));
  EXPECT_THAT(msg, HasSubstr(",...]"));
  EXPECT_LT(msg.size(), 300u);
}

TEST(SafetensorsFormatErrors, ShapeAndByteCountDisagree) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[3]", 0, 8) + "}", 8)),
              HasSubstr("tensor \"w\": shape [3] of F32 needs 12 bytes but data_offsets span 8"));
  EXPECT_THAT(parse_error(image(R"({"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", 4)),
              HasSubstr("shape [2,2] of BF16 needs 8 bytes but data_offsets span 4"));
  EXPECT_THAT(parse_error(image("{" + f32("w", "[]", 0, 0) + "}")),
              HasSubstr("needs 4 bytes but data_offsets span 0"));
}

TEST(SafetensorsFormatErrors, MalformedDataOffsets) {
  for (const char* offsets :
       {"[0]", "[0,4,8]", "[-4,0]", "[0,4.0]", "[\"0\",4]", "4", "{}", "[0,18446744073709551616]"}) {
    const std::string header =
        std::string(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":)") + offsets + "}}";
    EXPECT_THAT(parse_error(image(header, 4)),
                HasSubstr("data_offsets must be [begin, end] with non-negative integers"))
        << offsets;
  }
}

TEST(SafetensorsFormatErrors, DataOffsetsEndBeforeBegin) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[0]", 8, 0) + "}", 8)),
              HasSubstr("tensor \"w\": data_offsets end 0 is before begin"));
}

TEST(SafetensorsFormatErrors, DataOffsetsPastTheEnd) {
  EXPECT_THAT(parse_error(image("{" + f32("w", "[4]", 0, 16) + "}", 8)),
              HasSubstr("tensor \"w\": data_offsets [0, 16) run past the end of the data (8 bytes)"));
  // Huge offsets whose difference is right must not wrap around.
  EXPECT_THAT(
      parse_error(image("{" + f32("w", "[1]", 18446744073709551608ull, 18446744073709551612ull) + "}", 8)),
      HasSubstr("run past the end of the data"));
  // A zero-size tensor past the end is out of bounds too.
  EXPECT_THAT(parse_error(image("{" + f32("w", "[1]", 0, 4) + "," + f32("e", "[0]", 9, 9) + "}", 4)),
              HasSubstr("tensor \"e\": data_offsets [9, 9) run past the end"));
}

TEST(SafetensorsFormatErrors, OverlappingTensors) {
  EXPECT_THAT(parse_error(image("{" + f32("a", "[2]", 0, 8) + "," + f32("b", "[2]", 4, 12) + "}", 12)),
              HasSubstr("tensor \"b\" overlaps the tensor before it in the buffer"));
  // Two tensors on the same bytes.
  EXPECT_THAT(parse_error(image("{" + f32("a", "[2]", 0, 8) + "," + f32("b", "[2]", 0, 8) + "}", 8)),
              HasSubstr("overlaps the tensor before it"));
  // A tensor nested inside another.
  EXPECT_THAT(parse_error(image("{" + f32("a", "[4]", 0, 16) + "," + f32("b", "[1]", 4, 8) + "}", 16)),
              HasSubstr("overlaps the tensor before it"));
}

TEST(SafetensorsFormatErrors, GapInTheBuffer) {
  EXPECT_THAT(parse_error(image("{" + f32("a", "[1]", 0, 4) + "," + f32("b", "[1]", 8, 12) + "}", 12)),
              HasSubstr("gap in the data buffer before tensor \"b\" (bytes 4 to 8 belong to no tensor)"));
  // A gap at the start.
  EXPECT_THAT(parse_error(image("{" + f32("a", "[1]", 4, 8) + "}", 8)),
              HasSubstr("gap in the data buffer before tensor \"a\" (bytes 0 to 4"));
}

TEST(SafetensorsFormatErrors, TrailingBytes) {
  EXPECT_THAT(parse_error(image("{" + f32("a", "[1]", 0, 4) + "}", 7)),
              HasSubstr("the data buffer has 3 bytes after the last tensor"));
  EXPECT_THAT(parse_error(image("{}", 1)), HasSubstr("the data buffer has 1 bytes after the last tensor"));
}

TEST(SafetensorsFormatErrors, DuplicateTensorNames) {
  EXPECT_THAT(parse_error(image("{" + f32("a", "[1]", 0, 4) + "," + f32("a", "[1]", 4, 8) + "}", 8)),
              HasSubstr("tensor \"a\" appears twice in the header"));
  EXPECT_THAT(parse_error(image(R"({"__metadata__":{},"__metadata__":{}})")), HasSubstr("appears twice"));
}

TEST(SafetensorsFormatErrors, MetadataMustHoldStrings) {
  EXPECT_THAT(parse_error(image(R"({"__metadata__":{"format":"pt","step":1}})")),
              HasSubstr("__metadata__ value for \"step\" must be a string"));
  EXPECT_THAT(parse_error(image(R"({"__metadata__":{"k":null}})")),
              HasSubstr("__metadata__ value for \"k\""));
  EXPECT_THAT(parse_error(image(R"({"__metadata__":{"k":{"a":"b"}}})")), HasSubstr("must be a string"));
  EXPECT_THAT(parse_error(image(R"({"__metadata__":["a","b"]})")),
              HasSubstr("__metadata__ must be an object of strings"));
  EXPECT_THAT(parse_error(image(R"({"__metadata__":"pt"})")),
              HasSubstr("__metadata__ must be an object of strings"));
}

TEST(SafetensorsFormatErrors, LongNamesAreElidedInMessages) {
  const std::string name(5000, 'n');
  const std::string msg = parse_error(image("{" + f32(name, "[1]", 0, 8) + "}", 8));
  EXPECT_THAT(msg, HasSubstr("tensor \"nnnn"));
  EXPECT_THAT(msg, HasSubstr("...\""));
  EXPECT_LT(msg.size(), 300u);
}

TEST(SafetensorsFormatErrors, LongBadJsonIsClipped) {
  // The JSON parser quotes the token it failed in: here 100 kB of an unterminated string.
  const std::string msg = parse_error(image("{\"" + std::string(100000, 'a')));
  EXPECT_THAT(msg, HasSubstr("header is not valid JSON"));
  EXPECT_THAT(msg, HasSubstr("..."));
  EXPECT_LT(msg.size(), 300u);
}

TEST(SafetensorsFormatErrors, ClippedNamesStayValidUtf8) {
  // Two-byte characters after zero to two ASCII bytes: a cut at a fixed byte count would split one.
  for (const std::string lead : {"", "a", "ab"}) {
    std::string name = lead;
    for (int i = 0; i < 100; ++i)
      name += "\xc3\xa9";
    const std::string msg = parse_error(image("{" + f32(name, "[1]", 0, 8) + "}", 8));
    ASSERT_THAT(msg, HasSubstr("...\""));
    // Every lead byte has its continuation byte.
    for (size_t i = 0; i < msg.size(); ++i) {
      const auto c = static_cast<unsigned char>(msg[i]);
      if (c < 0x80) continue;
      ASSERT_EQ(c, 0xc3) << "byte " << i << " with lead \"" << lead << "\"";
      ASSERT_LT(i + 1, msg.size());
      ASSERT_EQ(static_cast<unsigned char>(msg[++i]), 0xa9)
          << "byte " << i << " with lead \"" << lead << "\"";
    }
  }
}

// ---- layout -----------------------------------------------------------------------------------------------

TEST(SafetensorsLayout, RoundTripsThroughParse) {
  std::vector<st::TensorEntry> entries;
  for (size_t i = 0; i < kAllDtypes.size(); ++i)
    entries.push_back(entry("t" + std::to_string(i), kAllDtypes[i], {2, static_cast<int64_t>(i % 3) + 1}));
  entries.push_back(entry("scalar", st::Dtype::F64, {}));
  entries.push_back(entry("empty", st::Dtype::I16, {0, 7}));
  entries.push_back(entry("odd", st::Dtype::U8, {3}));
  entries.push_back(entry("caf\xc3\xa9 \"quoted\" \\ name", st::Dtype::BF16, {1, 1, 1, 5}));
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "a \"b\"\n"}};

  const std::string head = st::layout(entries, meta);
  // Offsets are contiguous in the given order.
  uint64_t offset = 0;
  for (const auto& e : entries) {
    EXPECT_EQ(e.begin, offset) << e.name;
    EXPECT_EQ(e.end, offset + e.numel() * st::dtype_size(e.dtype)) << e.name;
    offset = e.end;
  }
  std::string file = head;
  for (uint64_t b = 0; b < offset; ++b)
    file.push_back(static_cast<char>(b * 7));
  const st::Header h = parse(file);
  EXPECT_EQ(h.buffer_start, head.size());
  EXPECT_EQ(h.metadata, meta);
  ASSERT_EQ(h.tensors.size(), entries.size());
  for (size_t k = 0; k < entries.size(); ++k) {
    EXPECT_EQ(h.tensors[k].name, entries[k].name);  // the file keeps the given order
    EXPECT_EQ(h.tensors[k].dtype, entries[k].dtype);
    EXPECT_EQ(h.tensors[k].shape, entries[k].shape);
    EXPECT_EQ(h.tensors[k].begin, entries[k].begin);
    EXPECT_EQ(h.tensors[k].end, entries[k].end);
  }
}

TEST(SafetensorsLayout, HeaderLengthPrefixAndAlignment) {
  for (size_t len = 1; len <= 24; ++len) {
    std::vector<st::TensorEntry> entries = {entry(std::string(len, 'x'), st::Dtype::F64, {1})};
    const std::string head = st::layout(entries, {});
    EXPECT_EQ(head.size() % 8, 0u) << len;  // the buffer starts 8-byte aligned
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | static_cast<uint8_t>(head[static_cast<size_t>(i)]);
    EXPECT_EQ(n, head.size() - 8) << len;
    EXPECT_EQ(head[8], '{');
    // The padding is spaces after the JSON.
    const size_t close = head.rfind('}');
    EXPECT_EQ(head.find_first_not_of(' ', close + 1), std::string::npos) << len;
    EXPECT_LT(head.size() - 1 - close, 8u);
  }
}

TEST(SafetensorsLayout, NoMetadataWritesNoMetadataKey) {
  std::vector<st::TensorEntry> entries = {entry("a", st::Dtype::F32, {1})};
  const std::string head = st::layout(entries, {});
  EXPECT_EQ(head.find("__metadata__"), std::string::npos);
  std::vector<st::TensorEntry> none;
  const std::string empty = st::layout(none, {});
  EXPECT_TRUE(parse(empty).tensors.empty());
  EXPECT_EQ(empty.size() % 8, 0u);
}

TEST(SafetensorsLayout, RejectsBadEntries) {
  EXPECT_THAT(layout_error({entry("", st::Dtype::F32, {1})}), HasSubstr("a tensor needs a name"));
  EXPECT_THAT(layout_error({entry("a", st::Dtype::F32, {1}), entry("b", st::Dtype::F32, {}),
                            entry("a", st::Dtype::I8, {2})}),
              HasSubstr("tensor name \"a\" given twice"));
  EXPECT_THAT(layout_error({entry("a", st::Dtype::F32, {2, -1})}),
              HasSubstr("tensor \"a\" has a negative dimension"));
}

TEST(SafetensorsLayout, RejectsATensorNamedMetadata) {
  EXPECT_THAT(layout_error({entry("__metadata__", st::Dtype::F32, {1})}),
              HasSubstr("\"__metadata__\" is reserved and cannot name a tensor"));
  // Also when metadata is given (the name would collide with it in the JSON).
  EXPECT_THAT(
      layout_error({entry("x", st::Dtype::U8, {1}), entry("__metadata__", st::Dtype::U8, {1})}, {{"k", "v"}}),
      HasSubstr("\"__metadata__\" is reserved"));
}
