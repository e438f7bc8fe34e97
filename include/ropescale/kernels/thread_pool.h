// A small persistent thread pool: parallel_for hands out task indices to the
// workers and the caller. Workers spin briefly on an atomic before sleeping on
// a condition variable, because inference issues many short parallel sections
// (several per layer per decoded token) and a futex wake-up can cost more than
// the work. Blocking; one parallel_for at a time per pool.
//
// Tasks are claimed through one 64-bit ticket, (generation << 32) | index,
// advanced by compare-and-swap: a worker still finishing an earlier call can
// never claim an index of a later one, so a job's function is only ever
// called while its parallel_for is waiting for it.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ropescale {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);  // total workers including the caller
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool, sized to the hardware (ROPESCALE_THREADS overrides).
  static ThreadPool& global();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // The threads a caller asking for `requested` gets: 0 = all, else 1 … size().
  int threads_for(int requested) const { return requested > 0 ? std::min(requested, size()) : size(); }

  // Runs fn(i) for every i in [0, n) across the pool and the caller; returns
  // when all are done.
  void parallel_for(int n, const std::function<void(int)>& fn);
  // The same on at most threads_for(threads) threads: that many runners claim
  // the indices in order from a shared counter (dynamic balance, honours a
  // caller's --threads on a larger pool). threads == 1 runs inline.
  void parallel_for(int n, int threads, const std::function<void(int)>& fn);

 private:
  void worker_loop();
  void run_tasks(uint32_t generation, const std::function<void(int)>* fn, int n);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<uint64_t> ticket_{0};  // (generation << 32) | next index
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  std::mutex call_mu_;  // serializes parallel_for callers
};

}  // namespace ropescale
