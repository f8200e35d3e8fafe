// The `aha` subcommands. Each registers itself on the app and runs through a callback; the CLI only parses
// arguments into config structs and calls the library.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace aha::cli {

// --config FILE and repeated --set key.path=value, shared by every command that takes a run config.
struct ConfigArgs {
  std::string file;
  std::vector<std::string> overrides;
  void add_to(CLI::App& cmd);
};

void add_config_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_model_commands(CLI::App& app);  // forward, init, convert
void add_tokenize_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_score_command(CLI::App& app);   // score a JSONL file of completions with a config's rewards
void add_train_commands(CLI::App& app);  // train, pretrain, eval
void add_launch_command(CLI::App& app);  // start the local ranks of a data-parallel run
void add_plan_command(CLI::App& app);    // bytes per rank of a sharded / expert-parallel run

}  // namespace aha::cli
