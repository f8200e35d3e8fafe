// Where this process sits in a distributed run, read from the variables the launchers set.
//
// Three sources, first match wins:
//   torchrun / `aha launch`: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, and
//     TORCHELASTIC_USE_AGENT_STORE=True when torchrun's agent already hosts the store on MASTER_PORT;
//   Slurm (srun): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE, and the first host of
//     SLURM_JOB_NODELIST (or SLURM_NODELIST) as the rendezvous host;
//   none of them: one process, which needs no store and no process group at all.
// RendezvousOptions (the run's dist.master_addr, dist.master_port) override the rendezvous address of every
// source. Nothing here connects to anything: process_group.h does that.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace aha::dist {

struct WorldSpec {
  int64_t rank = 0;                       // this process among all of them
  int64_t world_size = 1;                 // processes in the run
  int64_t local_rank = 0;                 // this process among those on its node (its GPU index)
  int64_t local_world_size = 1;           // processes on this node
  std::string master_addr = "127.0.0.1";  // host of the TCPStore rendezvous
  int64_t master_port = 29500;            // its port
  bool agent_store = false;               // torchrun's agent hosts the store: every rank connects as a client
  std::string backend = "auto";           // auto (nccl on CUDA, gloo on CPU), nccl or gloo
  double timeout_s = 600;                 // rendezvous and collective timeout
  std::string source = "single";          // single, RANK/WORLD_SIZE (torchrun, `aha launch`) or slurm
};

// Environment variables by name (tests pass their own; the program passes process_environment()).
using Environment = std::map<std::string, std::string>;

// The variables of this process that resolve_world reads.
Environment process_environment();

// What the run's settings (not the launcher) say about the rendezvous.
struct RendezvousOptions {
  std::string backend = "auto";  // auto (nccl on CUDA, gloo on CPU), nccl or gloo
  double timeout_s = 600;        // rendezvous and collective timeout
  std::string master_addr;       // empty: the launcher's (MASTER_ADDR, the first Slurm host) or 127.0.0.1
  int64_t master_port = 0;       // 0: the launcher's (MASTER_PORT) or 29500
};

// The world of this process from `env` and the options. Errors name the variable and its value (a
// non-number, a rank outside the world, RANK without WORLD_SIZE, ...).
WorldSpec resolve_world(const RendezvousOptions& options, const Environment& env);

// The first host of a Slurm node list: "node[01-04,07],gpu5" -> "node01", "rack[1-2]-n[3-4]" -> "rack1-n3".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace aha::dist
