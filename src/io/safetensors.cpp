#include "aha/io/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "aha/core/error.h"
#include "aha/io/file.h"

namespace aha::io {
namespace fs = std::filesystem;

at::ScalarType to_scalar_type(st::Dtype d) {
  switch (d) {
    case st::Dtype::F64:
      return at::kDouble;
    case st::Dtype::F32:
      return at::kFloat;
    case st::Dtype::F16:
      return at::kHalf;
    case st::Dtype::BF16:
      return at::kBFloat16;
    case st::Dtype::F8_E4M3:
      return at::kFloat8_e4m3fn;
    case st::Dtype::F8_E5M2:
      return at::kFloat8_e5m2;
    case st::Dtype::I64:
      return at::kLong;
    case st::Dtype::I32:
      return at::kInt;
    case st::Dtype::I16:
      return at::kShort;
    case st::Dtype::I8:
      return at::kChar;
    case st::Dtype::U8:
      return at::kByte;
    case st::Dtype::BOOL:
      return at::kBool;
  }
  AHA_FAIL("unknown safetensors dtype");
}

st::Dtype to_safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return st::Dtype::F64;
    case at::kFloat:
      return st::Dtype::F32;
    case at::kHalf:
      return st::Dtype::F16;
    case at::kBFloat16:
      return st::Dtype::BF16;
    case at::kFloat8_e4m3fn:
      return st::Dtype::F8_E4M3;
    case at::kFloat8_e5m2:
      return st::Dtype::F8_E5M2;
    case at::kLong:
      return st::Dtype::I64;
    case at::kInt:
      return st::Dtype::I32;
    case at::kShort:
      return st::Dtype::I16;
    case at::kChar:
      return st::Dtype::I8;
    case at::kByte:
      return st::Dtype::U8;
    case at::kBool:
      return st::Dtype::BOOL;
    default:
      AHA_FAIL("dtype ", c10::toString(t), " cannot be stored in safetensors");
  }
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  f.header_ = st::parse(f.file_->bytes(), path);
  return f;
}

const std::string& SafetensorsFile::path() const {
  return file_->path();
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(header_.tensors.size());
  for (const auto& t : header_.tensors)
    out.push_back(t.name);
  return out;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const st::TensorEntry* e = header_.find(name);
  if (!e) throw Error("no tensor \"" + name + "\" in this file", file_->path());
  std::byte* data = file_->bytes().data() + header_.buffer_start + e->begin;
  const auto options = at::TensorOptions().dtype(to_scalar_type(e->dtype)).device(at::kCPU);
  const size_t elem = st::dtype_size(e->dtype);
  if (e->nbytes() == 0) return at::empty(e->shape, options);
  if (reinterpret_cast<uintptr_t>(data) % elem == 0) {
    // Zero-copy: the tensor's deleter holds the mapping alive.
    auto keep = file_;
    return at::from_blob(
        data, e->shape, [keep](void*) mutable { keep.reset(); }, options);
  }
  at::Tensor out = at::empty(e->shape, options);
  std::memcpy(out.data_ptr(), data, e->nbytes());
  return out;
}

std::vector<NamedTensor> SafetensorsFile::all() const {
  std::vector<NamedTensor> out;
  for (const auto& t : header_.tensors)
    out.emplace_back(t.name, tensor(t.name));
  return out;
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<st::TensorEntry> entries;
  std::vector<at::Tensor> data;
  entries.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    AHA_CHECK(t.defined(), "tensor \"", name, "\" is undefined");
    st::TensorEntry e;
    e.name = name;
    e.dtype = to_safetensors_dtype(t.scalar_type());
    e.shape.assign(t.sizes().begin(), t.sizes().end());
    entries.push_back(std::move(e));
    // Sparse and other non-strided layouts have no contiguous() of their own: write their dense values.
    at::Tensor dense = t.layout() == at::kStrided ? t : t.to_dense();
    data.push_back(dense.device().is_cpu() ? dense.contiguous() : dense.to(at::kCPU).contiguous());
  }
  const std::string head = st::layout(entries, metadata);
  AtomicFile out(path);
  out.write(head);
  for (const auto& t : data)
    out.write(t.data_ptr(), t.nbytes());
  out.commit();
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  c.path_ = path;
  std::vector<std::string> files;
  std::map<std::string, std::string> expected;  // tensor -> shard file, from the index
  if (fs::is_directory(path)) {
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::exists(index)) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_file(index.string()));
      } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("invalid JSON: ") + e.what(), index.string());
      }
      if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw Error("expected an object with a \"weight_map\" object", index.string());
      if (j.contains("metadata") && j["metadata"].is_object())
        for (auto it = j["metadata"].begin(); it != j["metadata"].end(); ++it)
          c.metadata_[it.key()] = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string())
          throw Error("weight_map[\"" + it.key() + "\"] must be a file name", index.string());
        expected[it.key()] = it.value().get<std::string>();
        if (std::find(files.begin(), files.end(), it.value().get<std::string>()) == files.end())
          files.push_back(it.value().get<std::string>());
      }
    } else if (fs::exists(fs::path(path) / "model.safetensors")) {
      files.push_back("model.safetensors");
    } else {
      throw Error("no model.safetensors.index.json or model.safetensors in this directory", path);
    }
    for (auto& f : files)
      f = (fs::path(path) / f).string();
  } else {
    if (!fs::exists(path)) throw Error("no such file or directory", path);
    files.push_back(path);
  }
  for (const auto& file : files) {
    if (!fs::exists(file)) throw Error("shard listed in the index is missing", file);
    c.shards_.push_back(SafetensorsFile::open(file));
    const size_t i = c.shards_.size() - 1;
    for (const auto& [k, v] : c.shards_[i].metadata())
      c.metadata_.emplace(k, v);
    for (const auto& t : c.shards_[i].header().tensors) {
      auto [it, inserted] = c.where_.emplace(t.name, i);
      if (!inserted)
        throw Error("tensor \"" + t.name + "\" is also in " + c.shards_[it->second].path(), file);
    }
  }
  for (const auto& [name, file] : expected) {
    auto it = c.where_.find(name);
    if (it == c.where_.end())
      throw Error("the index maps tensor \"" + name + "\" to " + file + ", which does not contain it", path);
    if (fs::path(c.shards_[it->second].path()).filename() != fs::path(file).filename())
      throw Error("the index maps tensor \"" + name + "\" to " + file + " but it is in " +
                      c.shards_[it->second].path(),
                  path);
  }
  return c;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : where_)
    out.push_back(name);
  return out;
}

const st::TensorEntry& Checkpoint::entry(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error("no tensor \"" + name + "\" in this checkpoint", path_);
  return *shards_[it->second].header().find(name);
}

at::Tensor Checkpoint::tensor(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error("no tensor \"" + name + "\" in this checkpoint", path_);
  return shards_[it->second].tensor(name);
}

void save_checkpoint(const std::string& dir, const std::vector<NamedTensor>& tensors,
                     const std::map<std::string, std::string>& metadata, uint64_t max_shard_bytes) {
  AHA_CHECK(max_shard_bytes > 0, "max_shard_bytes must be positive");
  make_dirs(dir);
  std::vector<std::vector<NamedTensor>> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& nt : tensors) {
    const uint64_t bytes = nt.second.defined() ? nt.second.nbytes() : 0;
    if (!shards.back().empty() && current + bytes > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(nt);
    current += bytes;
    total += bytes;
  }
  const fs::path root(dir);
  if (shards.size() == 1) {
    save_safetensors((root / "model.safetensors").string(), shards[0], metadata);
    // A stale index from an earlier sharded save would shadow the new file.
    std::error_code ec;
    fs::remove(root / "model.safetensors.index.json", ec);
    return;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  for (const auto& [k, v] : metadata)
    index["metadata"][k] = v;
  index["weight_map"] = nlohmann::ordered_json::object();
  const size_t n = shards.size();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    save_safetensors((root / name).string(), shards[i], metadata);
    for (const auto& nt : shards[i])
      index["weight_map"][nt.first] = name;
  }
  write_file_atomic((root / "model.safetensors.index.json").string(), index.dump(2) + "\n");
}

}  // namespace aha::io
