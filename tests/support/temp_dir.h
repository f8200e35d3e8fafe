// An empty directory of this process under the system's temporary directory: parallel test runs on one
// machine never share one.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

namespace aha::test {

inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  std::filesystem::path d =
      std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace aha::test
