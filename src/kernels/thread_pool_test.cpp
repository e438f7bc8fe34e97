#include "ropescale/kernels/thread_pool.h"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ropescale {
namespace {

TEST(ThreadPool, EveryIndexRunsExactlyOncePerCall) {
  ThreadPool pool(3);
  // Many short back-to-back calls, each with a lambda over stack-local state:
  // a worker from an earlier call must never run a later call's indices (or
  // call an earlier, destroyed lambda).
  for (int call = 0; call < 20000; ++call) {
    const int n = 1 + call % 9;
    std::vector<std::atomic<int>> hits(n);
    pool.parallel_for(n, [&](int i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
    for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "call " << call << " index " << i;
  }
}

TEST(ThreadPool, UsesItsWorkersAndHandlesEdgeSizes) {
  ThreadPool pool(2);
  EXPECT_EQ(pool.size(), 2);
  int ran = 0;
  pool.parallel_for(0, [&](int) { ++ran; });
  EXPECT_EQ(ran, 0);
  pool.parallel_for(1, [&](int) { ++ran; });
  EXPECT_EQ(ran, 1);
  std::atomic<long> sum{0};
  pool.parallel_for(1000, [&](int i) { sum += i; });
  EXPECT_EQ(sum.load(), 999L * 1000 / 2);
}

TEST(ThreadPool, ThreadLimitedCallsRunEveryIndexOnAtMostThatManyThreads) {
  ThreadPool pool(4);
  for (int limit : {1, 2, 3, 4, 0}) {
    for (int n : {0, 1, 2, 5, 97}) {
      std::vector<std::atomic<int>> hits(n);
      std::mutex mu;
      std::set<std::thread::id> ids;
      pool.parallel_for(n, limit, [&](int i) {
        hits[i].fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(std::this_thread::get_id());
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "limit " << limit << " n " << n << " index " << i;
      EXPECT_LE(int(ids.size()), limit == 0 ? 4 : limit) << "limit " << limit << " n " << n;
      if (limit == 1 && n > 0) {
        EXPECT_EQ(*ids.begin(), std::this_thread::get_id()) << "threads 1 runs inline";
      }
    }
  }
}

}  // namespace
}  // namespace ropescale
