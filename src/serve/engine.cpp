#include "ropescale/serve/engine.h"

#include <algorithm>

namespace ropescale {

std::vector<CompletionStep> Job::take(size_t at_least, std::optional<std::chrono::milliseconds> max_wait) {
  at_least = std::max<size_t>(1, at_least);
  std::unique_lock<std::mutex> lock(mu_);
  wanted_ = at_least;
  wants_first_ = max_wait.has_value() && at_least > 1;
  const auto enough = [&] { return steps_.size() >= wanted_ || ended_; };
  if (wants_first_) {  // the first step starts the clock, then wait for the rest or the deadline
    cv_.wait(lock, [&] { return !steps_.empty() || ended_; });
    cv_.wait_for(lock, *max_wait, enough);
  } else {
    cv_.wait(lock, enough);
  }
  wanted_ = 1, wants_first_ = false;
  std::vector<CompletionStep> out(std::make_move_iterator(steps_.begin()), std::make_move_iterator(steps_.end()));
  steps_.clear();
  return out;
}

void Job::push(CompletionStep step) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    steps_.push_back(std::move(step));
    wake = steps_.size() >= wanted_ || (wants_first_ && steps_.size() == 1);
  }
  if (wake) cv_.notify_all();
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

void Engine::cancelled(const std::shared_ptr<Job>& job) {
  ++cancelled_;
  job->fail(ApiError(499, "the client closed the request"));
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
        cancelled(job);
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
    // One step of every running job: a prefill runs alone; every decoding job samples its next token
    // and the tokens go through one batched forward pass (one matrix product per layer for all of
    // them). Only this thread touches running_, so it is walked without the lock.
    for (auto it = running_.begin(); it != running_.end();) {
      if (!it->job->cancelled) {
        ++it;
        continue;
      }
      const auto job = it->job;
      end(it++);  // freed first, then the client's request ends
      cancelled(job);
    }
    lock.unlock();
    struct Outcome {
      std::list<Running>::iterator it;
      std::optional<ApiError> failed;
    };
    std::vector<Outcome> ended;
    std::vector<std::list<Running>::iterator> batch;
    for (auto it = running_.begin(); it != running_.end(); ++it) {
      Running& r = *it;
      try {
        if (!r.run)
          r.run = std::make_unique<CompletionRun>(model_, tok_, r.job->request, r.job->prompt, r.job->rope, opt_.kv, opt_.threads);
        if (!r.run->prefilled()) {
          r.job->push(r.run->step());
        } else {
          r.job->push(r.run->sample_next());
          if (r.run->batchable()) batch.push_back(it);
          else r.run->advance();
        }
        if (r.run->done()) ended.push_back({it, std::nullopt});
      } catch (const ApiError& e) {
        ended.push_back({it, e});
      } catch (const std::exception& e) {
        ended.push_back({it, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error")});
      }
    }
    if (!batch.empty()) {
      std::vector<InferenceSession*> sessions;
      std::vector<int> tokens;
      for (auto it : batch) sessions.push_back(&it->run->session()), tokens.push_back(it->run->pending_token());
      try {
        const auto logits = InferenceSession::forward_batch(sessions, tokens);
        for (size_t b = 0; b < batch.size(); ++b) batch[b]->run->accept_logits(logits.data() + b * model_.hp.vocab_size);
      } catch (const std::exception& e) {
        for (auto it : batch) ended.push_back({it, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error")});
      }
    }
    lock.lock();
    // The sessions and their KV bytes are freed before the clients hear the end, so what they see
    // next (/metrics, a retry) already counts them free.
    struct Ending {
      std::shared_ptr<Job> job;
      std::optional<ApiError> failed;
      int prompt = 0, completion = 0;
    };
    std::vector<Ending> endings;
    for (auto& o : ended) {
      const CompletionRun* run = o.it->run.get();
      endings.push_back({o.it->job, o.failed, run ? run->prompt_tokens() : 0, run ? run->completion_tokens() : 0});
      end(o.it);
    }
    lock.unlock();
    for (auto& e : endings) {
      if (e.failed) e.job->fail(*e.failed);
      else e.job->finish(e.prompt, e.completion);
    }
    lock.lock();
  }
}

}  // namespace ropescale
