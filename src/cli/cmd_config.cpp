#include <iostream>

#include "aha/core/config.h"
#include "commands.h"

namespace aha::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "print the resolved config (file + --set overrides) as JSON");
  auto args = std::make_shared<ConfigArgs>();
  auto explain = std::make_shared<bool>(false);
  args->add_to(*cmd);
  cmd->add_flag("--explain", *explain, "list every field with its type, value, allowed range and meaning");
  cmd->callback([args, explain] {
    const Config config = load_config(args->file, args->overrides);
    if (!*explain) {
      std::cout << to_json(config).dump(2) << "\n";
      return;
    }
    for (const auto& f : describe_fields(config)) {
      std::cout << f.path << " (" << f.type << ") = " << f.default_value;
      if (!f.constraint.empty()) std::cout << "  [" << f.constraint << "]";
      std::cout << "\n    " << f.doc << "\n";
    }
  });
}

}  // namespace aha::cli
