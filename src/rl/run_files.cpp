#include "aha/rl/run_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "aha/core/error.h"
#include "aha/io/file.h"
#include "aha/io/jsonl.h"
#include "aha/io/plot.h"

namespace aha::rl {

namespace fs = std::filesystem;

namespace {

std::string fnv1a64(const std::string& data) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

Json checksum_tree(const std::string& dir) {
  std::map<std::string, Json> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), dir).generic_string();
    const std::string data = io::read_file(e.path().string());
    files[rel] = Json{{"bytes", data.size()}, {"fnv1a64", fnv1a64(data)}};
  }
  Json out = Json::object();
  for (auto& [k, v] : files)
    out[k] = v;
  return out;
}

void verify_tree(const std::string& dir, const Json& expected) {
  AHA_CHECK(expected.is_object(), dir, ": trainer_state.json has no file list");
  for (const auto& [rel, want] : expected.items()) {
    const fs::path p = fs::path(dir) / rel;
    AHA_CHECK(fs::exists(p), "checkpoint ", dir, " is damaged: ", rel, " is missing");
    const std::string data = io::read_file(p.string());
    AHA_CHECK(data.size() == want.at("bytes").get<uint64_t>(), "checkpoint ", dir, " is damaged: ", rel,
              " has ", data.size(), " bytes, expected ", want.at("bytes").get<uint64_t>());
    AHA_CHECK(fnv1a64(data) == want.at("fnv1a64").get<std::string>(), "checkpoint ", dir,
              " is damaged: ", rel, " does not match its checksum");
  }
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string commit_checkpoint(const std::string& run_dir, const std::string& name,
                              const std::function<void(const std::string& dir)>& write, Json state,
                              int64_t keep) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  io::make_dirs(root.string());
  const fs::path tmp = root / (".tmp-" + name);
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  write(tmp.string());
  state["files"] = checksum_tree(tmp.string());
  io::write_file_atomic((tmp / "trainer_state.json").string(), state.dump(2));
  fsync_dir(tmp.string());
  const fs::path final_dir = root / name;
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_dir(root.string());
  io::write_file_atomic((root / "latest").string(), name + "\n");
  std::vector<std::pair<int64_t, fs::path>> all;
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("step-", 0) == 0) all.push_back({std::stoll(n.substr(5)), e.path()});
  }
  std::sort(all.begin(), all.end());
  while (static_cast<int64_t>(all.size()) > keep) {
    fs::remove_all(all.front().second);
    all.erase(all.begin());
  }
  return final_dir.string();
}

Json read_checkpoint_state(const std::string& dir) {
  const Json st = read_json_file((fs::path(dir) / "trainer_state.json").string());
  verify_tree(dir, st.at("files"));
  return st;
}

void truncate_jsonl_after_step(const std::string& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::istringstream in(io::read_file(path));
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;  // a line cut short by a crash
    if (j.is_object() && j.contains("step") && j["step"].is_number() && j["step"].get<int64_t>() > step)
      continue;
    out += line;
    out += '\n';
  }
  io::write_file_atomic(path, out);
}

std::vector<Json> read_metrics(const std::string& path) {
  std::vector<Json> out;
  if (!fs::exists(path)) return out;
  std::istringstream in(io::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

void write_run_plot(const std::string& run_dir, const std::vector<Json>& history) {
  auto series = [&](const std::string& key, const std::string& name) {
    io::Series s;
    s.name = name;
    for (const auto& m : history) {
      if (!m.contains(key) || !m[key].is_number() || !m.contains("step")) continue;
      s.x.push_back(m["step"].get<double>());
      s.y.push_back(m[key].get<double>());
    }
    return s;
  };
  io::Panel reward{"reward", "step", "mean reward", {series("reward", "total")}};
  Json last = Json::object();
  for (const auto& m : history)
    if (m.contains("reward")) last = m;
  for (const auto& [key, value] : last.items()) {
    if (key.rfind("rewards/", 0) == 0 && key.find("_std") == std::string::npos)
      reward.series.push_back(series(key, key.substr(8)));
  }
  io::Panel accuracy{"accuracy",
                     "step",
                     "share correct",
                     {series("accuracy", "training samples"), series("eval/accuracy", "held-out (greedy)")}};
  io::Panel length{"completion length", "step", "tokens", {series("completion_len", "mean")}};
  io::write_plot_png((fs::path(run_dir) / "plot.png").string(), {reward, accuracy, length});
}

}  // namespace aha::rl
