#include "ropescale/serve/engine.h"

namespace ropescale {

std::optional<CompletionStep> Job::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !steps_.empty() || ended_; });
  if (steps_.empty()) return std::nullopt;
  CompletionStep s = std::move(steps_.front());
  steps_.pop_front();
  return s;
}

void Job::push(CompletionStep step) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.push_back(std::move(step));
  }
  cv_.notify_all();
}

void Job::finish(int prompt_tokens, int completion_tokens) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    prompt_tokens_ = prompt_tokens, completion_tokens_ = completion_tokens;
    ended_ = true;
  }
  cv_.notify_all();
}

void Job::fail(ApiError e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(e);
    ended_ = true;
  }
  cv_.notify_all();
}

Engine::Engine(const LlamaModel& model, const Tokenizer& tok, EngineOptions options)
    : model_(model), tok_(tok), opt_(options), thread_([this] { loop(); }) {}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_.notify_all();
  thread_.join();
  for (auto& j : queue_) j->fail(ApiError(503, "the server is shutting down", "", "server_error"));
  for (auto& r : running_) r.job->fail(ApiError(503, "the server is shutting down", "", "server_error"));
}

Engine::Admission Engine::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_) return Admission::Draining;
    const bool can_start = int(running_.size()) < opt_.parallel && queue_.empty() && kv_in_use_ + job->kv_bytes <= opt_.kv_budget;
    if (!can_start && int(queue_.size()) >= opt_.queue) return Admission::QueueFull;
    queue_.push_back(job);
  }
  work_.notify_all();
  return Admission::Queued;
}

void Engine::drain() {
  draining_ = true;
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return queue_.empty() && running_.empty(); });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {int(queue_.size()), int(running_.size()), kv_in_use_, cancelled_};
}

void Engine::end(std::list<Running>::iterator it) {
  kv_in_use_ -= it->job->kv_bytes;
  running_.erase(it);
}

void Engine::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    // Admit in arrival order while a session is free and the head's KV bytes fit.
    while (!queue_.empty() && int(running_.size()) < opt_.parallel && kv_in_use_ + queue_.front()->kv_bytes <= opt_.kv_budget) {
      auto job = queue_.front();
      queue_.pop_front();
      if (job->cancelled) {
        ++cancelled_;
        job->fail(ApiError(499, "the client closed the request"));
        continue;
      }
      kv_in_use_ += job->kv_bytes;
      running_.push_back({job, nullptr});
    }
    if (running_.empty()) {
      idle_.notify_all();
      if (stop_) return;
      work_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_ && queue_.empty()) return;
      continue;
    }
    if (stop_) return;
    // One step of every running job, round robin; the lock is released while computing.
    for (auto it = running_.begin(); it != running_.end();) {
      Running& r = *it;
      if (r.job->cancelled) {
        ++cancelled_;
        const auto job = r.job;
        end(it++);
        job->fail(ApiError(499, "the client closed the request"));
        continue;
      }
      lock.unlock();
      std::optional<ApiError> failed;
      bool ended = false;
      try {
        if (!r.run)
          r.run = std::make_unique<CompletionRun>(model_, tok_, r.job->request, r.job->prompt, r.job->rope, opt_.kv_cache, opt_.threads);
        r.job->push(r.run->step());
        ended = r.run->done();
      } catch (const ApiError& e) {
        failed = e;
      } catch (const std::exception& e) {
        failed = ApiError(500, std::string("internal error: ") + e.what(), "", "server_error");
      }
      lock.lock();
      if (ended || failed) {
        // The session and its KV bytes are freed before the client hears the end, so what it
        // sees next (/metrics, a retry) already counts them free.
        const auto job = r.job;
        const int prompt = r.run ? r.run->prompt_tokens() : 0, completion = r.run ? r.run->completion_tokens() : 0;
        end(it++);
        lock.unlock();
        if (failed) job->fail(*failed);
        else job->finish(prompt, completion);
        lock.lock();
      } else {
        ++it;
      }
    }
  }
}

}  // namespace ropescale
