// How a training run lays its policy out over the ranks: the expert-parallel groups and the sharding units.
//
// With W ranks and dist.expert_parallel N, ranks [g*N, (g+1)*N) form expert-parallel group g: each of them
// holds E/N of every MoE layer's routed experts (rank r the block r % N) and the tokens of the group travel
// to their experts' rank and back (model/expert_parallel.h). The ranks holding the same block (r % N equal,
// W/N of them) are that block's replicas: its gradients are summed, and with dist.shard its state is sharded,
// over them. Everything else (attention, dense layers, shared experts, routers, embeddings) is replicated, or
// sharded, over all W ranks.
#pragma once

#include <memory>
#include <vector>

#include "aha/dist/expert_comm.h"
#include "aha/dist/sharding.h"
#include "aha/model/transformer.h"

namespace aha::dist {
class World;
}

namespace aha::rl {

struct ParallelLayout {
  std::shared_ptr<dist::World> world;
  int64_t expert_parallel = 1;
  std::shared_ptr<dist::World> experts;             // this rank's expert-parallel group (null when N = 1)
  std::shared_ptr<dist::World> replicas;            // the ranks holding this rank's experts (null when N = 1)
  std::shared_ptr<dist::GroupExpertComm> exchange;  // the MoE layers' token exchange (null when N = 1)
};

// Splits `world` (collective). Errors name dist.expert_parallel and what it must divide.
ParallelLayout make_parallel_layout(std::shared_ptr<dist::World> world, int64_t expert_parallel,
                                    int64_t routed_experts);

// Whether `name` is a routed-expert tensor (split over the expert-parallel group).
bool is_routed_expert(const std::string& name);

// Keeps this rank's block of every MoE layer's routed experts (the model holds all of them before) and routes
// their tokens through layout.exchange. Nothing to do when N = 1.
void split_experts(model::TransformerImpl& model, const ParallelLayout& layout);

// The routed-expert tensors of `model` whole, gathered over the expert-parallel group (collective), on rank 0
// of the world (others get an empty list).
std::vector<std::pair<std::string, at::Tensor>> gather_experts(model::TransformerImpl& model,
                                                               const ParallelLayout& layout);

// The model's parameters as sharding units: the root (everything outside model.layers) and one unit per entry
// of model.layers (MTP modules included), each parameter with its weight-decay class and its groups.
std::vector<dist::ShardUnit> shard_units(model::TransformerImpl& model, const ParallelLayout& layout);

}  // namespace aha::rl
