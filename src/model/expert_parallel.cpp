#include "aha/model/expert_parallel.h"

#include <ATen/ATen.h>

#include "aha/core/error.h"

namespace aha::model {

ExpertDispatch dispatch(const at::Tensor& x, const Routing& routing, int64_t experts, ExpertComm* comm,
                        at::Tensor* load) {
  ExpertDispatch d;
  const int64_t k = routing.experts.size(1);
  // Sort the N*K (token, slot) pairs by expert; each expert then sees one contiguous run of its tokens.
  const at::Tensor flat = routing.experts.reshape({-1});
  const at::Tensor order = flat.argsort(/*stable=*/true);
  const at::Tensor counts = at::bincount(flat, {}, experts).cpu();
  if (load) *load += counts.to(load->device());
  d.token = order.div(k, "floor");
  d.weight = routing.weights.reshape({-1}).index_select(0, order).unsqueeze(-1);
  const at::Tensor sorted = x.index_select(0, d.token);
  const int64_t* count = counts.data_ptr<int64_t>();
  if (!comm || comm->size() == 1) {
    d.rows = sorted;
    d.counts.assign(count, count + experts);
    return d;
  }
  const int64_t n = comm->size();
  AHA_CHECK(experts % n == 0, "expert parallelism: ", experts, " experts do not split over ", n, " ranks");
  const int64_t local = experts / n;
  // Rows for rank r: the pairs of its experts (contiguous in the sorted order).
  std::vector<int64_t> per_expert(count, count + experts);
  d.send.assign(static_cast<size_t>(n), 0);
  for (int64_t e = 0; e < experts; ++e)
    d.send[static_cast<size_t>(e / local)] += per_expert[static_cast<size_t>(e)];
  // got[s * local + j]: rows rank s sends for this rank's local expert j.
  const std::vector<int64_t> got = comm->exchange_counts(per_expert);
  d.recv.assign(static_cast<size_t>(n), 0);
  d.counts.assign(static_cast<size_t>(local), 0);
  for (int64_t s = 0; s < n; ++s) {
    for (int64_t j = 0; j < local; ++j) {
      d.recv[static_cast<size_t>(s)] += got[static_cast<size_t>(s * local + j)];
      d.counts[static_cast<size_t>(j)] += got[static_cast<size_t>(s * local + j)];
    }
  }
  const at::Tensor received = comm->exchange(sorted, d.send, d.recv);
  // The received rows come by source, each source's by local expert: regroup them by local expert (sources
  // in rank order within an expert).
  std::vector<int64_t> start(static_cast<size_t>(n * local), 0);
  int64_t at = 0;
  for (int64_t s = 0; s < n; ++s)
    for (int64_t j = 0; j < local; ++j) {
      start[static_cast<size_t>(s * local + j)] = at;
      at += got[static_cast<size_t>(s * local + j)];
    }
  std::vector<int64_t> regroup;
  regroup.reserve(static_cast<size_t>(at));
  for (int64_t j = 0; j < local; ++j)
    for (int64_t s = 0; s < n; ++s)
      for (int64_t i = 0; i < got[static_cast<size_t>(s * local + j)]; ++i)
        regroup.push_back(start[static_cast<size_t>(s * local + j)] + i);
  d.regroup = at::tensor(regroup, at::kLong).to(x.device());
  d.rows = received.index_select(0, d.regroup);
  return d;
}

at::Tensor combine(const at::Tensor& y, const ExpertDispatch& d, const at::Tensor& x, ExpertComm* comm) {
  at::Tensor back = y;
  if (d.regroup.defined()) {
    // Undo the regrouping, then send each row home.
    at::Tensor by_source = at::zeros_like(y).index_copy(0, d.regroup, y);
    back = comm->exchange(by_source, d.recv, d.send);
  }
  at::Tensor out = at::zeros_like(x);
  out.index_add_(0, d.token, back * d.weight.to(x.scalar_type()));
  return out;
}

}  // namespace aha::model
