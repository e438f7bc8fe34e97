#include "ropescale/kernels/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

namespace ropescale {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
constexpr auto kSpin = std::chrono::microseconds(100);
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < std::max(1, threads); ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool([] {
    if (const char* env = std::getenv("ROPESCALE_THREADS"); env && std::atoi(env) > 0) return std::atoi(env);
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }());
  return pool;
}

void ThreadPool::run_tasks(uint32_t generation, const std::function<void(int)>* fn, int n) {
  for (;;) {
    uint64_t t = ticket_.load(std::memory_order_acquire);
    do {
      if (static_cast<uint32_t>(t >> 32) != generation || static_cast<int>(t & 0xffffffffu) >= n) return;
    } while (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel, std::memory_order_acquire));
    (*fn)(static_cast<int>(t & 0xffffffffu));
    remaining_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::worker_loop() {
  uint32_t seen = 0;
  for (;;) {
    // Spin a little: the next parallel section usually follows within microseconds.
    const auto start = std::chrono::steady_clock::now();
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() - start < kSpin)
      cpu_relax();
    const std::function<void(int)>* fn;
    int n;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
      fn = fn_;  // the job of generation `seen`, read under the lock that published it
      n = n_tasks_;
    }
    run_tasks(seen, fn, n);
  }
}

void ThreadPool::parallel_for(int n, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> call(call_mu_);
  uint32_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    n_tasks_ = n;
    remaining_.store(n, std::memory_order_relaxed);
    generation = generation_.load(std::memory_order_relaxed) + 1;
    ticket_.store(uint64_t{generation} << 32, std::memory_order_relaxed);
    generation_.store(generation, std::memory_order_release);
  }
  wake_.notify_all();
  run_tasks(generation, &fn, n);
  // Wait for the workers' last tasks. Spin first (they finish within microseconds), then yield: a
  // worker preempted mid-task (more runnable threads than cores, as in a server with HTTP threads)
  // gets this core back instead of waiting out the spin for a whole time slice.
  for (int spins = 0; remaining_.load(std::memory_order_acquire) > 0; ++spins) {
    if (spins < 4096) cpu_relax();
    else std::this_thread::yield();
  }
}

void ThreadPool::parallel_for(int n, int threads, const std::function<void(int)>& fn) {
  const int t = std::min(threads_for(threads), n);
  if (t >= size()) return parallel_for(n, fn);
  if (t <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<int> next{0};
  parallel_for(t, [&](int) {
    for (int i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  });
}

}  // namespace ropescale
