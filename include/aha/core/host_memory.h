// How the process's host allocator keeps freed memory.
//
// Why: a training step allocates and frees tensors of tens of MB many times (a [B, T, V] log-softmax of the
// default micro-batch is ~50 MB). glibc serves every block over 32 MB with a fresh mmap and returns it on
// free, so each pass over such a tensor first takes a page fault per 4 KiB page: on the 2-core build machine
// a log-softmax with its backward over [1536, 8192] took 111 ms that way and 24 ms from reused memory.
// keep_freed_host_memory() makes glibc serve all blocks from its heap and never give the heap's top back
// (what jemalloc or tcmalloc do for PyTorch users), trading a resident size that stays at its peak for no
// faults in the steady state.
#pragma once

namespace aha::core {

// Applies the setting above (glibc only; elsewhere a no-op) unless the environment sets
// AHA_HOST_MALLOC=system. Returns whether it did. Call it first thing in main(): the aha CLI does.
bool keep_freed_host_memory();

}  // namespace aha::core
