// aha launch: starts the local ranks of a data-parallel run (dist/launch.h), like torchrun without its agent.
#include <unistd.h>

#include <climits>

#include "aha/core/error.h"
#include "aha/dist/launch.h"
#include "commands.h"

namespace aha::cli {

namespace {

std::string self_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

void add_launch_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "launch",
      "start the ranks of a data-parallel run on this node: aha launch --nproc-per-node N -- aha train ...");
  auto o = std::make_shared<dist::LaunchOptions>();
  cmd->add_option("--nproc-per-node", o->nproc_per_node, "ranks on this node (one per GPU)")->required();
  cmd->add_option("--nnodes", o->nnodes, "nodes in the run, each running aha launch")->capture_default_str();
  cmd->add_option("--node-rank", o->node_rank, "this node's index (0 hosts the rendezvous)")
      ->capture_default_str();
  cmd->add_option("--master-addr", o->master_addr, "address of node 0")->capture_default_str();
  cmd->add_option("--master-port", o->master_port,
                  "rendezvous port on node 0 (default: a free port with one node, else 29500)");
  cmd->add_flag("--prefix-output", o->prefix_output, "prefix each rank's output lines with [rank N]");
  cmd->add_option("--grace", o->grace_s, "seconds between SIGTERM and SIGKILL when a rank fails")
      ->capture_default_str();
  cmd->add_option("command", o->command, "the command every rank runs (after --); \"aha\" is this aha")
      ->required();
  cmd->callback([o] {
    o->aha_executable = self_executable();
    const int code = dist::launch(*o);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace aha::cli
