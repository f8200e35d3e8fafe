// Two Gloo ranks in two threads of this process (localhost, a free port): what the dist tests use to run a
// collective body on both sides of a real process group.
#pragma once

#include <c10/core/Device.h>

#include <exception>
#include <functional>
#include <memory>
#include <thread>

#include "aha/dist/launch.h"
#include "aha/dist/process_group.h"

namespace aha::test {

inline dist::WorldSpec two_ranks(int64_t rank, int64_t port) {
  dist::WorldSpec s;
  s.rank = rank;
  s.world_size = 2;
  s.master_port = port;
  s.backend = "gloo";
  s.timeout_s = 20;
  s.source = "test";
  return s;
}

// Runs body(world) on two ranks, one thread each; rethrows the first failure.
inline void on_two_ranks(const std::function<void(const std::shared_ptr<dist::World>&)>& body) {
  const int64_t port = dist::free_port();
  std::exception_ptr errors[2];
  std::thread threads[2];
  for (int r = 0; r < 2; ++r)
    threads[r] = std::thread([&, r] {
      try {
        auto w = dist::World::connect(two_ranks(r, port), c10::Device(c10::kCPU));
        body(w);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads)
    t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace aha::test
