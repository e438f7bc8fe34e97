// Perplexity against context length, several rope settings on the same windows.
//
// Protocol. The token stream is cut into windows of `ctx` tokens; a window is
// run from an empty KV cache and the token at window position t is predicted
// from positions < t (so position 0 is never scored).
//  - stride 0 (default): non-overlapping full windows [k·ctx, (k+1)·ctx); a
//    partial last window is dropped so every window has the same length.
//  - stride S < ctx (the sliding-window protocol of the YaRN paper and HF's
//    perplexity guide): windows start every S tokens, the first scores all its
//    positions, each later one only its tokens not scored before (its last S);
//    every token of the stream but the first is scored exactly once.
// Length-dependent methods (dynamic NTK, dynamic YaRN, LongRoPE) are run with
// KeyRotation::AtRead by default: each prefill chunk is computed with the
// frequencies for the length at its end, every cached key rotated to match,
// so a token is scored as the model would score it at (about) its own length.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ropescale/eval/eval_method.h"
#include "ropescale/kernels/attention.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/model/session.h"

namespace ropescale {

struct EvalWindow {
  int64_t begin = 0, end = 0;  // stream indices [begin, end)
  int64_t score_from = 1;      // window positions t in [score_from, end − begin) are scored
};

// Windows over `n_tokens` for context `ctx` and `stride` (0 = non-overlapping).
// Throws std::invalid_argument when ctx < 2 or stride ≥ ctx.
std::vector<EvalWindow> plan_windows(int64_t n_tokens, int64_t ctx, int64_t stride);

struct RunOptions {  // how sessions are run, shared by every evaluation
  int chunk = 256;
  int threads = 0;
  KvType kv_cache = KvType::F32;
  int64_t kv_window = 0, kv_sinks = 0;      // SessionOptions: StreamingLLM sinks + window (0 = keep every token)
  SelfExtend self_extend;                   // SessionOptions: Self-Extend's grouped positions (window 0 = off)
  std::optional<KeyRotation> key_rotation;  // unset: AtRead for length-dependent methods, else AtWrite
  int64_t kv_budget = 0;                    // SessionOptions: H2O eviction to this many tokens (0 = keep every token)
  std::string kv_protect;                   // with a budget: a regex whose tokens a retrieval prompt never evicts
};
// "f32", "q8_0, sinks 4 + window 1024", "f16, self-extend G 4 W 64", "f32, H2O budget 512": the cache and
// position policy as reports name it.
std::string kv_policy_label(const RunOptions& run);

// Session options for one method (see RunOptions), max_context tokens of cache.
SessionOptions session_options_for(const RopeSetting& setting, const RunOptions& run,
                                   int64_t max_context);

struct PerplexityOptions {
  std::vector<int64_t> ctxs;
  int64_t stride = 0;
  RunOptions run;
  // Set: every window is this token (BOS) then ctx − 1 tokens of the stream (which has
  // no BOS), as a served text prompt is — the protocol of an endpoint evaluation, so a
  // local run can be compared with it. The windows are planned over the stream with
  // ctx − 1, and the first stream token of each is context only, as without it.
  std::optional<int> bos_each_window;
};

// The stream windows of one context under `o` (plan_windows with ctx − 1 when a BOS
// leads each window). A window's tokens at position t are: BOS at 0 when set, then the
// stream from `begin`; window_offset(o) is 1 or 0 accordingly.
std::vector<EvalWindow> plan_eval_windows(int64_t n_tokens, int64_t ctx, const PerplexityOptions& o);
inline int64_t window_offset(const PerplexityOptions& o) { return o.bos_each_window ? 1 : 0; }

struct PerplexityResult {
  RopeSetting setting;       // the method, as resolved (label, dict, spec)
  int64_t ctx = 0;
  int64_t windows = 0;
  int64_t tokens = 0;        // scored tokens
  double nll = 0;            // mean negative log-likelihood (nats / token)
  double ppl = 0;            // exp(nll)
  double seconds = 0;        // compute time of this method × context (session set-up and all windows)
  int64_t window_tokens = 0; // tokens run through the model (scored or not): the speed's numerator
  // Per window position t: summed NLL and count of scored tokens.
  std::vector<double> position_nll;
  std::vector<int64_t> position_tokens;
};

struct NllBucket {
  int64_t start = 0, end = 0;  // window positions start ≤ t < end
  double nll = 0;              // mean over the bucket's scored tokens (NaN when none)
  int64_t tokens = 0;
};
// Buckets of `width` positions (the last one may be shorter).
std::vector<NllBucket> nll_buckets(const PerplexityResult& r, int64_t width);

// The mean NLL of the next token at every scored window position, added into
// position_nll/position_tokens (sized to the window); returns tokens scored.
// `tokens` is the whole window; the session is reset first.
int64_t score_window(InferenceSession& session, std::span<const int> tokens, int64_t score_from,
                     std::vector<double>& position_nll, std::vector<int64_t>& position_tokens);

// The windows of every context of `o` over `n_tokens` (all planned before any work, so errors come
// first), and the tokens they run through for `methods` methods (the progress total). Throws
// std::invalid_argument when a context has no full window.
struct PerplexityPlan {
  std::vector<std::vector<EvalWindow>> windows;  // per context, in o.ctxs order
  int64_t total = 0;
};
PerplexityPlan plan_perplexity(int64_t n_tokens, const PerplexityOptions& o, size_t methods);
// An empty result of `setting` at `ctx`, its per-position sums sized to the window.
PerplexityResult start_perplexity(const RopeSetting& setting, int64_t ctx);
// Sets nll and ppl from the per-position sums, and seconds since `started`.
void finish_perplexity(PerplexityResult& r, std::chrono::steady_clock::time_point started);

// Called after each window with (work done, total work) in tokens processed.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;

// Every method at every context, on the same windows of `ids`. Results are in
// ctx-major order. Methods are resolved settings (resolve_eval_methods); throws
// std::invalid_argument when `ids` has no full window for some ctx.
std::vector<PerplexityResult> evaluate_perplexity(const LlamaModel& model, std::span<const int> ids,
                                                  const std::vector<RopeSetting>& methods,
                                                  const PerplexityOptions& options, const EvalProgress& progress = {});

}  // namespace ropescale
