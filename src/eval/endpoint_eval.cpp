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
  PerplexityOptions o = options;
  o.bos_each_window.reset();
  const int64_t offset = int64_t(e.prompt_prefix().size());
  if (offset > 1)
    throw EndpointError(fmt::format("{}: the server puts {} special tokens before a text prompt; the perplexity "
                                    "protocol expects at most one (BOS)", e.options().url, offset));
  if (offset == 1) o.bos_each_window = e.prompt_prefix()[0];
  const PerplexityPlan planned = plan_perplexity(int64_t(stream.size()), o, methods.size());
  const auto& plans = planned.windows;
  const int64_t total = planned.total;
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
      PerplexityResult r = start_perplexity(method, o.ctxs[c]);
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
      finish_perplexity(r, t0);
      results.push_back(std::move(r));
    }
  }
  return results;
}

}  // namespace ropescale
