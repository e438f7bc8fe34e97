#include "ropescale/eval/endpoint_eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>

#include <fmt/core.h>

namespace ropescale {

std::vector<int> tokenize_text(const Endpoint& e, const std::string& text, int64_t max_tokens) {
  size_t bytes = max_tokens > 0 ? size_t(max_tokens) * 8 : text.size();
  for (;;) {
    if (bytes >= text.size()) {
      std::vector<int> ids = e.tokenize(text);
      if (max_tokens > 0 && int64_t(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
      return ids;
    }
    while (bytes > 0 && (static_cast<unsigned char>(text[bytes]) & 0xC0) == 0x80) --bytes;  // a whole character
    std::vector<int> ids = e.tokenize(text.substr(0, bytes));
    if (!ids.empty()) ids.pop_back();  // the cut may have split the last token
    if (int64_t(ids.size()) >= max_tokens) {
      ids.resize(size_t(max_tokens));
      return ids;
    }
    bytes *= 2;
  }
}

std::vector<PerplexityResult> evaluate_perplexity_endpoint(const Endpoint& e, std::span<const int> stream,
                                                           const std::vector<RopeSetting>& methods,
                                                           const PerplexityOptions& options,
                                                           const EvalProgress& progress) {
  if (options.ctxs.empty()) throw std::invalid_argument("no context lengths given");
  PerplexityOptions o = options;
  o.bos_each_window.reset();
  const int64_t offset = int64_t(e.prompt_prefix().size());
  if (offset > 1)
    throw EndpointError(fmt::format("{}: the server puts {} special tokens before a text prompt; the perplexity "
                                    "protocol expects at most one (BOS)", e.options().url, offset));
  if (offset == 1) o.bos_each_window = e.prompt_prefix()[0];
  std::vector<std::vector<EvalWindow>> plans;
  int64_t total = 0;
  for (int64_t ctx : o.ctxs) {
    plans.push_back(plan_eval_windows(int64_t(stream.size()), ctx, o));
    if (plans.back().empty())
      throw std::invalid_argument(fmt::format("the input has {} tokens, less than one window of {}", stream.size(), ctx));
    for (const auto& w : plans.back()) total += (w.end - w.begin) * int64_t(methods.size());
  }
  std::vector<PerplexityResult> results;
  std::mutex m;
  int64_t done = 0;
  for (size_t c = 0; c < o.ctxs.size(); ++c) {
    const auto& plan = plans[c];
    // The windows' texts once per context, shared by every method.
    std::vector<std::string> texts(plan.size());
    e.parallel_for(plan.size(), [&](size_t i) {
      texts[i] = e.detokenize(stream.subspan(plan[i].begin, plan[i].end - plan[i].begin));
    });
    for (const auto& method : methods) {
      const auto t0 = std::chrono::steady_clock::now();
      PerplexityResult r;
      r.setting = method;
      r.ctx = o.ctxs[c];
      r.position_nll.assign(size_t(r.ctx), 0.0);
      r.position_tokens.assign(size_t(r.ctx), 0);
      e.parallel_for(plan.size(), [&](size_t i) {
        const EvalWindow& w = plan[i];
        const size_t n = size_t(w.end - w.begin);
        const std::vector<double> lp = e.prompt_logprobs(texts[i], n, method.override_dict);
        std::lock_guard<std::mutex> lock(m);
        for (size_t j = size_t(w.score_from); j < n; ++j) {
          if (std::isnan(lp[j]))
            throw EndpointError(fmt::format("{}/v1/completions: no log-probability for prompt token {} of a window of "
                                            "{} (only the first may be null)", e.options().url, j, n));
          r.position_nll[j + size_t(offset)] -= lp[j];
          ++r.position_tokens[j + size_t(offset)];
          ++r.tokens;
        }
        ++r.windows;
        r.window_tokens += int64_t(n) + offset;
        done += int64_t(n);
        if (progress) progress(done, total);
      });
      finish_perplexity(r);
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      results.push_back(std::move(r));
    }
  }
  return results;
}

std::vector<PasskeyTrial> evaluate_passkey_endpoint(const Endpoint& e, const std::vector<RopeSetting>& methods,
                                                    const std::vector<PasskeyPrompt>& prompts,
                                                    const EvalProgress& progress) {
  const size_t prefix = e.prompt_prefix().size();
  const int generate = passkey_generate_tokens(prompts);
  // Each prompt's text, and the text of it followed by each answer, cut by the server's tokens.
  struct Texts {
    std::string prompt;
    std::vector<std::string> with_answer;
  };
  std::vector<Texts> texts(prompts.size());
  e.parallel_for(prompts.size(), [&](size_t i) {
    const PasskeyPrompt& p = prompts[i];
    if (p.ids.size() < prefix || !std::equal(e.prompt_prefix().begin(), e.prompt_prefix().end(), p.ids.begin()))
      throw std::invalid_argument("passkey prompts for an endpoint must be built with its tokenizer");
    std::vector<int> ids(p.ids.begin() + prefix, p.ids.end());
    texts[i].prompt = e.detokenize(ids);
    for (const auto& a : p.answers) {
      std::vector<int> full = ids;
      full.insert(full.end(), a.begin(), a.end());
      texts[i].with_answer.push_back(e.detokenize(full));
    }
  });
  int64_t total = 0;
  for (const auto& p : prompts) total += int64_t(p.ids.size()) * int64_t(methods.size());
  std::vector<PasskeyTrial> out(prompts.size() * methods.size());
  std::mutex m;
  int64_t done = 0;
  e.parallel_for(out.size(), [&](size_t k) {
    const RopeSetting& method = methods[k / prompts.size()];
    const PasskeyPrompt& p = prompts[k % prompts.size()];
    const Texts& tx = texts[k % prompts.size()];
    PasskeyTrial t{method.label, p.length, p.depth, p.trial, p.key, "", false, 1, 0.0, 0};
    t.generated = e.greedy(tx.prompt, generate, method.override_dict);
    t.exact = passkey_exact(t.generated, p.key);
    std::vector<double> lp;
    for (size_t a = 0; a < p.answers.size(); ++a) {
      const size_t n = p.ids.size() - prefix + p.answers[a].size();
      const std::vector<double> all = e.prompt_logprobs(tx.with_answer[a], n, method.override_dict);
      double sum = 0;
      for (size_t j = n - p.answers[a].size(); j < n; ++j) sum += all[j];
      if (std::isnan(sum))
        throw EndpointError(e.options().url + "/v1/completions: no log-probability for an answer token");
      lp.push_back(sum);
    }
    rank_passkey_answers(t, lp, p.answers);
    out[k] = std::move(t);
    std::lock_guard<std::mutex> lock(m);
    done += int64_t(p.ids.size());
    if (progress) progress(done, total);
  });
  return out;
}

}  // namespace ropescale
