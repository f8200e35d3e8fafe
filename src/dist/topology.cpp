#include "aha/dist/topology.h"

#include <cstdlib>

#include "aha/core/error.h"

namespace aha::dist {

namespace {

const char* const kVariables[] = {"RANK",
                                  "WORLD_SIZE",
                                  "LOCAL_RANK",
                                  "LOCAL_WORLD_SIZE",
                                  "MASTER_ADDR",
                                  "MASTER_PORT",
                                  "TORCHELASTIC_USE_AGENT_STORE",
                                  "SLURM_PROCID",
                                  "SLURM_NTASKS",
                                  "SLURM_LOCALID",
                                  "SLURM_NTASKS_PER_NODE",
                                  "SLURM_JOB_NODELIST",
                                  "SLURM_NODELIST"};

const std::string* find(const Environment& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() || it->second.empty() ? nullptr : &it->second;
}

// A whole non-negative decimal number, or an error naming the variable.
int64_t integer(const Environment& env, const std::string& name) {
  const std::string& v = *find(env, name);
  size_t used = 0;
  long long x = -1;
  try {
    x = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  AHA_CHECK(used == v.size() && x >= 0, "environment variable ", name, "=\"", v,
            "\" is not a non-negative integer");
  return x;
}

// SLURM_NTASKS_PER_NODE reads "4" or "4(x2)": the leading count.
int64_t leading_integer(const std::string& v) {
  int64_t x = 0;
  size_t i = 0;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i)
    x = x * 10 + (v[i] - '0');
  return i == 0 ? 1 : x;
}

}  // namespace

Environment process_environment() {
  Environment env;
  for (const char* name : kVariables)
    if (const char* v = std::getenv(name)) env[name] = v;
  if (const char* v = std::getenv("TORCHELASTIC_RESTART_COUNT")) env["TORCHELASTIC_RESTART_COUNT"] = v;
  return env;
}

std::string first_slurm_host(const std::string& nodelist) {
  // The first top-level item (commas inside brackets separate ranges, not hosts).
  std::string item;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    item += c;
  }
  AHA_CHECK(depth == 0, "malformed Slurm node list \"", nodelist, "\": unbalanced brackets");
  // Each bracket group contributes the start of its first range: "[01-04,07]" -> "01".
  std::string host;
  for (size_t i = 0; i < item.size(); ++i) {
    if (item[i] != '[') {
      host += item[i];
      continue;
    }
    const size_t close = item.find(']', i);
    AHA_CHECK(close != std::string::npos, "malformed Slurm node list \"", nodelist, "\": unclosed [");
    const std::string group = item.substr(i + 1, close - i - 1);
    const std::string first = group.substr(0, group.find_first_of(",-"));
    AHA_CHECK(!first.empty(), "malformed Slurm node list \"", nodelist, "\": empty range");
    host += first;
    i = close;
  }
  AHA_CHECK(!host.empty(), "empty Slurm node list");
  return host;
}

WorldSpec resolve_world(const RendezvousOptions& dist, const Environment& env) {
  WorldSpec w;
  w.backend = dist.backend;
  w.timeout_s = dist.timeout_s;
  if (find(env, "WORLD_SIZE") || find(env, "RANK")) {
    AHA_CHECK(find(env, "WORLD_SIZE"),
              "RANK is set but WORLD_SIZE is not (torchrun and `aha launch` set both)");
    AHA_CHECK(find(env, "RANK"), "WORLD_SIZE is set but RANK is not (torchrun and `aha launch` set both)");
    w.source = "RANK/WORLD_SIZE";
    w.rank = integer(env, "RANK");
    w.world_size = integer(env, "WORLD_SIZE");
    w.local_rank = find(env, "LOCAL_RANK") ? integer(env, "LOCAL_RANK") : 0;
    w.local_world_size = find(env, "LOCAL_WORLD_SIZE") ? integer(env, "LOCAL_WORLD_SIZE") : 1;
    if (find(env, "MASTER_ADDR")) w.master_addr = *find(env, "MASTER_ADDR");
    if (find(env, "MASTER_PORT")) w.master_port = integer(env, "MASTER_PORT");
    const std::string* agent = find(env, "TORCHELASTIC_USE_AGENT_STORE");
    w.agent_store = agent && *agent == "True";
  } else if (find(env, "SLURM_PROCID") && find(env, "SLURM_NTASKS")) {
    w.source = "slurm";
    w.rank = integer(env, "SLURM_PROCID");
    w.world_size = integer(env, "SLURM_NTASKS");
    w.local_rank = find(env, "SLURM_LOCALID") ? integer(env, "SLURM_LOCALID") : 0;
    w.local_world_size =
        find(env, "SLURM_NTASKS_PER_NODE") ? leading_integer(*find(env, "SLURM_NTASKS_PER_NODE")) : 1;
    if (find(env, "MASTER_ADDR")) {
      w.master_addr = *find(env, "MASTER_ADDR");
    } else if (const std::string* list = find(env, "SLURM_JOB_NODELIST") ? find(env, "SLURM_JOB_NODELIST")
                                                                         : find(env, "SLURM_NODELIST")) {
      w.master_addr = first_slurm_host(*list);
    }
    if (find(env, "MASTER_PORT")) w.master_port = integer(env, "MASTER_PORT");
  }
  if (!dist.master_addr.empty()) w.master_addr = dist.master_addr;
  if (dist.master_port > 0) w.master_port = dist.master_port;
  AHA_CHECK(w.world_size >= 1, "the world size (", w.source == "slurm" ? "SLURM_NTASKS" : "WORLD_SIZE",
            ") is 0");
  AHA_CHECK(w.rank < w.world_size, "rank ", w.rank, " (", w.source == "slurm" ? "SLURM_PROCID" : "RANK",
            ") is outside a world of ", w.world_size, " processes");
  AHA_CHECK(w.master_port > 0 && w.master_port < 65536, "the rendezvous port ", w.master_port,
            " (MASTER_PORT or dist.master_port) is not a TCP port");
  return w;
}

}  // namespace aha::dist
