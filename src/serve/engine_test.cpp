// The scheduler: concurrent requests give what each gives alone, admission by
// sessions, queue and KV bytes, cancellation and draining.
#include "ropescale/serve/engine.h"

#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "default_model.h"

namespace ropescale {
namespace {

using Fixture = test::DefaultModel;

std::shared_ptr<Job> job(const Fixture& f, const std::string& prompt, int max_tokens, const std::string& policy) {
  CompletionRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.temperature = 0;
  auto ids = f.tok->encode(prompt, true, false);
  const int64_t tokens = tokens_needed(ids.size(), max_tokens);
  RopeChoice rope = choose_rope(f.model, r, parse_serve_policy(policy), tokens);
  return std::make_shared<Job>(r, std::move(ids), std::move(rope), CompletionRun::kv_bytes(f.model, tokens, KvPolicy{}));
}

std::string collect(Job& j) {
  std::string text;
  for (const auto& s : j.take(Job::kAll)) text += s.text;  // every step, once the job has ended
  return text;
}

TEST(Job, TakesStepsInGroupsWithADeadline) {
  // No model needed: the test plays the engine. take(N, max_wait) returns once N steps are ready,
  // or max_wait after the first ready one, or at the end; take(kAll) only at the end.
  using namespace std::chrono_literals;
  Job j(CompletionRequest{}, {}, RopeChoice{}, 0);
  const auto step = [](const std::string& t) { return CompletionStep{t, {}, std::nullopt}; };
  std::thread engine([&] {
    for (int i = 0; i < 5; ++i) j.push(step(std::to_string(i)));
  });
  engine.join();
  EXPECT_EQ(j.take(4, 10s).size(), 5u);  // 5 ready: all of them, no wait
  j.push(step("5"));
  const auto t0 = std::chrono::steady_clock::now();
  const auto one = j.take(4, 50ms);  // only one comes: returned after the deadline, not never
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].text, "5");
  EXPECT_GE(waited, 45ms);
  EXPECT_LT(waited, 5s);
  std::thread late([&] {
    std::this_thread::sleep_for(20ms);
    j.push(step("6"));
    j.push(step("7"));
    j.finish(3, 8);
  });
  const auto rest = j.take(Job::kAll);  // everything, at the end
  late.join();
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_EQ(rest[1].text, "7");
  EXPECT_TRUE(j.take(4, 10ms).empty());  // ended
  EXPECT_EQ(j.completion_tokens(), 8);
}

TEST(Engine, ConcurrentRequestsGiveWhatEachGivesAlone) {
  ROPESCALE_NEED_DEFAULT_MODEL(f);
  const std::vector<std::tuple<std::string, int, std::string>> requests = {
      {"And God said", 40, "none"}, {"In the beginning", 300, "auto"}, {"Let there be", 30, "dynamic"},
      {"And the earth", 50, "auto:linear"}, {"Blessed", 20, R"({"rope_type":"yarn","factor":2})"}};
  std::vector<std::string> alone;
  {
    Engine solo(f->model, *f->tok, EngineOptions{1, 8, size_t(1) << 30, KvPolicy{}, 0});
    for (const auto& [p, n, pol] : requests) {
      auto j = job(*f, p, n, pol);
      ASSERT_EQ(solo.submit(j), Engine::Admission::Queued);
      alone.push_back(collect(*j));
      ASSERT_FALSE(j->error()) << j->error()->what();
    }
  }
  Engine engine(f->model, *f->tok, EngineOptions{3, 8, size_t(1) << 30, KvPolicy{}, 0});
  std::vector<std::shared_ptr<Job>> jobs;
  for (const auto& [p, n, pol] : requests) jobs.push_back(job(*f, p, n, pol));
  for (auto& j : jobs) ASSERT_EQ(engine.submit(j), Engine::Admission::Queued);
  std::vector<std::string> together(jobs.size());
  std::vector<std::thread> readers;
  for (size_t i = 0; i < jobs.size(); ++i) readers.emplace_back([&, i] { together[i] = collect(*jobs[i]); });
  for (auto& t : readers) t.join();
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(together[i], alone[i]) << "request " << i;
    EXPECT_EQ(jobs[i]->completion_tokens(), std::get<1>(requests[i]));
  }
  EXPECT_EQ(engine.stats().running, 0);
  EXPECT_EQ(engine.stats().kv_bytes_in_use, 0u);
}

TEST(Engine, AdmitsBySessionsQueueAndKvBytesAndFreesCancelledSessions) {
  ROPESCALE_NEED_DEFAULT_MODEL(f);
  auto long_job = job(*f, "And God said", 3000, "auto");
  const size_t budget = long_job->kv_bytes + long_job->kv_bytes / 2;  // room for one long job, not two
  Engine engine(f->model, *f->tok, EngineOptions{2, 1, budget, KvPolicy{}, 0});
  ASSERT_EQ(engine.submit(long_job), Engine::Admission::Queued);
  ASSERT_FALSE(long_job->take().empty());  // running (its prefill step arrived)
  auto second = job(*f, "In the beginning", 3000, "auto");  // fits the sessions, not the KV budget: waits
  ASSERT_EQ(engine.submit(second), Engine::Admission::Queued);
  EXPECT_EQ(engine.submit(job(*f, "x", 5, "none")), Engine::Admission::QueueFull);
  EXPECT_EQ(engine.stats().queued, 1);
  EXPECT_EQ(engine.stats().kv_bytes_in_use, long_job->kv_bytes);
  long_job->cancelled = true;  // its client went away
  while (!long_job->take().empty()) {
  }
  EXPECT_EQ(long_job->error()->status, 499);
  ASSERT_FALSE(second->take().empty());  // the freed bytes let the waiting job start
  second->cancelled = true;
  while (!second->take().empty()) {
  }
  EXPECT_EQ(engine.stats().cancelled, 2u);
  EXPECT_EQ(engine.stats().kv_bytes_in_use, 0u);
  // Draining: what is running finishes, nothing new is admitted.
  auto last = job(*f, "And", 20, "none");
  ASSERT_EQ(engine.submit(last), Engine::Admission::Queued);
  engine.drain();
  EXPECT_EQ(last->completion_tokens(), 20);
  EXPECT_EQ(engine.submit(job(*f, "x", 5, "none")), Engine::Admission::Draining);
}

}  // namespace
}  // namespace ropescale
