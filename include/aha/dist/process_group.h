// One process's handle on a distributed run: PyTorch's c10d underneath (a TCPStore rendezvous, then
// ProcessGroupNCCL on CUDA or ProcessGroupGloo on CPU), behind the few collectives the trainer needs:
// blocking ones, and an asynchronous sum that the gradient reducer (grad_reducer.h) starts during the
// backward pass.
//
// What must hold: every rank calls the same collectives in the same order with tensors of the same shapes and
// dtypes; a collective that fails (a rank died, the timeout passed) throws an aha::Error naming the
// operation, this rank and the backend, and the World is unusable afterwards. A World of one process (the
// default constructor, or connect() without a launcher) has no store and no process group, and its
// collectives return their input unchanged. No global state: the trainer owns its World and passes it where
// it is needed.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aha/dist/topology.h"

namespace aha::dist {

enum class ReduceOp { sum, max };

class World {
 public:
  // One process: no store, no process group.
  World();
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Joins the run `spec` describes. A process no launcher started (spec.source "single") gets a World of one
  // that connects to nothing; one a launcher started, even alone, builds the store and process group.
  // Rank 0 hosts the TCPStore on master_addr:master_port unless torchrun's agent already does; backend auto
  // is nccl when `device` is CUDA (set as this thread's current device first), else gloo. A rendezvous that
  // does not complete within spec.timeout_s throws, naming address:port, this rank and the world size.
  static std::shared_ptr<World> connect(const WorldSpec& spec, const c10::Device& device);

  int64_t rank() const;
  int64_t size() const;
  int64_t local_rank() const;
  bool is_main() const { return rank() == 0; }
  const std::string& backend() const;  // none (one process), gloo or nccl
  const WorldSpec& spec() const;

  // In place, on any device (staged through the backend's device when they differ).
  void all_reduce(at::Tensor& t, ReduceOp op = ReduceOp::sum);
  // Host numbers, reduced element-wise (as float64).
  std::vector<double> all_reduce(std::vector<double> v, ReduceOp op = ReduceOp::sum);
  // Every rank's `local` (any length, possibly empty), concatenated in rank order on every rank; `offset`
  // (optional) receives where this rank's part starts. Values pass unchanged (NaN included).
  std::vector<double> all_gather(const std::vector<double>& local, size_t* offset = nullptr);
  // A collective in flight, from all_reduce_async.
  struct Work;
  // Starts an in-place sum of `t` over ranks and returns at once (a world of one: nothing to start, null).
  // `t` must be contiguous and on comm_device(), and left alone until wait() has returned. Any thread may
  // start one (the backward pass's hooks do), but every rank starts the same ones in the same order. On CUDA
  // the collective follows the work already queued on the calling thread's current stream.
  std::shared_ptr<Work> all_reduce_async(const at::Tensor& t);
  // Waits for `works` (null ones are skipped); throws as a blocking collective does when one failed, naming
  // `op`. On CUDA the current stream then also waits for them.
  void wait(const std::vector<std::shared_ptr<Work>>& works, const char* op);
  // Where the backend's collectives take their tensors: the rank's GPU for nccl, else the CPU.
  c10::Device comm_device() const;
  // Copies rank `root`'s values of `tensors` into every rank's, in place, bucketed per dtype and device.
  void broadcast(const std::vector<at::Tensor>& tensors, int64_t root = 0,
                 int64_t bucket_bytes = int64_t{25} << 20);
  // Returns when every rank has called it.
  void barrier();

  // ---- for sharded state (sharding.h) and expert parallelism (expert_comm.h)
  // Every rank's `input` [n] (contiguous) into `output` [size() * n], in rank order.
  void all_gather(const at::Tensor& input, at::Tensor& output);
  // The sum over ranks of `input` [size() * n] (contiguous), this rank's n-element slice into `output` [n].
  void reduce_scatter(const at::Tensor& input, at::Tensor& output);
  // Rows of `input` [sum(send), ...] go out in rank order, send[r] of them to rank r; returns the rows
  // received [sum(recv), ...], recv[r] from rank r, in rank order. Both lists have size() entries and must
  // agree with what the other ranks send (a rank's recv[r] is rank r's send[this rank]). Not differentiable
  // itself (expert_comm.h wraps it).
  at::Tensor all_to_all(const at::Tensor& input, const std::vector<int64_t>& send,
                        const std::vector<int64_t>& recv);
  // A sub-group of this world: the ranks that pass the same `color`, ranked in the order of their ranks here.
  // Collective: every rank calls it, in the same order as its other splits. A group of one has no process
  // group (its collectives return their input). Errors of its collectives name the group as `name`.
  std::shared_ptr<World> split(int64_t color, const std::string& name);
  // This rank in the world it was split from (its own rank for a world that was not split).
  int64_t global_rank() const;
  const std::string& name() const;  // "world", or the name given to split()

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether this build has the backend: gloo needs the gloo headers at build time, nccl a CUDA build.
bool backend_available(const std::string& backend);

// The device this rank computes on: model.device, with "auto"/"cuda" mapped to cuda:LOCAL_RANK when several
// ranks share a node (cpu stays cpu).
std::string rank_device(const std::string& model_device, const WorldSpec& spec, bool cuda_available);

}  // namespace aha::dist
