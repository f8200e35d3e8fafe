#include <iomanip>
#include <iostream>
#include <sstream>

#include "aha/io/safetensors.h"
#include "commands.h"

namespace aha::cli {

void add_inspect_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("inspect", "list the tensors of a safetensors file or HF checkpoint directory");
  auto path = std::make_shared<std::string>();
  cmd->add_option("path", *path, "a .safetensors file, or a directory with model.safetensors[.index.json]")
      ->required();
  cmd->callback([path] {
    const auto ckpt = io::Checkpoint::open(*path);
    uint64_t total = 0;
    for (const auto& name : ckpt.names()) {
      const auto& e = ckpt.entry(name);
      std::ostringstream shape;
      shape << "[";
      for (size_t i = 0; i < e.shape.size(); ++i)
        shape << (i ? ", " : "") << e.shape[i];
      shape << "]";
      std::cout << std::left << std::setw(60) << name << " " << std::setw(8) << io::st::dtype_name(e.dtype)
                << " " << shape.str() << "\n";
      total += e.nbytes();
    }
    std::cout << ckpt.names().size() << " tensors, " << total << " bytes, " << ckpt.num_shards()
              << " file(s)\n";
    for (const auto& [k, v] : ckpt.metadata())
      std::cout << "metadata " << k << " = " << v << "\n";
  });
}

}  // namespace aha::cli
