// The two c10d process groups, each in its own translation unit: Gloo's header needs the gloo headers (Debian
// libgloo-dev; the torch wheel does not ship them), NCCL's needs the CUDA toolkit. Built only when present.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <string>

namespace aha::dist::detail {

bool have_gloo();
bool have_nccl();

// `hostname`: the address this rank's Gloo device binds to ("" picks GLOO_SOCKET_IFNAME or the host's name).
c10::intrusive_ptr<c10d::Backend> make_gloo(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, const std::string& hostname);
// Makes CUDA device `device_index` current for this thread first (NCCL binds to the current device).
c10::intrusive_ptr<c10d::Backend> make_nccl(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                            std::chrono::milliseconds timeout, int device_index);

}  // namespace aha::dist::detail
