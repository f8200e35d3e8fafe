// The run config (core/config.h) turned into the option structs of the layers below rl, which take their own
// options, not sections of a run config: the reward set's and the rendezvous'.
#pragma once

#include "aha/core/config.h"
#include "aha/dist/topology.h"
#include "aha/reward/reward_set.h"

namespace aha::rl {

reward::RewardSetOptions reward_set_options(const RewardSection& reward);
dist::RendezvousOptions rendezvous_options(const DistSection& dist);

}  // namespace aha::rl
