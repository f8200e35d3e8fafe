// Routed experts split over ranks (expert parallelism): the dispatch of tokens to the rank holding their
// expert, and the combine that brings the experts' outputs back, as two functions around the local experts'
// GEMMs (ExpertsImpl::forward: dispatch -> run the local experts -> combine).
//
// With E experts over N ranks, rank r holds experts [r E/N, (r+1) E/N). Dispatch sorts the (token, slot)
// pairs by expert (stable: ties keep token order), which also sorts them by destination rank; the per-expert
// counts go to every rank in one small exchange, then the token rows in one all-to-all; the receiver regroups
// the rows it got from each source by local expert, so each of its experts sees one contiguous run. Combine
// runs the same route backwards and adds each row times its routing weight into its token's output. Both are
// differentiable (the all-to-all's backward is the reverse all-to-all). Without a communicator (one rank
// holds every expert) dispatch is the sort and combine the weighted sum: what ExpertsImpl did before.
//
// What must hold: every rank of the group dispatches and combines in the same order, the same number of
// times (a rank without tokens still takes part with none); model/ knows no process groups: dist/ provides
// the ExpertComm (dist/expert_comm.h).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "aha/model/moe.h"

namespace aha::model {

// The collectives of an expert-parallel group.
class ExpertComm {
 public:
  virtual ~ExpertComm() = default;
  virtual int64_t size() const = 0;  // ranks that split the experts
  virtual int64_t rank() const = 0;  // this rank among them: it holds block rank() of the experts
  // Differentiable: send[r] rows of `x` (in rank order) to rank r; returns recv[r] rows from each rank r, in
  // rank order.
  virtual at::Tensor exchange(const at::Tensor& x, const std::vector<int64_t>& send,
                              const std::vector<int64_t>& recv) = 0;
  // `counts` holds size() blocks of k values, block r for rank r; returns the blocks every rank sent this
  // one, in rank order (size() * k values).
  virtual std::vector<int64_t> exchange_counts(const std::vector<int64_t>& counts) = 0;
};

struct ExpertDispatch {
  at::Tensor rows;              // [M, D]: the tokens for this rank's experts, grouped by local expert
  std::vector<int64_t> counts;  // [E_local]: rows per local expert
  // The way back.
  at::Tensor token;                 // [N*K]: the token of each sorted (token, slot) pair
  at::Tensor weight;                // [N*K, 1]: its routing weight
  std::vector<int64_t> send, recv;  // rows sent to / received from each rank
  at::Tensor regroup;               // [M]: received row of each grouped row (undefined: no regrouping)
};

// `experts`: the total number of routed experts; `comm` null: all of them are local. Adds the pairs routed to
// each expert into `load` ([experts] int64) when non-null.
ExpertDispatch dispatch(const at::Tensor& x, const Routing& routing, int64_t experts, ExpertComm* comm,
                        at::Tensor* load = nullptr);

// `y` [M, D]: the local experts' outputs for dispatch.rows. Returns [N, D] like `x`.
at::Tensor combine(const at::Tensor& y, const ExpertDispatch& dispatch, const at::Tensor& x,
                   ExpertComm* comm);

}  // namespace aha::model
