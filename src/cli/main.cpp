// aha: R1-Zero-style GRPO from the command line. Every subcommand is a thin layer over the library.
#include <cstdio>
#include <exception>
#include <iostream>

#include "aha/core/error.h"
#include "aha/core/host_memory.h"
#include "aha/version.h"
#include "commands.h"

namespace aha::cli {

void ConfigArgs::add_to(CLI::App& cmd) {
  cmd.add_option("-c,--config", file, "JSON config file (default: the embedded default run)")
      ->check(CLI::ExistingFile);
  cmd.add_option("--set", overrides, "override one field: --set optim.lr=3e-6 (repeatable)")->take_all();
}

}  // namespace aha::cli

int main(int argc, char** argv) {
  aha::core::keep_freed_host_memory();  // big tensors reuse freed memory instead of faulting in new pages
  CLI::App app{
      "aha: R1-Zero-style reinforcement learning (GRPO) of DeepSeek-V3-style models, natively on LibTorch"};
  app.set_version_flag("--version", std::string("aha ") + AHA_VERSION_STRING);
  app.require_subcommand(0, 1);
  aha::cli::add_config_command(app);
  aha::cli::add_inspect_command(app);
  aha::cli::add_info_command(app);
  aha::cli::add_model_commands(app);
  aha::cli::add_tokenize_command(app);
  aha::cli::add_generate_command(app);
  aha::cli::add_score_command(app);
  aha::cli::add_train_commands(app);
  aha::cli::add_launch_command(app);
  aha::cli::add_plan_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const aha::Error& e) {
    std::cerr << "aha: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "aha: error: " << e.what() << "\n";
    return 1;
  }
  if (app.get_subcommands().empty()) {
    std::cout << app.help();
  }
  return 0;
}
