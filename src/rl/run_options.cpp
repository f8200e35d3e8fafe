#include "aha/rl/run_options.h"

namespace aha::rl {

reward::RewardSetOptions reward_set_options(const RewardSection& r) {
  return {r.functions, r.fallback_score, r.threads};
}

dist::RendezvousOptions rendezvous_options(const DistSection& d) {
  return {d.backend, d.timeout_s, d.master_addr, d.master_port};
}

}  // namespace aha::rl
