#include "ropescale/eval/eval_target.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include "next_token_nll.h"
#include "ropescale/eval/endpoint_eval.h"
#include "ropescale/model/token_spans.h"

namespace ropescale {

namespace {

int64_t total_prompt_tokens(const std::vector<const RetrievalPrompt*>& prompts, size_t methods) {
  int64_t total = 0;
  for (const auto* p : prompts) total += int64_t(p->ids.size()) * int64_t(methods);
  return total;
}

}  // namespace

std::vector<PerplexityResult> LocalTarget::perplexity(std::span<const int> stream, const std::vector<RopeSetting>& methods,
                                                      const PerplexityOptions& options, const EvalProgress& progress) const {
  return evaluate_perplexity(model_, stream, methods, options, progress);
}

std::vector<std::vector<RetrievalOutcome>> LocalTarget::retrieve(const std::vector<RopeSetting>& methods,
                                                                 const std::vector<const RetrievalPrompt*>& prompts,
                                                                 int generate, const EvalProgress& progress) const {
  int64_t longest = 0, longest_answer = 0;
  for (const auto* p : prompts) {
    longest = std::max<int64_t>(longest, int64_t(p->ids.size()));
    for (const auto& a : p->answers) longest_answer = std::max<int64_t>(longest_answer, int64_t(a.size()));
  }
  const int64_t total = total_prompt_tokens(prompts, methods.size());
  const int V = model_.hp.vocab_size;
  std::vector<std::vector<RetrievalOutcome>> out(methods.size(), std::vector<RetrievalOutcome>(prompts.size()));
  int64_t done = 0;
  for (size_t mi = 0; mi < methods.size(); ++mi) {
    InferenceSession s(model_, session_options_for(methods[mi], run_, longest + std::max<int64_t>(generate, longest_answer)));
    for (size_t pi = 0; pi < prompts.size(); ++pi) {
      const RetrievalPrompt& p = *prompts[pi];
      RetrievalOutcome& o = out[mi][pi];
      s.reset();
      if (!run_.kv_protect.empty()) s.protect(token_spans_matching(tok_, p.ids, run_.kv_protect));
      const std::vector<float> last = s.forward(p.ids);
      const int64_t end = s.position();
      std::vector<float> logits = last;
      int prev = p.ids.back();
      for (int i = 0; i < generate; ++i) {
        const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (next == tok_.eos() || next == tok_.bos()) break;
        o.generated += tok_.decode(prev, next);
        prev = next;
        logits = s.forward(std::span<const int>(&next, 1));
      }
      for (const auto& ans : p.answers) {
        s.rewind(end);
        double sum = -next_token_nll(last.data(), V, ans[0]);
        if (ans.size() > 1) {
          const auto rows = s.forward(std::span<const int>(ans.data(), ans.size() - 1), true);
          for (size_t i = 1; i < ans.size(); ++i) sum -= next_token_nll(rows.data() + (i - 1) * V, V, ans[i]);
        }
        o.answer_logprobs.push_back(sum);
      }
      done += int64_t(p.ids.size());
      if (progress) progress(done, total);
    }
  }
  return out;
}

std::vector<PerplexityResult> EndpointTarget::perplexity(std::span<const int> stream, const std::vector<RopeSetting>& methods,
                                                         const PerplexityOptions& options, const EvalProgress& progress) const {
  return evaluate_perplexity_endpoint(e_, stream, methods, options, progress);
}

std::vector<std::vector<RetrievalOutcome>> EndpointTarget::retrieve(const std::vector<RopeSetting>& methods,
                                                                    const std::vector<const RetrievalPrompt*>& prompts,
                                                                    int generate, const EvalProgress& progress) const {
  const std::vector<int>& prefix = e_.prompt_prefix();
  // Each prompt's text, and the text of it followed by each answer, cut by the server's tokens.
  struct Texts {
    std::string prompt;
    std::vector<std::string> with_answer;
  };
  std::vector<Texts> texts(prompts.size());
  e_.parallel_for(prompts.size(), [&](size_t i) {
    const RetrievalPrompt& p = *prompts[i];
    if (p.ids.size() < prefix.size() || !std::equal(prefix.begin(), prefix.end(), p.ids.begin()))
      throw std::invalid_argument("prompts for an endpoint must be built with its tokenizer (its prefix first)");
    const std::vector<int> ids(p.ids.begin() + std::ptrdiff_t(prefix.size()), p.ids.end());
    texts[i].prompt = e_.detokenize(ids);
    for (const auto& a : p.answers) {
      std::vector<int> full = ids;
      full.insert(full.end(), a.begin(), a.end());
      texts[i].with_answer.push_back(e_.detokenize(full));
    }
  });
  const int64_t total = total_prompt_tokens(prompts, methods.size());
  std::vector<std::vector<RetrievalOutcome>> out(methods.size(), std::vector<RetrievalOutcome>(prompts.size()));
  std::mutex m;
  int64_t done = 0;
  e_.parallel_for(methods.size() * prompts.size(), [&](size_t k) {
    const size_t mi = k / prompts.size(), pi = k % prompts.size();
    const RopeSetting& method = methods[mi];
    const RetrievalPrompt& p = *prompts[pi];
    RetrievalOutcome& o = out[mi][pi];
    o.generated = e_.greedy(texts[pi].prompt, generate, method.override_dict);
    for (size_t a = 0; a < p.answers.size(); ++a) {
      const size_t n = p.ids.size() - prefix.size() + p.answers[a].size();
      const std::vector<double> lp = e_.prompt_logprobs(texts[pi].with_answer[a], n, method.override_dict);
      double sum = 0;
      for (size_t j = n - p.answers[a].size(); j < n; ++j) sum += lp[j];
      if (std::isnan(sum)) throw EndpointError(e_.options().url + "/v1/completions: no log-probability for an answer token");
      o.answer_logprobs.push_back(sum);
    }
    std::lock_guard<std::mutex> lock(m);
    done += int64_t(p.ids.size());
    if (progress) progress(done, total);
  });
  return out;
}

}  // namespace ropescale
