#include "ropescale/eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "next_token_nll.h"

namespace ropescale {

std::vector<EvalWindow> plan_windows(int64_t n, int64_t ctx, int64_t stride) {
  if (ctx < 2) throw std::invalid_argument("ctx must be at least 2 tokens, got " + std::to_string(ctx));
  if (stride < 0 || stride >= ctx)  // stride = ctx would leave every window's first token unscored
    throw std::invalid_argument("stride must be shorter than ctx (" + std::to_string(ctx) + "), got " +
                                std::to_string(stride) + "; use 0 for non-overlapping windows");
  std::vector<EvalWindow> w;
  if (stride == 0) {
    for (int64_t b = 0; b + ctx <= n; b += ctx) w.push_back({b, b + ctx, 1});
    return w;
  }
  int64_t scored_to = 1;  // stream tokens [1, scored_to) are scored already
  for (int64_t b = 0; b < n; b += stride) {
    const int64_t e = std::min(b + ctx, n);
    if (e <= scored_to) continue;
    w.push_back({b, e, std::max<int64_t>(1, scored_to - b)});
    scored_to = e;
    if (e == n) break;
  }
  return w;
}

std::vector<EvalWindow> plan_eval_windows(int64_t n, int64_t ctx, const PerplexityOptions& o) {
  if (o.bos_each_window && ctx < 3)
    throw std::invalid_argument("ctx must be at least 3 tokens when a BOS leads each window, got " + std::to_string(ctx));
  return plan_windows(n, ctx - window_offset(o), o.stride);
}

PerplexityPlan plan_perplexity(int64_t n, const PerplexityOptions& o, size_t methods) {
  if (o.ctxs.empty()) throw std::invalid_argument("no context lengths given");
  PerplexityPlan p;
  for (int64_t ctx : o.ctxs) {
    p.windows.push_back(plan_eval_windows(n, ctx, o));
    if (p.windows.back().empty())
      throw std::invalid_argument("the input has " + std::to_string(n) + " tokens, less than one window of " +
                                  std::to_string(ctx));
    for (const auto& w : p.windows.back()) p.total += (w.end - w.begin) * int64_t(methods);
  }
  return p;
}

PerplexityResult start_perplexity(const RopeSetting& setting, int64_t ctx) {
  PerplexityResult r;
  r.setting = setting;
  r.ctx = ctx;
  r.position_nll.assign(size_t(ctx), 0.0);
  r.position_tokens.assign(size_t(ctx), 0);
  return r;
}

void finish_perplexity(PerplexityResult& r, std::chrono::steady_clock::time_point started) {
  double sum = 0;
  for (double x : r.position_nll) sum += x;
  r.nll = r.tokens ? sum / double(r.tokens) : std::numeric_limits<double>::quiet_NaN();
  r.ppl = std::exp(r.nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

std::string kv_policy_label(const RunOptions& run) {
  std::string s(to_string(run.kv_cache));
  if (run.kv_window > 0)
    s += (run.kv_sinks > 0 ? ", sinks " + std::to_string(run.kv_sinks) + " + window " : ", window ") + std::to_string(run.kv_window);
  if (run.self_extend.enabled())
    s += ", self-extend G " + std::to_string(run.self_extend.group) + " W " + std::to_string(run.self_extend.window);
  if (run.kv_budget > 0) s += ", H2O budget " + std::to_string(run.kv_budget) + (run.kv_protect.empty() ? "" : " protect /" + run.kv_protect + "/");
  return s;
}

SessionOptions session_options_for(const RopeSetting& setting, const RunOptions& run, int64_t max_context) {
  SessionOptions so;
  so.rope = setting.spec;
  so.max_context = max_context;
  so.chunk = run.chunk;
  so.threads = run.threads;
  so.kv_cache = run.kv_cache;
  so.kv_window = run.kv_window;
  so.kv_sinks = run.kv_sinks;
  so.self_extend = run.self_extend;
  so.kv_budget = run.kv_budget;
  so.key_rotation = run.key_rotation.value_or(so.rope.is_dynamic() ? KeyRotation::AtRead : KeyRotation::AtWrite);
  return so;
}

std::vector<NllBucket> nll_buckets(const PerplexityResult& r, int64_t width) {
  if (width < 1) throw std::invalid_argument("bucket width must be >= 1");
  std::vector<NllBucket> out;
  const int64_t n = static_cast<int64_t>(r.position_nll.size());
  for (int64_t s = 0; s < n; s += width) {
    NllBucket b{s, std::min(s + width, n), 0, 0};
    double sum = 0;
    for (int64_t t = b.start; t < b.end; ++t) sum += r.position_nll[t], b.tokens += r.position_tokens[t];
    b.nll = b.tokens ? sum / double(b.tokens) : std::numeric_limits<double>::quiet_NaN();
    out.push_back(b);
  }
  return out;
}

int64_t score_window(InferenceSession& session, std::span<const int> tokens, int64_t score_from,
                     std::vector<double>& position_nll, std::vector<int64_t>& position_tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (static_cast<int64_t>(position_nll.size()) < n) position_nll.resize(n, 0.0), position_tokens.resize(n, 0);
  session.reset();
  const int64_t chunk = session.options().chunk;
  int64_t scored = 0;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = std::min(c0 + chunk, n);
    // Row r of this chunk (position c0 + r) predicts the token at c0 + r + 1.
    const bool any = c1 >= score_from && c0 + 1 < n;
    const auto logits = session.forward(tokens.subspan(c0, c1 - c0), any);
    if (!any) continue;
    const int V = static_cast<int>(logits.size() / size_t(c1 - c0));
    for (int64_t p = c0; p < c1; ++p) {
      const int64_t t = p + 1;
      if (t < score_from || t >= n) continue;
      position_nll[t] += next_token_nll(logits.data() + size_t(p - c0) * V, V, tokens[t]);
      ++position_tokens[t];
      ++scored;
    }
  }
  return scored;
}

std::vector<PerplexityResult> evaluate_perplexity(const LlamaModel& model, std::span<const int> ids,
                                                  const std::vector<RopeSetting>& methods,
                                                  const PerplexityOptions& opt, const EvalProgress& progress) {
  // Plan everything first so errors come before the work (the methods were checked when resolved).
  const PerplexityPlan plan = plan_perplexity(int64_t(ids.size()), opt, methods.size());
  const auto& plans = plan.windows;
  const int64_t total = plan.total;
  std::vector<PerplexityResult> results;
  int64_t done = 0;
  for (size_t c = 0; c < opt.ctxs.size(); ++c) {
    const int64_t ctx = opt.ctxs[c];
    for (const auto& m : methods) {
      const auto t0 = std::chrono::steady_clock::now();
      InferenceSession session(model, session_options_for(m, opt.run, ctx));
      PerplexityResult r = start_perplexity(m, ctx);
      std::vector<int> with_bos;
      for (const auto& w : plans[c]) {
        std::span<const int> tokens = ids.subspan(w.begin, w.end - w.begin);
        if (opt.bos_each_window) {
          with_bos.assign(1, *opt.bos_each_window);
          with_bos.insert(with_bos.end(), tokens.begin(), tokens.end());
          tokens = with_bos;
        }
        r.tokens += score_window(session, tokens, w.score_from + window_offset(opt), r.position_nll, r.position_tokens);
        ++r.windows;
        r.window_tokens += int64_t(tokens.size());
        done += w.end - w.begin;
        if (progress) progress(done, total);
      }
      finish_perplexity(r, t0);
      results.push_back(std::move(r));
    }
  }
  return results;
}

}  // namespace ropescale
