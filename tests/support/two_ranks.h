// Two Gloo ranks in two threads of this process (localhost, a free port): what the dist tests use to run a
// collective body on both sides of a real process group.
#pragma once

#include <c10/core/Device.h>

#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "aha/dist/launch.h"
#include "aha/dist/process_group.h"

namespace aha::test {

inline dist::WorldSpec two_ranks(int64_t rank, int64_t port, int64_t world_size = 2) {
  dist::WorldSpec s;
  s.rank = rank;
  s.world_size = world_size;
  s.master_port = port;
  s.backend = "gloo";
  s.timeout_s = 20;
  s.source = "test";
  return s;
}

// Runs body(world) on `n` ranks, one thread each; rethrows the first failure.
inline void on_ranks(int n, const std::function<void(const std::shared_ptr<dist::World>&)>& body) {
  const int64_t port = dist::free_port();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        auto w = dist::World::connect(two_ranks(r, port, n), c10::Device(c10::kCPU));
        body(w);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  for (auto& t : threads)
    t.join();
  // Every rank's failure (the first one is often the cause, the others its echo in their collectives).
  std::string all;
  for (size_t r = 0; r < errors.size(); ++r) {
    if (!errors[r]) continue;
    try {
      std::rethrow_exception(errors[r]);
    } catch (const std::exception& e) {
      all += "rank " + std::to_string(r) + ": " + e.what() + "\n";
    } catch (...) {
      all += "rank " + std::to_string(r) + ": unknown exception\n";
    }
  }
  if (!all.empty()) throw std::runtime_error(all);
}

inline void on_two_ranks(const std::function<void(const std::shared_ptr<dist::World>&)>& body) {
  on_ranks(2, body);
}

}  // namespace aha::test
