// Fork safety: pthread_atfork's prepare handler takes the dispatch lock (a fork waits for a running parallel
// region to end, so no half-finished job is copied), the parent handler releases it, and the child handler
// abandons the copied pool (its threads do not exist in the child; destroying their std::thread objects would
// call std::terminate) and starts from an empty one. The abandoned state is a small leak per fork.
#include "pool.hpp"

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace wk {
namespace {

struct State {
    std::mutex dispatch;  // held by the caller running a parallel region
    std::mutex lock;      // guards the fields below
    std::condition_variable wake, done;
    int workers = 0;
    uint64_t generation = 0;
    int wanted = 0;      // workers taking part in the current job
    int finished = 0;    // of those, how many are done
    int64_t tasks = 0;
    std::atomic<int64_t> next{0};
    const std::function<void(int64_t)> *fn = nullptr;
};

// Never destroyed: detached workers may still wait on it while the process exits.
State *g_state = new State;
std::once_flag g_atfork_once;

void drain(State &s) {
    for (int64_t t; (t = s.next.fetch_add(1, std::memory_order_relaxed)) < s.tasks;) (*s.fn)(t);
}

void worker_main(State *s, int id) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> guard(s->lock);
    for (;;) {
        s->wake.wait(guard, [&] { return s->generation != seen; });
        seen = s->generation;
        if (id >= s->wanted) continue;
        guard.unlock();
        drain(*s);
        guard.lock();
        if (++s->finished == s->wanted) s->done.notify_one();
    }
}

void before_fork() { g_state->dispatch.lock(); }
void after_fork_parent() { g_state->dispatch.unlock(); }
void after_fork_child() { g_state = new State; }

}  // namespace

int pool_size() { return g_state->workers; }

void parallel_for(int64_t tasks, int threads, const std::function<void(int64_t)> &fn) {
    if (threads > tasks) threads = int(tasks);
    State &s = *g_state;
    std::unique_lock<std::mutex> region(s.dispatch, std::try_to_lock);
    if (threads <= 1 || !region.owns_lock()) {
        for (int64_t t = 0; t < tasks; ++t) fn(t);
        return;
    }
    std::call_once(g_atfork_once, [] { pthread_atfork(before_fork, after_fork_parent, after_fork_child); });
    const int helpers = threads - 1;
    {
        std::lock_guard<std::mutex> guard(s.lock);
        for (; s.workers < helpers; ++s.workers) std::thread(worker_main, &s, s.workers).detach();
        s.fn = &fn;
        s.tasks = tasks;
        s.next.store(0, std::memory_order_relaxed);
        s.wanted = helpers;
        s.finished = 0;
        ++s.generation;
    }
    s.wake.notify_all();
    drain(s);
    std::unique_lock<std::mutex> guard(s.lock);
    s.done.wait(guard, [&] { return s.finished == s.wanted; });
    s.fn = nullptr;
}

}  // namespace wk
