#include "aha/io/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "aha/core/error.h"

namespace aha::io::st {
namespace {

using json = nlohmann::json;

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {Dtype::F64, "F64", 8},   {Dtype::F32, "F32", 4},         {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2}, {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::F8_E5M2, "F8_E5M2", 1},
    {Dtype::I64, "I64", 8},   {Dtype::I32, "I32", 4},         {Dtype::I16, "I16", 2},
    {Dtype::I8, "I8", 1},     {Dtype::U8, "U8", 1},           {Dtype::BOOL, "BOOL", 1},
};

// The first `max` bytes of `s` (fewer if that would split a UTF-8 sequence), "..." marking a cut.
std::string clip(const std::string& s, size_t max) {
  if (s.size() <= max) return s;
  size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80)
    --cut;
  return s.substr(0, cut) + "...";
}

// A name for an error message: quoted, escaped, and at most 80 bytes however long the name.
std::string shown(const std::string& name) {
  std::string s = json(name).dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 80 ? clip(s, 79) + "\"" : s;
}

// A shape for an error message: its JSON when that is flat and short (dump() recurses, so a deeply nested
// value from a hostile header must never reach it), elided otherwise.
std::string shown_shape(const json& shape) {
  if (!shape.is_array()) return shape.type_name();
  std::string s = "[";
  for (const auto& d : shape) {
    if (s.size() > 80) return s + ",...]";
    if (s.size() > 1) s += ",";
    s += d.is_string()      ? shown(d.get<std::string>())
         : d.is_primitive() ? d.dump()
                            : std::string(d.type_name());
  }
  return s + "]";
}

}  // namespace

std::string_view dtype_name(Dtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i.name;
  return "?";
}

std::optional<Dtype> parse_dtype(std::string_view name) {
  for (const auto& i : kDtypes)
    if (i.name == name) return i.dtype;
  return std::nullopt;
}

size_t dtype_size(Dtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i.size;
  return 0;
}

uint64_t TensorEntry::numel() const {
  uint64_t n = 1;
  for (int64_t s : shape)
    n *= static_cast<uint64_t>(s);
  return n;
}

const TensorEntry* Header::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Header parse(std::span<const std::byte> file, const std::string& source) {
  auto fail = [&](const std::string& why) -> void { throw Error(why, source); };
  if (file.size() < 8)
    fail("not a safetensors file: " + std::to_string(file.size()) +
         " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  if (n > kMaxHeaderBytes)
    fail("header length " + std::to_string(n) +
         " exceeds the 100 MB limit (corrupt or not a safetensors file)");
  if (n > file.size() - 8)
    fail("header length " + std::to_string(n) + " runs past the end of the file (" +
         std::to_string(file.size()) + " bytes): truncated?");
  if (n < 2) fail("header of " + std::to_string(n) + " bytes cannot hold a JSON object");

  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  // `json` sorts its keys; the callback records the header's own order (and finds duplicates, which `json`
  // would silently collapse).
  std::set<std::string> seen;
  std::vector<std::string> order;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (seen.insert(key).second)
        order.push_back(key);
      else
        duplicate = key;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    // The parser quotes the token it stopped in, which can be as long as the header.
    fail("header is not valid JSON: " + clip(e.what(), 240));
  }
  if (!duplicate.empty()) fail("tensor " + shown(duplicate) + " appears twice in the header");
  if (!j.is_object()) fail("header JSON must be an object");

  Header h;
  h.buffer_start = 8 + n;
  const uint64_t buffer_size = file.size() - h.buffer_start;
  for (const std::string& name : order) {
    const json& v = j.at(name);
    if (name == "__metadata__") {
      if (!v.is_object()) fail("__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__ value for " + shown(m.key()) + " must be a string");
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + shown(name);
    if (!v.is_object()) fail(where + ": entry must be an object with dtype, shape and data_offsets");
    for (auto f = v.begin(); f != v.end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        fail(where + ": unknown field " + shown(f.key()));
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || sh == v.end() || off == v.end())
      fail(where + ": entry needs dtype, shape and data_offsets");
    if (!dt->is_string()) fail(where + ": dtype must be a string");
    TensorEntry t;
    t.name = name;
    auto d = parse_dtype(dt->get_ref<const std::string&>());
    if (!d)
      fail(where + ": unknown dtype " + shown(dt->get<std::string>()) +
           " (supported: F64 F32 F16 BF16 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U8 BOOL)");
    t.dtype = *d;
    if (!sh->is_array()) fail(where + ": shape must be an array of non-negative integers");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& s : *sh) {
      if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<int64_t>() >= 0))
        fail(where + ": shape must be an array of non-negative integers, got " + shown_shape(*sh));
      uint64_t dim = s.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) overflow = true;
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, dtype_size(t.dtype), &nbytes);
    if (overflow) fail(where + ": shape " + shown_shape(*sh) + " is too large");
    if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(where + ": data_offsets must be [begin, end] with non-negative integers");
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.end < t.begin) fail(where + ": data_offsets end " + std::to_string(t.end) + " is before begin");
    if (t.end > buffer_size)
      fail(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           ") run past the end of the data (" + std::to_string(buffer_size) + " bytes): truncated file?");
    if (t.end - t.begin != nbytes)
      fail(where + ": shape " + shown_shape(*sh) + " of " + std::string(dtype_name(t.dtype)) + " needs " +
           std::to_string(nbytes) + " bytes but data_offsets span " + std::to_string(t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }

  std::vector<const TensorEntry*> by_offset;
  for (const auto& t : h.tensors)
    by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t expected = 0;
  for (const TensorEntry* t : by_offset) {
    if (t->begin < expected)
      fail("tensor " + shown(t->name) + " overlaps the tensor before it in the buffer");
    if (t->begin > expected)
      fail("gap in the data buffer before tensor " + shown(t->name) + " (bytes " + std::to_string(expected) +
           " to " + std::to_string(t->begin) + " belong to no tensor)");
    expected = t->end;
  }
  if (expected != buffer_size)
    fail("the data buffer has " + std::to_string(buffer_size - expected) + " bytes after the last tensor");
  return h;
}

std::string layout(std::vector<TensorEntry>& entries, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata.empty()) j["__metadata__"] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (auto& t : entries) {
    AHA_CHECK(!t.name.empty(), "a tensor needs a name");
    AHA_CHECK(t.name != "__metadata__", "\"__metadata__\" is reserved and cannot name a tensor");
    AHA_CHECK(names.insert(t.name).second, "tensor name \"", t.name, "\" given twice");
    for (int64_t s : t.shape)
      AHA_CHECK(s >= 0, "tensor \"", t.name, "\" has a negative dimension");
    t.begin = offset;
    t.end = offset + t.numel() * dtype_size(t.dtype);
    offset = t.end;
    j[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {t.begin, t.end}}};
  }
  std::string text = j.dump();
  while ((8 + text.size()) % 8 != 0)
    text.push_back(' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

}  // namespace aha::io::st
