// `aha launch`: starts the local ranks of a run on this node, the way torchrun does without its elastic
// agent.
//
// Each rank is a child process with RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR
// and MASTER_PORT set (topology.h reads them), in its own process group, killed if the launcher dies. SIGINT
// and SIGTERM sent to the launcher are forwarded once to every rank (so the trainer checkpoints and stops).
// When a rank fails (non-zero exit or a signal) the others get SIGTERM, then SIGKILL after `grace_s`, and the
// launcher returns the failing rank's exit code (128 + signal for a signal). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace aha::dist {

struct LaunchOptions {
  int64_t nproc_per_node = 1;             // ranks started on this node
  int64_t nnodes = 1;                     // nodes in the run, each running its own launcher
  int64_t node_rank = 0;                  // this node among them (0 hosts the rendezvous)
  std::string master_addr = "127.0.0.1";  // host of node 0
  int64_t master_port = 0;                // 0: a free local port when nnodes = 1, else 29500
  bool prefix_output = false;             // prefix each output line with "[rank N] "
  double grace_s = 10;  // after a failure: SIGTERM to the others, SIGKILL after this many seconds
  std::vector<std::string> command;  // argv of every rank; a first word "aha" runs `aha_executable`
  std::string aha_executable;        // what "aha" means (the CLI passes itself); empty: looked up in PATH
};

// Runs the ranks until all have exited; returns 0, or the exit code of the first rank that failed.
// Errors in the options (and a command that cannot start) throw before any rank starts.
int launch(const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free when asked (the kernel's choice).
int64_t free_port();

}  // namespace aha::dist
