// A small persistent thread pool that survives fork() (GNU OpenMP does not: a forked child that enters a
// parallel region after its parent did aborts with "fork() called from a process already using GNU OpenMP").
#pragma once

#include <cstdint>
#include <functional>

namespace wk {

// Run fn(task) for every task in [0, tasks) on up to `threads` threads (the caller is one of them), each task
// exactly once; tasks are handed out in order from a shared counter. Runs inline when threads <= 1, when there
// is one task, or when another caller's parallel region is running (so concurrent Python threads never wait on,
// or corrupt, each other). In a forked child the pool starts afresh on first use.
void parallel_for(int64_t tasks, int threads, const std::function<void(int64_t)> &fn);

// Worker threads started so far in this process.
int pool_size();

}  // namespace wk
