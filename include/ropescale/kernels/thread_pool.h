// A small persistent thread pool: workers sleep on a condition variable and
// parallel_for hands out task indices; the caller works too. Blocking.
#pragma once

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

  // Runs fn(i) for every i in [0, n) across the pool and the caller; returns
  // when all are done. Not reentrant: one parallel_for at a time per pool.
  void parallel_for(int n, const std::function<void(int)>& fn);

 private:
  void worker_loop();
  void run_tasks();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0, next_ = 0, remaining_ = 0;
  unsigned generation_ = 0;
  bool stop_ = false;
  std::mutex call_mu_;  // serializes parallel_for callers
};

}  // namespace ropescale
