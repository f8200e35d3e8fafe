// safetensors files and checkpoints as torch tensors: the Python-written fixtures (tests/data/safetensors,
// made by scripts/make_safetensors_fixtures.py) load bit-exactly, loads are zero-copy and copy-on-write,
// saves round-trip, and checkpoints shard and index like HF transformers.
#include "aha/io/safetensors.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../support/sha256.h"
#include "aha/core/error.h"
#include "aha/io/file.h"

namespace fs = std::filesystem;
namespace st = aha::io::st;
using aha::io::Checkpoint;
using aha::io::NamedTensor;
using aha::io::SafetensorsFile;
using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

const std::string kData = std::string(AHA_TEST_DATA) + "/safetensors";
const std::string kAllDtypesFile = kData + "/all_dtypes.safetensors";

const std::vector<at::ScalarType> kAllTypes = {
    at::kDouble,      at::kFloat, at::kHalf,  at::kBFloat16, at::kLong, at::kFloat8_e4m3fn,
    at::kFloat8_e5m2, at::kInt,   at::kShort, at::kChar,     at::kByte, at::kBool};

// The tensor's elements as safetensors stores them: row-major, little-endian.
std::string raw_bytes(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string sha256(const at::Tensor& t) {
  return aha::test::sha256_hex(raw_bytes(t));
}

json read_json(const std::string& path) {
  return json::parse(aha::io::read_file(path));
}

std::vector<int64_t> shape_of(const at::Tensor& t) {
  return {t.sizes().begin(), t.sizes().end()};
}

// Compares a loaded tensor with its record in a *.expected.json written by the fixture script.
void expect_matches(const at::Tensor& t, const json& rec, const std::string& name) {
  SCOPED_TRACE(name);
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.device().type(), at::kCPU);
  EXPECT_EQ(st::dtype_name(aha::io::to_safetensors_dtype(t.scalar_type())),
            rec.at("dtype").get<std::string>());
  EXPECT_EQ(shape_of(t), rec.at("shape").get<std::vector<int64_t>>());
  EXPECT_EQ(t.nbytes(), rec.at("nbytes").get<size_t>());
  EXPECT_EQ(sha256(t), rec.at("sha256").get<std::string>());
  const at::Tensor flat = t.reshape({-1}).to(at::kDouble);
  for (const auto& v : rec.at("values")) {
    const int64_t i = v.at(0).get<int64_t>();
    const double want = v.at(1).get<double>();
    const double got = flat[i].item<double>();
    EXPECT_EQ(got, want) << "element " << i;
    EXPECT_EQ(std::signbit(got), std::signbit(want)) << "element " << i;
  }
}

// The address ranges of this process's mappings of `path`, from /proc/self/maps.
std::vector<std::pair<uintptr_t, uintptr_t>> mappings_of(const std::string& path) {
  const std::string want = fs::canonical(path).string();
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos || line.substr(slash) != want) continue;
    std::istringstream is(line);
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    is >> std::hex >> lo >> dash >> hi;
    out.emplace_back(lo, hi);
  }
  return out;
}

bool inside_mapping_of(const void* p, size_t n, const std::string& path) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (const auto& [lo, hi] : mappings_of(path))
    if (a >= lo && a + n <= hi) return true;
  return false;
}

// A tensor of `type` and `shape` with varied bit patterns (any byte for floats and integers, 0/1 for bool).
at::Tensor patterned(at::ScalarType type, std::vector<int64_t> shape, int seed) {
  const int64_t numel = c10::multiply_integers(shape);
  const int64_t elem = static_cast<int64_t>(c10::elementSize(type));
  at::Tensor b =
      at::arange(numel * elem, at::kLong).mul(37).add(seed * 11 + 5).remainder(type == at::kBool ? 2 : 251);
  return b.to(at::kByte).view(type).reshape(shape);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const aha::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no aha::Error thrown";
  return "";
}

std::set<std::string> files_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("aha_st_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

using SafetensorsFileTest = SafetensorsTest;
using SafetensorsRoundTrip = SafetensorsTest;
using SafetensorsCheckpoint = SafetensorsTest;

}  // namespace

// ---- the test's own SHA-256 -------------------------------------------------------------------------------

TEST(SafetensorsSha256, KnownVectors) {
  using aha::test::sha256_hex;
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

// ---- dtypes -----------------------------------------------------------------------------------------------

TEST(SafetensorsDtypes, MapBothWays) {
  const std::vector<st::Dtype> dtypes = {
      st::Dtype::F64,     st::Dtype::F32, st::Dtype::F16, st::Dtype::BF16, st::Dtype::I64, st::Dtype::F8_E4M3,
      st::Dtype::F8_E5M2, st::Dtype::I32, st::Dtype::I16, st::Dtype::I8,   st::Dtype::U8,  st::Dtype::BOOL};
  for (size_t i = 0; i < kAllTypes.size(); ++i) {
    EXPECT_EQ(aha::io::to_scalar_type(dtypes[i]), kAllTypes[i]) << st::dtype_name(dtypes[i]);
    EXPECT_EQ(aha::io::to_safetensors_dtype(kAllTypes[i]), dtypes[i]) << c10::toString(kAllTypes[i]);
    EXPECT_EQ(st::dtype_size(dtypes[i]), c10::elementSize(kAllTypes[i]));
  }
  for (at::ScalarType bad : {at::kComplexFloat, at::kQInt8, at::kUInt16, at::kFloat8_e4m3fnuz})
    EXPECT_THAT(error_of([&] { aha::io::to_safetensors_dtype(bad); }),
                HasSubstr("dtype " + std::string(c10::toString(bad)) + " cannot be stored in safetensors"));
}

// ---- the Python fixtures ----------------------------------------------------------------------------------

TEST(SafetensorsFixtures, AllDtypesLoadBitExactly) {
  const json expected = read_json(kData + "/all_dtypes.expected.json");
  const SafetensorsFile f = SafetensorsFile::open(kAllDtypesFile);
  EXPECT_EQ(f.path(), kAllDtypesFile);
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"source", "aha-fixture"}}));
  using StringMap = std::map<std::string, std::string>;
  EXPECT_EQ(expected.at("metadata").get<StringMap>(), f.metadata());

  const auto& tensors = expected.at("tensors");
  ASSERT_EQ(tensors.size(), 12u);
  std::set<std::string> dtypes;
  for (const auto& [name, rec] : tensors.items()) {
    ASSERT_TRUE(f.contains(name)) << name;
    expect_matches(f.tensor(name), rec, name);
    const st::TensorEntry* e = f.header().find(name);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->shape, rec.at("shape").get<std::vector<int64_t>>());
    EXPECT_EQ(e->nbytes(), rec.at("nbytes").get<uint64_t>());
    dtypes.insert(rec.at("dtype").get<std::string>());
  }
  EXPECT_EQ(dtypes.size(), 12u);  // every dtype once

  // names() lists the file's tensors in header order; Python writes them in data order, largest alignment
  // first.
  const std::vector<std::string> names = f.names();
  ASSERT_EQ(names.size(), 12u);
  EXPECT_EQ(names.front(), "i64_scalar");
  for (size_t i = 1; i < names.size(); ++i)
    EXPECT_LE(f.header().find(names[i - 1])->end, f.header().find(names[i])->begin) << names[i];
  EXPECT_FALSE(f.contains("missing"));

  // all() agrees with tensor().
  const std::vector<NamedTensor> all = f.all();
  ASSERT_EQ(all.size(), names.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].first, names[i]);
    expect_matches(all[i].second, tensors.at(names[i]), names[i]);
  }
}

TEST(SafetensorsFixtures, SpecialValues) {
  const SafetensorsFile f = SafetensorsFile::open(kAllDtypesFile);
  EXPECT_EQ(f.tensor("i64_scalar").dim(), 0);
  EXPECT_EQ(f.tensor("i64_scalar").item<int64_t>(), -1234567890123);  // beyond float precision
  EXPECT_EQ(f.tensor("i16_empty").numel(), 0);
  EXPECT_EQ(shape_of(f.tensor("i16_empty")), std::vector<int64_t>({0, 4}));
  EXPECT_EQ(f.tensor("f32_3d").dim(), 3);
  EXPECT_TRUE(std::signbit(f.tensor("f32_3d").reshape({-1})[0].item<float>()));  // -0.0
  EXPECT_EQ(f.tensor("f64")[5].item<double>(), std::ldexp(1.0, -1074));          // smallest subnormal
  EXPECT_EQ(f.tensor("i32")[0][1].item<int32_t>(), INT32_MIN);
  EXPECT_EQ(f.tensor("bool").sum().item<int64_t>(), 3);
}

TEST(SafetensorsFixtures, ShardedCheckpointLoadsViaIndex) {
  const json expected = read_json(kData + "/sharded.expected.json");
  const Checkpoint c = Checkpoint::open(kData + "/sharded");
  EXPECT_EQ(c.num_shards(), 2u);
  std::vector<std::string> want;
  for (const auto& [name, _] : expected.at("tensors").items())
    want.push_back(name);
  EXPECT_EQ(c.names(), want);  // sorted
  for (const auto& [name, rec] : expected.at("tensors").items()) {
    ASSERT_TRUE(c.contains(name));
    expect_matches(c.tensor(name), rec, name);
    EXPECT_EQ(st::dtype_name(c.entry(name).dtype), rec.at("dtype").get<std::string>());
    EXPECT_EQ(c.entry(name).shape, rec.at("shape").get<std::vector<int64_t>>());
  }
  // The index's metadata (numbers as their JSON text) and the shards' own.
  EXPECT_EQ(c.metadata().at("total_size"), std::to_string(expected.at("total_size").get<uint64_t>()));
  EXPECT_EQ(c.metadata().at("format"), "pt");
  EXPECT_FALSE(c.contains("missing"));

  // Each shard on its own holds exactly the tensors the index gives it.
  for (const char* shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    const Checkpoint one = Checkpoint::open(kData + "/sharded/" + shard);
    EXPECT_EQ(one.num_shards(), 1u);
    std::vector<std::string> in_shard;
    for (const auto& [name, rec] : expected.at("tensors").items())
      if (rec.at("shard") == shard) in_shard.push_back(name);
    EXPECT_EQ(one.names(), in_shard) << shard;
  }
}

// ---- zero-copy, copy-on-write -----------------------------------------------------------------------------

TEST_F(SafetensorsFileTest, AlignedTensorsPointIntoTheMapping) {
  const SafetensorsFile f = SafetensorsFile::open(kAllDtypesFile);
  const at::Tensor t = f.tensor("f32_3d");
  ASSERT_FALSE(mappings_of(kAllDtypesFile).empty()) << "the file is not mapped";
  EXPECT_TRUE(inside_mapping_of(t.data_ptr(), t.nbytes(), kAllDtypesFile));
  // Every tensor of this file is aligned (the writer orders them by alignment): all are views of the one
  // mapping, at their offset from the start of the file.
  const auto* base =
      static_cast<const char*>(t.data_ptr()) - f.header().buffer_start - f.header().find("f32_3d")->begin;
  EXPECT_EQ(reinterpret_cast<uintptr_t>(base) % 4096, 0u);
  for (const auto& name : f.names()) {
    const at::Tensor u = f.tensor(name);
    if (u.numel() == 0) continue;
    EXPECT_EQ(static_cast<const char*>(u.data_ptr()),
              base + f.header().buffer_start + f.header().find(name)->begin)
        << name;
  }
}

TEST_F(SafetensorsFileTest, WritingToALoadedTensorLeavesTheFileAlone) {
  const std::string p = path("w.safetensors");
  fs::copy_file(kAllDtypesFile, p);
  const std::string before = aha::io::read_file(p);
  {
    const SafetensorsFile f = SafetensorsFile::open(p);
    at::Tensor t = f.tensor("f32_3d");
    ASSERT_TRUE(inside_mapping_of(t.data_ptr(), t.nbytes(), p));  // really writing through the mapping
    t.fill_(42.0f);
    at::Tensor u = f.tensor("u8");
    u.zero_();
    EXPECT_EQ(t.sum().item<float>(), 42.0f * 24);
    // The same file object hands out the written memory (one private mapping per open)...
    EXPECT_EQ(f.tensor("f32_3d").sum().item<float>(), 42.0f * 24);
    // ...but a fresh open sees the file, unchanged.
    EXPECT_EQ(sha256(SafetensorsFile::open(p).tensor("f32_3d")),
              sha256(SafetensorsFile::open(kAllDtypesFile).tensor("f32_3d")));
  }
  EXPECT_EQ(aha::io::read_file(p), before);
}

TEST_F(SafetensorsFileTest, TensorsKeepTheMappingAlive) {
  at::Tensor t, scalar;
  {
    const SafetensorsFile f = SafetensorsFile::open(kAllDtypesFile);
    t = f.tensor("f32_3d");
    scalar = Checkpoint::open(kAllDtypesFile).tensor("i64_scalar");
  }  // the file objects are gone; the tensors still hold the mappings
  EXPECT_TRUE(inside_mapping_of(t.data_ptr(), t.nbytes(), kAllDtypesFile));
  const json expected = read_json(kData + "/all_dtypes.expected.json");
  expect_matches(t, expected["tensors"]["f32_3d"], "f32_3d");
  EXPECT_EQ(scalar.item<int64_t>(), -1234567890123);
  t = at::Tensor();
  scalar = at::Tensor();
  EXPECT_TRUE(mappings_of(kAllDtypesFile).empty()) << "the mapping outlived its last tensor";
}

TEST_F(SafetensorsFileTest, MisalignedTensorsAreCopied) {
  // A 3-byte U8 tensor first puts the F32 and I64 tensors after it at odd offsets.
  std::vector<st::TensorEntry> entries(3);
  entries[0].name = "odd";
  entries[0].dtype = st::Dtype::U8;
  entries[0].shape = {3};
  entries[1].name = "f";
  entries[1].dtype = st::Dtype::F32;
  entries[1].shape = {2, 2};
  entries[2].name = "l";
  entries[2].dtype = st::Dtype::I64;
  entries[2].shape = {};
  const at::Tensor odd = at::tensor({1, 2, 3}, at::kByte);
  const at::Tensor f32 = at::tensor({1.5f, -2.0f, 3.25f, 1e-30f}).reshape({2, 2});
  const at::Tensor i64 = at::scalar_tensor(-5, at::kLong);
  std::string file = st::layout(entries, {});
  file += raw_bytes(odd) + raw_bytes(f32) + raw_bytes(i64);
  const std::string p = path("odd.safetensors");
  aha::io::write_file_atomic(p, file);

  const SafetensorsFile f = SafetensorsFile::open(p);
  const at::Tensor a = f.tensor("odd"), b = f.tensor("f"), c = f.tensor("l");
  EXPECT_EQ(raw_bytes(a), raw_bytes(odd));
  EXPECT_EQ(raw_bytes(b), raw_bytes(f32));
  EXPECT_EQ(shape_of(b), std::vector<int64_t>({2, 2}));
  EXPECT_EQ(c.item<int64_t>(), -5);
  EXPECT_TRUE(inside_mapping_of(a.data_ptr(), a.nbytes(), p));  // U8 is always aligned
  EXPECT_FALSE(inside_mapping_of(b.data_ptr(), b.nbytes(), p));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data_ptr()) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(c.data_ptr()) % 8, 0u);
  // The copy is the caller's own: writing to it changes nothing the file object hands out.
  b.zero_();
  EXPECT_EQ(raw_bytes(f.tensor("f")), raw_bytes(f32));
}

// ---- errors opening files ---------------------------------------------------------------------------------

TEST_F(SafetensorsFileTest, ErrorsNameThePath) {
  const std::string bad = path("bad.safetensors");
  aha::io::write_file_atomic(bad, "1234567");
  std::string msg = error_of([&] { SafetensorsFile::open(bad); });
  EXPECT_THAT(msg, StartsWith(bad + ": "));
  EXPECT_THAT(msg, HasSubstr("7 bytes"));

  aha::io::write_file_atomic(bad, "");
  EXPECT_THAT(error_of([&] { SafetensorsFile::open(bad); }),
              HasSubstr("0 bytes, shorter than the 8-byte header"));

  const std::string missing = path("missing.safetensors");
  msg = error_of([&] { SafetensorsFile::open(missing); });
  EXPECT_THAT(msg, StartsWith(missing + ": "));
  EXPECT_THAT(msg, HasSubstr("cannot open"));

  EXPECT_THAT(error_of([&] { SafetensorsFile::open(dir_.string()); }), HasSubstr("not a regular file"));

  const SafetensorsFile f = SafetensorsFile::open(kAllDtypesFile);
  msg = error_of([&] { f.tensor("nope"); });
  EXPECT_THAT(msg, StartsWith(kAllDtypesFile + ": "));
  EXPECT_THAT(msg, HasSubstr("no tensor \"nope\" in this file"));
}

TEST_F(SafetensorsFileTest, TruncatedFileIsRejected) {
  const std::string p = path("cut.safetensors");
  const std::string whole = aha::io::read_file(kAllDtypesFile);
  aha::io::write_file_atomic(p, whole.substr(0, whole.size() - 1));
  const std::string msg = error_of([&] { SafetensorsFile::open(p); });
  EXPECT_THAT(msg, StartsWith(p + ": "));
  EXPECT_THAT(msg, HasSubstr("run past the end of the data"));
}

// ---- save -> load -----------------------------------------------------------------------------------------

TEST_F(SafetensorsRoundTrip, EveryDtypeAndShape) {
  std::vector<NamedTensor> tensors;
  int seed = 0;
  for (at::ScalarType type : kAllTypes) {
    const std::string n = c10::toString(type);
    tensors.emplace_back(n + "/3d", patterned(type, {2, 3, 5}, seed++));
    tensors.emplace_back(n + "/scalar", patterned(type, {}, seed++));
    tensors.emplace_back(n + "/empty", patterned(type, {0, 3}, seed++));
    tensors.emplace_back(n + "/odd", patterned(type, {7}, seed++));
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "12"}};
  const std::string p = path("all.safetensors");
  aha::io::save_safetensors(p, tensors, meta);

  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.names().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, want] = tensors[i];
    EXPECT_EQ(f.names()[i], name);  // the given order
    const at::Tensor got = f.tensor(name);
    EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(shape_of(got), shape_of(want)) << name;
    EXPECT_EQ(raw_bytes(got), raw_bytes(want)) << name;
  }
  // The file itself is valid for the format layer, with the buffer 8-byte aligned.
  const std::string bytes = aha::io::read_file(p);
  const st::Header h = st::parse({reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()}, p);
  EXPECT_EQ(h.buffer_start % 8, 0u);
  EXPECT_EQ(h.tensors.size(), tensors.size());
}

TEST_F(SafetensorsRoundTrip, NonContiguousInputs) {
  const at::Tensor base = at::arange(4 * 6 * 5, at::kFloat).reshape({4, 6, 5});
  std::vector<NamedTensor> tensors = {
      {"transposed", base.transpose(0, 2)},
      {"strided", base.slice(1, 1, 6, 2)},
      {"offset", base.narrow(0, 2, 2)},  // contiguous, but not at the start of its storage
      {"expanded", at::arange(3, at::kLong).reshape({3, 1}).expand({3, 4})},  // stride 0
      {"channels_last", patterned(at::kBFloat16, {2, 3, 4, 5}, 1).contiguous(at::MemoryFormat::ChannelsLast)},
      {"diagonal", base.select(2, 0).diagonal()},
      {"f8_permuted", patterned(at::kFloat8_e5m2, {3, 4, 2}, 2).permute({2, 0, 1})},
      {"bool_step", patterned(at::kBool, {20}, 3).slice(0, 0, 20, 3)},
      {"empty_view", base.slice(1, 3, 3)},
  };
  for (const auto& [name, t] : tensors) {
    if (name != "offset" && name != "empty_view") {
      ASSERT_FALSE(t.is_contiguous()) << name;
    }
  }
  ASSERT_NE(tensors[2].second.storage_offset(), 0);
  const std::string p = path("views.safetensors");
  aha::io::save_safetensors(p, tensors);
  const SafetensorsFile f = SafetensorsFile::open(p);
  for (const auto& [name, want] : tensors) {
    const at::Tensor got = f.tensor(name);
    EXPECT_EQ(shape_of(got), shape_of(want)) << name;
    EXPECT_TRUE(got.is_contiguous()) << name;
    EXPECT_EQ(raw_bytes(got), raw_bytes(want))
        << name;  // raw_bytes makes `want` contiguous: the logical order
  }
  EXPECT_TRUE(at::equal(f.tensor("transposed"), base.transpose(0, 2)));
  EXPECT_TRUE(at::equal(f.tensor("expanded"), at::arange(3, at::kLong).reshape({3, 1}).expand({3, 4})));
  EXPECT_EQ(f.tensor("offset")[0][0][0].item<float>(), 60.0f);
}

TEST_F(SafetensorsRoundTrip, SparseAndGradTensorsAreWrittenDense) {
  const at::Tensor dense = at::tensor({0.0f, 2.0f, 0.0f, -1.0f, 0.0f, 0.0f}).reshape({2, 3});
  at::Tensor grad = at::ones({2, 2});
  grad.set_requires_grad(true);
  const std::string p = path("sparse.safetensors");
  aha::io::save_safetensors(p, {{"sparse", dense.to_sparse()}, {"grad", grad}});
  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_TRUE(at::equal(f.tensor("sparse"), dense));
  EXPECT_TRUE(at::equal(f.tensor("grad"), at::ones({2, 2})));
}

TEST_F(SafetensorsRoundTrip, EmptyFileAndOverwrite) {
  const std::string p = path("m.safetensors");
  aha::io::save_safetensors(p, {});
  EXPECT_TRUE(SafetensorsFile::open(p).names().empty());
  EXPECT_TRUE(SafetensorsFile::open(p).metadata().empty());
  aha::io::save_safetensors(p, {{"a", at::ones({3})}}, {{"v", "2"}});
  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.names(), std::vector<std::string>({"a"}));
  EXPECT_EQ(f.metadata().at("v"), "2");
  EXPECT_EQ(files_in(dir_), std::set<std::string>({"m.safetensors"}));  // no temporary files left
}

TEST_F(SafetensorsRoundTrip, InvalidInputsWriteNothing) {
  const std::string p = path("bad.safetensors");
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(p, {{"a", at::ones({1})}, {"u", at::Tensor()}});
              }),
              HasSubstr("tensor \"u\" is undefined"));
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(p, {{"c", at::ones({2}, at::kComplexFloat)}});
              }),
              HasSubstr("cannot be stored in safetensors"));
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(p, {{"a", at::ones({1})}, {"a", at::ones({2})}});
              }),
              HasSubstr("tensor name \"a\" given twice"));
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(p, {{"__metadata__", at::ones({1})}});
              }),
              HasSubstr("\"__metadata__\" is reserved"));
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(p, {{"", at::ones({1})}});
              }),
              HasSubstr("a tensor needs a name"));
  EXPECT_TRUE(files_in(dir_).empty());
  EXPECT_THAT(error_of([&] {
                aha::io::save_safetensors(path("no/such/dir/x.safetensors"), {{"a", at::ones({1})}});
              }),
              HasSubstr("no/such/dir/x.safetensors"));
}

// ---- checkpoints ------------------------------------------------------------------------------------------

TEST_F(SafetensorsCheckpoint, ShardsWithASmallLimit) {
  // 64-byte tensors and one of 400 bytes, 150 bytes per shard: {a, b}, {c}, {big} (over the limit, alone),
  // {d, e}.
  std::vector<NamedTensor> tensors = {
      {"a", patterned(at::kFloat, {16}, 1)},  {"b", patterned(at::kBFloat16, {4, 8}, 2)},
      {"c", patterned(at::kLong, {8}, 3)},    {"big", patterned(at::kFloat, {100}, 4)},
      {"d", patterned(at::kByte, {8, 8}, 5)}, {"e", patterned(at::kDouble, {2, 2, 2}, 6).transpose(0, 2)},
  };
  const std::string dir = path("ckpt");
  aha::io::save_checkpoint(dir, tensors, {{"format", "pt"}}, 150);

  const std::vector<std::string> shards = {
      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
  std::set<std::string> want_files(shards.begin(), shards.end());
  want_files.insert("model.safetensors.index.json");
  EXPECT_EQ(files_in(dir), want_files);

  const json index = read_json(dir + "/model.safetensors.index.json");
  EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), 64u * 5 + 400u);
  EXPECT_EQ(index.at("metadata").at("format"), "pt");
  const std::map<std::string, std::string> want_map = {{"a", shards[0]}, {"b", shards[0]},
                                                       {"c", shards[1]}, {"big", shards[2]},
                                                       {"d", shards[3]}, {"e", shards[3]}};
  EXPECT_EQ((index.at("weight_map").get<std::map<std::string, std::string>>()), want_map);

  // Each shard is a valid file holding its tensors in the given order.
  EXPECT_EQ(SafetensorsFile::open(dir + "/" + shards[0]).names(), std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(SafetensorsFile::open(dir + "/" + shards[3]).names(), std::vector<std::string>({"d", "e"}));
  EXPECT_EQ(SafetensorsFile::open(dir + "/" + shards[2]).metadata().at("format"), "pt");

  const Checkpoint c = Checkpoint::open(dir);
  EXPECT_EQ(c.num_shards(), 4u);
  EXPECT_EQ(c.names(), std::vector<std::string>({"a", "b", "big", "c", "d", "e"}));
  EXPECT_EQ(c.metadata().at("format"), "pt");
  EXPECT_EQ(c.metadata().at("total_size"), "720");
  for (const auto& [name, want] : tensors) {
    const at::Tensor got = c.tensor(name);
    EXPECT_EQ(got.scalar_type(), want.scalar_type()) << name;
    EXPECT_EQ(shape_of(got), shape_of(want)) << name;
    EXPECT_EQ(raw_bytes(got), raw_bytes(want)) << name;
    EXPECT_EQ(c.entry(name).shape, shape_of(want)) << name;
  }
}

TEST_F(SafetensorsCheckpoint, OneShardWritesModelSafetensorsAndRemovesAStaleIndex) {
  const std::string dir = path("ckpt");
  aha::io::save_checkpoint(dir, {{"x", at::zeros({64})}, {"y", at::zeros({64})}}, {}, 300);  // two shards
  ASSERT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  ASSERT_EQ(Checkpoint::open(dir).num_shards(), 2u);

  const std::vector<NamedTensor> now = {{"x", at::full({64}, 1.0f)}, {"z", at::full({2}, 7, at::kInt)}};
  aha::io::save_checkpoint(dir, now);  // fits in one file
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  const Checkpoint c = Checkpoint::open(dir);
  EXPECT_EQ(c.num_shards(), 1u);
  EXPECT_EQ(c.names(), std::vector<std::string>({"x", "z"}));
  EXPECT_TRUE(at::equal(c.tensor("x"), now[0].second));
  EXPECT_TRUE(at::equal(c.tensor("z"), now[1].second));
  EXPECT_TRUE(c.metadata().empty());
}

TEST_F(SafetensorsCheckpoint, ExactlyAtTheLimitStaysInOneShard) {
  const std::string dir = path("ckpt");
  aha::io::save_checkpoint(dir, {{"x", at::zeros({16})}, {"y", at::zeros({16})}}, {}, 128);
  EXPECT_EQ(files_in(dir), std::set<std::string>({"model.safetensors"}));
  aha::io::save_checkpoint(dir, {{"x", at::zeros({16})}, {"y", at::zeros({17})}}, {}, 128);
  EXPECT_EQ(Checkpoint::open(dir).num_shards(), 2u);
  EXPECT_THAT(error_of([&] {
                aha::io::save_checkpoint(dir, {{"x", at::zeros({1})}}, {}, 0);
              }),
              HasSubstr("max_shard_bytes must be positive"));
}

TEST_F(SafetensorsCheckpoint, OpenErrors) {
  EXPECT_THAT(error_of([&] { Checkpoint::open(dir_.string()); }),
              HasSubstr("no model.safetensors.index.json or model.safetensors in this directory"));
  const std::string missing = path("nothing.safetensors");
  const std::string msg = error_of([&] { Checkpoint::open(missing); });
  EXPECT_THAT(msg, StartsWith(missing + ": "));
  EXPECT_THAT(msg, HasSubstr("no such file or directory"));

  const Checkpoint c = Checkpoint::open(kData + "/sharded");
  EXPECT_THAT(error_of([&] { c.tensor("nope"); }), HasSubstr("no tensor \"nope\" in this checkpoint"));
  EXPECT_THAT(error_of([&] { c.entry("nope"); }), HasSubstr("no tensor \"nope\" in this checkpoint"));
}

class SafetensorsIndex : public SafetensorsTest {
 protected:
  // A copy of the sharded fixture whose index is replaced by `index` (unless empty).
  std::string with_index(const std::string& index) {
    const std::string dir = path("ckpt");
    fs::copy(kData + "/sharded", dir, fs::copy_options::recursive);
    if (!index.empty()) aha::io::write_file_atomic(dir + "/model.safetensors.index.json", index);
    return dir;
  }
  json fixture_index() const { return read_json(kData + "/sharded/model.safetensors.index.json"); }
};

TEST_F(SafetensorsIndex, MissingShardIsNamed) {
  const std::string dir = with_index("");
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  const std::string msg = error_of([&] { Checkpoint::open(dir); });
  EXPECT_THAT(msg, HasSubstr(dir + "/model-00002-of-00002.safetensors"));
  EXPECT_THAT(msg, HasSubstr("shard listed in the index is missing"));
}

TEST_F(SafetensorsIndex, TensorNotInItsShard) {
  json index = fixture_index();
  index["weight_map"]["model.ghost.weight"] = "model-00001-of-00002.safetensors";
  const std::string dir = with_index(index.dump());
  const std::string msg = error_of([&] { Checkpoint::open(dir); });
  EXPECT_THAT(msg,
              HasSubstr("the index maps tensor \"model.ghost.weight\" to model-00001-of-00002.safetensors"));
  EXPECT_THAT(msg, HasSubstr("which does not contain it"));
}

TEST_F(SafetensorsIndex, TensorInAnotherShard) {
  json index = fixture_index();
  index["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  const std::string dir = with_index(index.dump());
  const std::string msg = error_of([&] { Checkpoint::open(dir); });
  EXPECT_THAT(msg, HasSubstr("the index maps tensor \"lm_head.weight\" to model-00001-of-00002.safetensors"));
  EXPECT_THAT(msg, HasSubstr("but it is in " + dir + "/model-00002-of-00002.safetensors"));
}

TEST_F(SafetensorsIndex, TensorInTwoShards) {
  const std::string dir = path("ckpt");
  fs::create_directories(dir);
  aha::io::save_safetensors(dir + "/s1.safetensors", {{"w", at::ones({2})}});
  aha::io::save_safetensors(dir + "/s2.safetensors", {{"w", at::zeros({2})}, {"v", at::zeros({1})}});
  aha::io::write_file_atomic(dir + "/model.safetensors.index.json",
                             R"({"weight_map": {"w": "s1.safetensors", "v": "s2.safetensors"}})");
  const std::string msg = error_of([&] { Checkpoint::open(dir); });
  EXPECT_THAT(msg, HasSubstr("tensor \"w\" is also in"));
  EXPECT_THAT(msg, HasSubstr("s1.safetensors"));
  EXPECT_THAT(msg, HasSubstr("s2.safetensors"));
}

TEST_F(SafetensorsIndex, MalformedIndex) {
  const std::string index_path = path("ckpt") + "/model.safetensors.index.json";
  std::string msg = error_of([&] { Checkpoint::open(with_index("{\"weight_map\": ")); });
  EXPECT_THAT(msg, StartsWith(index_path + ": "));
  EXPECT_THAT(msg, HasSubstr("invalid JSON"));
  fs::remove_all(path("ckpt"));
  EXPECT_THAT(error_of([&] { Checkpoint::open(with_index(R"({"metadata": {}})")); }),
              HasSubstr("expected an object with a \"weight_map\" object"));
  fs::remove_all(path("ckpt"));
  EXPECT_THAT(error_of([&] { Checkpoint::open(with_index(R"({"weight_map": {"a": 3}})")); }),
              HasSubstr("weight_map[\"a\"] must be a file name"));
}

TEST_F(SafetensorsIndex, IndexTakesPrecedenceOverModelSafetensors) {
  const std::string dir = with_index("");
  aha::io::save_safetensors(dir + "/model.safetensors", {{"other", at::ones({1})}});
  const Checkpoint c = Checkpoint::open(dir);
  EXPECT_EQ(c.num_shards(), 2u);
  EXPECT_FALSE(c.contains("other"));
  EXPECT_TRUE(c.contains("lm_head.weight"));
}
