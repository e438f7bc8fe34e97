// The server's scheduler: one engine thread owns every running completion and
// interleaves their steps (a prefill, then one token each, round robin), so
// requests share the weights and the thread pool without contending for them.
// Admission is by KV memory: a job starts when a session is free and its KV
// bytes fit the budget; until then it waits in a bounded FIFO queue. HTTP
// handler threads submit jobs and read their steps from the job's channel.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/serve/completion.h"
#include "ropescale/serve/completion_request.h"
#include "ropescale/serve/serve_policy.h"

namespace ropescale {

// One request on its way through the engine.
class Job {
 public:
  Job(CompletionRequest request, std::vector<int> prompt, RopeChoice rope, size_t kv_bytes)
      : request(std::move(request)), prompt(std::move(prompt)), rope(std::move(rope)), kv_bytes(kv_bytes) {}
  const CompletionRequest request;
  const std::vector<int> prompt;
  const RopeChoice rope;
  const size_t kv_bytes;
  std::atomic<bool> cancelled{false};  // the client went away: the engine frees the session

  // Handler side: every step produced so far, or none once the job has ended (check error()). Waits until at least `at_least`
  // steps are ready, the job has ended, or `max_wait` has passed since the first ready step arrived
  // (no limit when absent). The engine wakes the handler only then, so a stream sent in groups of N
  // tokens costs one or two wake-ups per group instead of N, and a non-streaming request
  // (at_least = kAll) none until it ends. A stream that falls behind sends what piled up in one write.
  static constexpr size_t kAll = SIZE_MAX;
  std::vector<CompletionStep> take(size_t at_least = 1, std::optional<std::chrono::milliseconds> max_wait = std::nullopt);
  const std::optional<ApiError>& error() const { return error_; }
  int prompt_tokens() const { return prompt_tokens_; }
  int completion_tokens() const { return completion_tokens_; }

  // Engine side.
  void push(CompletionStep step);
  void finish(int prompt_tokens, int completion_tokens);
  void fail(ApiError e);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<CompletionStep> steps_;
  size_t wanted_ = 1;         // the waiting handler's at_least
  bool wants_first_ = false;  // … and whether it waits on a deadline from the first ready step
  bool ended_ = false;
  std::optional<ApiError> error_;
  int prompt_tokens_ = 0, completion_tokens_ = 0;
};

struct EngineOptions {
  int parallel = 4;           // sessions running at once (their decode steps batched)
  int queue = 32;             // jobs waiting beyond those
  size_t kv_budget = 1 << 30; // bytes of KV cache all running sessions may hold
  KvPolicy kv;                // the cache each session keeps (completion.h)
  int threads = 0;            // per step (0 = the whole pool)
};

struct EngineStats {
  int queued = 0, running = 0;
  size_t kv_bytes_in_use = 0;
  uint64_t cancelled = 0;     // sessions freed because their client left
};

class Engine {
 public:
  Engine(const LlamaModel& model, const Tokenizer& tok, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  enum class Admission { Queued, QueueFull, Draining };
  Admission submit(const std::shared_ptr<Job>& job);
  // Stops admitting (submit answers Draining) and returns once every queued and running job has ended.
  void drain();
  bool draining() const { return draining_; }
  EngineStats stats() const;
  const EngineOptions& options() const { return opt_; }

 private:
  struct Running {
    std::shared_ptr<Job> job;
    std::unique_ptr<CompletionRun> run;
  };
  void loop();
  void end(std::list<Running>::iterator it);  // frees a running job's session and KV bytes (lock held)
  void cancelled(const std::shared_ptr<Job>& job);  // counts a job whose client left and ends it (499)

  const LlamaModel& model_;
  const Tokenizer& tok_;
  const EngineOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable work_, idle_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::list<Running> running_;
  size_t kv_in_use_ = 0;
  uint64_t cancelled_ = 0;
  std::atomic<bool> draining_{false};
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ropescale
