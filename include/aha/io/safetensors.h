// safetensors files and HF checkpoints as torch tensors: read (memory-mapped, zero-copy where aligned) and
// write.
//
// A checkpoint is either one `model.safetensors` file or shards listed in `model.safetensors.index.json`
// ({"metadata": {...}, "weight_map": {tensor name: shard file}}), as HF transformers writes them.
// Tensors read from a file point into a copy-on-write mapping kept alive by the tensor itself: writing to
// them never changes the file. A tensor whose bytes are not aligned to its element size is copied instead.
// Writes are atomic per file (io/file.h): a crash never leaves a truncated file under its final name.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aha/io/safetensors_format.h"

namespace aha::io {

class MappedFile;

at::ScalarType to_scalar_type(st::Dtype d);
// Throws for dtypes safetensors cannot hold (complex, quantized, ...), naming them.
st::Dtype to_safetensors_dtype(at::ScalarType t);

// One tensor to write: name and value (any device, any layout; written as a contiguous CPU copy when needed).
using NamedTensor = std::pair<std::string, at::Tensor>;

class SafetensorsFile {
 public:
  // Maps and validates the file (every error names the path).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const;
  const st::Header& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> names() const;  // in file order
  bool contains(const std::string& name) const { return header_.find(name) != nullptr; }

  // The tensor `name` on the CPU; throws naming the file and the tensor when it is absent.
  at::Tensor tensor(const std::string& name) const;
  std::vector<NamedTensor> all() const;

 private:
  std::shared_ptr<MappedFile> file_;
  st::Header header_;
};

// Writes one safetensors file atomically.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint directory (or a single .safetensors file): one or many shards, read as one set of tensors.
class Checkpoint {
 public:
  // `path`: a .safetensors file, or a directory with model.safetensors.index.json or model.safetensors.
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  at::Tensor tensor(const std::string& name) const;
  // Shape and dtype without reading the data.
  const st::TensorEntry& entry(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t num_shards() const { return shards_.size(); }

 private:
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> shard
  std::map<std::string, std::string> metadata_;
  std::string path_;
};

// Writes `dir`/model.safetensors, or, when the tensors exceed `max_shard_bytes`, shards
// model-00001-of-0000N.safetensors plus model.safetensors.index.json. Tensors keep their order; a tensor
// larger than the limit gets a shard of its own. The index is written last, so a reader never sees an index
// without its shards.
void save_checkpoint(const std::string& dir, const std::vector<NamedTensor>& tensors,
                     const std::map<std::string, std::string>& metadata = {},
                     uint64_t max_shard_bytes = 5'000'000'000ull);

}  // namespace aha::io
