#include <iostream>

#include "aha/core/build_info.h"
#include "commands.h"

namespace aha::cli {

void add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "print the build: versions, CUDA kernels, visible GPUs");
  cmd->callback([] {
    const BuildInfo b = build_info();
    std::cout << "aha " << b.aha_version << "\n"
              << "torch " << b.torch_version << "\n"
              << "cuda kernels (sm_90a): " << (b.cuda_kernels ? "built" : "not built") << "\n"
              << "cuda available: " << (b.cuda_available ? "yes" : "no") << "\n";
    for (size_t i = 0; i < b.gpus.size(); ++i)
      std::cout << "gpu " << i << ": " << b.gpus[i] << "\n";
  });
}

}  // namespace aha::cli
