// A completion run on the real default model: the text and logprobs a client
// receives, step by step, against a plain greedy loop over the same session API.
#include "ropescale/serve/completion.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "ropescale/model/llama_model.h"
#include "default_model.h"

namespace ropescale {
namespace {

using test::DefaultModel;

CompletionRequest greedy(const std::string& prompt, int max_tokens) {
  CompletionRequest r;
  r.prompt = prompt;
  r.max_tokens = max_tokens;
  r.temperature = 0;
  return r;
}

RopeChoice plain(const LlamaModel& m) { return choose_rope(m, CompletionRequest{}, parse_serve_policy("none"), 1); }

struct Result {
  std::string text;
  TokenLogprobs logprobs;
  std::string finish;
  int steps_with_text = 0;
};

Result run_all(const DefaultModel& d, const CompletionRequest& r, const RopeChoice& rope) {
  CompletionRun run(d.model, *d.tok, r, d.tok->encode(*r.prompt, true, false), rope, KvPolicy{}, 0);
  Result out;
  while (!run.done()) {
    const CompletionStep s = run.step();
    out.text += s.text;
    out.steps_with_text += !s.text.empty();
    out.logprobs.append(s.logprobs);
    if (s.finish) out.finish = *s.finish;
  }
  return out;
}

// The reference: argmax, one token at a time, on a session of its own.
std::string greedy_reference(const DefaultModel& d, const std::string& prompt, int n) {
  SessionOptions so;
  so.max_context = 512;
  so.rope = rope_spec_for_model(d.model);
  InferenceSession s(d.model, so);
  const auto ids = d.tok->encode(prompt, true, false);
  auto logits = s.forward(ids);
  std::string text;
  int prev = ids.back();
  for (int i = 0; i < n; ++i) {
    const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    if (next == d.tok->eos()) break;
    text += d.tok->decode(prev, next);
    prev = next;
    logits = s.forward(std::span<const int>(&next, 1));
  }
  return text;
}

TEST(Completion, GreedyTextIsThePlainLoopsStreamedStepByStep) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  const auto r = run_all(*d, greedy("And God said", 60), plain(d->model));
  EXPECT_EQ(r.text, greedy_reference(*d, "And God said", 60));
  EXPECT_EQ(r.finish, "length");
  EXPECT_GT(r.steps_with_text, 30);  // streamed as it goes, not at the end
}

TEST(Completion, EchoLogprobsScoreEveryPromptTokenAfterTheFirst) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  auto req = greedy("In the beginning God created", 0);
  req.echo = true;
  req.logprobs = 3;
  const auto r = run_all(*d, req, plain(d->model));
  EXPECT_EQ(r.text, "In the beginning God created");
  EXPECT_EQ(r.finish, "length");
  const auto ids = d->tok->encode(*req.prompt, true, false);
  ASSERT_EQ(r.logprobs.tokens.size(), ids.size());
  EXPECT_FALSE(r.logprobs.token_logprobs[0]);
  EXPECT_TRUE(r.logprobs.top_logprobs[0].is_null());
  // Against log-softmax of a fresh session's logits for every position, in double.
  SessionOptions so;
  so.rope = rope_spec_for_model(d->model);
  InferenceSession s(d->model, so);
  const auto all = s.forward(ids, true);
  const int V = d->model.hp.vocab_size;
  for (size_t i = 1; i < ids.size(); ++i) {
    const float* row = all.data() + (i - 1) * V;
    double mx = *std::max_element(row, row + V), sum = 0;
    for (int v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
    EXPECT_NEAR(*r.logprobs.token_logprobs[i], row[ids[i]] - mx - std::log(sum), 1e-9) << i;
    EXPECT_LE(r.logprobs.top_logprobs[i].size(), 4u);  // top 3 + the chosen one
    EXPECT_EQ(r.logprobs.text_offset[i], int64_t(i - 1));  // one byte per token after BOS
    EXPECT_EQ(r.logprobs.tokens[i], std::string(1, req.prompt->at(i - 1)));
  }
}

TEST(Completion, StopSequencesEndTheTextBeforeThem) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  const std::string free_text = greedy_reference(*d, "And God said", 80);
  ASSERT_GT(free_text.size(), 40u);
  const std::string stop = free_text.substr(20, 4);  // a piece the greedy text is sure to reach
  auto req = greedy("And God said", 80);
  req.stop = {"zzzz", stop};
  const auto r = run_all(*d, req, plain(d->model));
  EXPECT_EQ(r.text, free_text.substr(0, free_text.find(stop)));
  EXPECT_EQ(r.finish, "stop");
  EXPECT_EQ(r.text.find(stop), std::string::npos);
}

TEST(Completion, IdsOutsideTheVocabularyAre400s) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  CompletionRequest r;
  r.prompt_ids = {1, 70, 259};
  try {
    CompletionRun run(d->model, *d->tok, r, r.prompt_ids, plain(d->model), KvPolicy{}, 0);
    FAIL() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "prompt");
  }
}

// The server's KV policy: a window or a budget bounds the cache a long request holds (and the bytes it
// is admitted by) while it runs to its end, past the trained context; a protect pattern that would
// leave a budget nothing to evict is a 400 naming it.
TEST(Completion, AWindowOrBudgetBoundsTheCacheOfALongRequest) {
  ROPESCALE_NEED_DEFAULT_MODEL(d);
  std::string prompt = "In the beginning God created the heaven and the earth. ";
  while (prompt.size() < 300) prompt += "And God said, Let there be light: and there was light. ";
  const CompletionRequest r = greedy(prompt, 120);  // ~420 tokens: past the trained 256
  const RopeChoice yarn = choose_rope(d->model, r, parse_serve_policy("auto"), 512);
  for (int which = 0; which < 2; ++which) {
    KvPolicy kv;
    if (which == 0) kv.session.kv_window = 96, kv.session.kv_sinks = 4;
    else kv.session.kv_budget = 128, kv.protect = std::make_shared<const TokenPattern>("In the beginning");
    const int64_t rows = which == 0 ? 100 : 128;
    EXPECT_EQ(CompletionRun::kv_bytes(d->model, 420, kv), kv_cache_bytes(KvType::F32, d->model.hp.n_layers, d->model.hp.n_kv_heads,
                                                                         d->model.hp.head_dim, rows));
    CompletionRun run(d->model, *d->tok, r, d->tok->encode(prompt, true, false), yarn, kv, 0);
    std::string text, finish;
    while (!run.done()) {
      const CompletionStep st = run.step();
      text += st.text;
      if (st.finish) finish = *st.finish;
      EXPECT_LE(run.session().cache_length(), rows);
    }
    EXPECT_EQ(finish, "length") << which;
    EXPECT_FALSE(text.empty()) << which;
    EXPECT_EQ(run.session().kv_cache_bytes_allocated(), CompletionRun::kv_bytes(d->model, 420, kv)) << which;
  }
  // A length-dependent setting through a window follows the cache's length: once the window is full its
  // frequencies stop moving, so no step needs the re-prefill an unwindowed dynamic run takes.
  {
    KvPolicy kv;
    kv.session.kv_window = 96, kv.session.kv_sinks = 4;
    CompletionRequest dyn = r;
    dyn.rope_scaling = nlohmann::json{{"rope_type", "dynamic"}, {"factor", 4.0}};
    const RopeChoice dynamic = choose_rope(d->model, dyn, parse_serve_policy("auto"), 512);
    ASSERT_TRUE(dynamic.recompute_on_change);
    CompletionRun run(d->model, *d->tok, dyn, d->tok->encode(prompt, true, false), dynamic, kv, 0);
    run.step();  // the prefill
    while (!run.done()) {
      run.sample_next();
      if (!run.has_pending_token()) break;
      EXPECT_TRUE(run.batchable()) << "position " << run.session().position();
      run.advance();
    }
  }
  KvPolicy greedy_protect;
  greedy_protect.session.kv_budget = 64;
  greedy_protect.protect = std::make_shared<const TokenPattern>("[a-z]+");  // most of the prompt
  try {
    CompletionRun run(d->model, *d->tok, r, d->tok->encode(prompt, true, false), yarn, greedy_protect, 0);
    FAIL() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(std::string(e.what()).find("--kv-protect pattern covers"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ropescale
