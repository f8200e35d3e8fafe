// Whole-file reads, crash-safe writes, and read-only memory maps.
//
// A write never leaves a half-written file under the target name: data goes to a temporary file in the same
// directory, is flushed to disk, and is renamed over the target (atomic on POSIX), so a crash mid-save keeps
// the previous version intact.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace aha::io {

// Reads the whole file; throws aha::Error naming the path (and errno's text) when it cannot.
std::string read_file(const std::string& path);

// A file written in pieces that appears under its name only on commit(): until then the data lives in a
// temporary file beside it, which the destructor removes when commit() was never reached (an exception, a
// crash).
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view data) { write(data.data(), data.size()); }
  // Flushes to disk and renames the temporary file over the target.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// Writes `data` to `path` atomically (temporary file, fsync, rename). Creates no directories.
void write_file_atomic(const std::string& path, std::string_view data);

// Creates `path` and its parents if missing.
void make_dirs(const std::string& path);

// A file mapped copy-on-write: readable through `bytes()`, and writes through the mapping never reach the
// file. Empty files map to an empty span. Shared ownership so tensors that point into the map can keep it
// alive.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<std::byte> bytes() const { return {static_cast<std::byte*>(data_), size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  void* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace aha::io
