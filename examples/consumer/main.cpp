// Links aha as a library: resolves a config with an override, saves tensors as an HF-style checkpoint, reads
// them back zero-copy. Prints one line per step; exits non-zero on any mismatch.
#include <ATen/ATen.h>

#include <aha/aha.h>
#include <filesystem>
#include <iostream>

int main() {
  try {
    const aha::Config config = aha::load_config("", {"optim.lr=3e-6", "rollout.num_generations=16"});
    std::cout << "config: lr " << config.optim.lr << ", G " << config.rollout.num_generations << "\n";

    const auto dir = (std::filesystem::temp_directory_path() / "aha_consumer_ckpt").string();
    const at::Tensor w = at::arange(12, at::kFloat).reshape({3, 4}).to(at::kBFloat16);
    aha::io::save_checkpoint(dir, {{"model.embed_tokens.weight", w}}, {{"format", "pt"}});
    const auto ckpt = aha::io::Checkpoint::open(dir);
    const at::Tensor back = ckpt.tensor("model.embed_tokens.weight");
    std::cout << "checkpoint: " << ckpt.names().size() << " tensor, dtype " << back.scalar_type()
              << ", equal " << std::boolalpha << at::equal(back, w) << "\n";
    return at::equal(back, w) && config.rollout.num_generations == 16 ? 0 : 1;
  } catch (const aha::Error& e) {
    std::cerr << "consumer: " << e.what() << "\n";
    return 1;
  }
}
