// An inference session: one sequence, its KV cache, and the RoPE setting of
// this request. Tokens are appended in chunks (chunked prefill); each call
// returns the logits of the last token (or of every token).
//
// Length-dependent methods (dynamic NTK, dynamic YaRN, LongRoPE) recompute
// their frequencies from the current length L = position after the chunk
// (HF: max position + 1). Keys already in the cache are handled one of two ways:
//  KeyRotation::AtWrite — each key is rotated once, with the frequencies in
//    force when it was written (what HF and vLLM do; after a frequency change
//    old and new keys disagree: transformers#25104, rope-reference.md §4.1);
//  KeyRotation::AtRead  — keys are cached unrotated and rotated with the
//    current frequencies whenever they are read, at the cost of re-rotating
//    the cache each chunk: every attention then sees keys and queries turned
//    by the same frequencies. It is still not a fresh prefill at the new
//    length — earlier tokens' hidden states, and so every later layer's keys
//    and values, were computed with their own chunk's frequencies (measured:
//    0.15 max logit difference with dynamic YaRN at 262 tokens, default model).
//    Exact equality needs a re-prefill whenever the frequencies change, which
//    the server does for length-dependent settings (serve/completion.cpp).
// For static methods the two are identical.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "ropescale/kernels/attention.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/config/rope_setting.h"
#include "ropescale/model/llama_model.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/self_extend.h"

namespace ropescale {

enum class KeyRotation { AtWrite, AtRead };

// Text positions [begin, end) a session never evicts (kv_protect).
struct PositionSpan {
  int64_t begin = 0, end = 0;
  bool operator==(const PositionSpan&) const = default;
};
// Sorted by begin, overlapping and touching spans merged, empty ones dropped; throws
// std::invalid_argument for a reversed or negative span.
std::vector<PositionSpan> merge_spans(std::vector<PositionSpan> spans);
// Positions covered by merged spans (merge_spans' result): the sum of their lengths.
int64_t covered_positions(const std::vector<PositionSpan>& merged);

struct SessionOptions {
  int64_t max_context = 0;        // KV cache capacity (tokens); 0 = the model's trained context
  RopeSpec rope;                  // the request's setting (see rope_spec_for_model)
  KeyRotation key_rotation = KeyRotation::AtWrite;
  KvType kv_cache = KvType::F32;  // f16 halves the cache (rounding ~5e-4 relative); q8_0 / q4_0: ggml's blocks
  int chunk = 256;                // prefill chunk size
  int threads = 0;                // 0 = the pool's size
  // Attention sinks + sliding window (StreamingLLM): a cache of kv_sinks + kv_window rows that keeps
  // the first kv_sinks tokens and the most recent ones, and gives the kept keys their CACHE positions
  // (sinks 0 … S−1, the recent tokens after them), not their places in the text — so distances never
  // pass S + W − 1; 0 = keep every token. With static frequencies keys are rotated once, at write (at
  // their text positions: the window's distances are the text's), and only the S sinks are turned at
  // read to their cache positions — no re-rotation of the window as it slides. With length-dependent
  // frequencies every key is cached unrotated and rotated at read at its cache position, and the
  // method's length is the cache's. key_rotation is ignored. Before each chunk of n tokens the oldest tokens after the sinks are evicted to make room:
  // a decoded token sees the sinks and the W − 1 tokens before it (StreamingLLM's cache of S + W);
  // a prefill chunk's first query sees W − n, so the chunk is capped at max(1, W / 4). The stream has
  // no length limit.
  int64_t kv_window = 0;
  int64_t kv_sinks = 0;
  // Self-Extend (rope/self_extend.h): neighbours within self_extend.window at exact positions, farther
  // keys at grouped ones — keys cached unrotated and rotated at read twice (exact and grouped), each
  // query's attention the merge of the two. Combines with any RoPE scaling; not with a window.
  SelfExtend self_extend;
  // Eviction by accumulated attention (H2O heavy hitters): a cache of at most kv_budget rows. Each layer
  // sums, per cached key, the softmax weight every later query head gave it (the attention kernel's
  // key_weight); before a chunk that would overflow the budget, each layer evicts its keys with the
  // least accumulated attention, sparing the most recent kv_budget / 2 rows (H2O's recent half) and any
  // key inside kv_protect. Kept keys keep their TEXT positions (the RoPE scaling must cover the
  // stream), so key_rotation applies as without eviction. The chunk is capped at max(1, kv_budget / 4);
  // the stream has no length limit. Throws std::length_error when protected keys leave nothing to
  // evict. 0 = keep every token. Not with a window or Self-Extend.
  int64_t kv_budget = 0;
  std::vector<PositionSpan> kv_protect;
};

// rope_setting_for_model / rope_spec_for_model (llama_model.h) build SessionOptions.rope.

// The rows (tokens) of KV cache a session with `o` allocates: kv_sinks + kv_window with a window,
// kv_budget with a budget, else max_context (0: the model's trained context). Its bytes are
// kv_cache_bytes(o.kv_cache, layers, kv heads, head_dim, rows) — what the session allocates.
int64_t session_cache_rows(const SessionOptions& o, int64_t trained_context);

// The prefill chunk a session runs: `chunk`, or with a window of W tokens (a budget of B) at most
// max(1, W / 4) (max(1, B / 4)).
int session_chunk(int chunk, int64_t kv_window, int64_t kv_budget = 0);


// The request policy production teams use: up to the model's trained context
// a request runs with factor 1.0 (plain RoPE, short prompts untouched); past
// it, with `method` at the factor its length needs — (prompt + generation) /
// trained, rounded up to a multiple of `granularity`, capped at `max_factor` —
// fixed for the whole request, so its KV cache never mixes rotations.
struct RopePolicy {
  std::string method = "yarn";  // yarn, linear, ntk, llama3 (any static type)
  double granularity = 1.0;
  double max_factor = 64.0;
};
// The --rope-scaling JSON for a request of `tokens` tokens ("" = plain RoPE).
// Throws std::invalid_argument for an unusable policy.
std::string rope_scaling_for_request(const LlamaModel& m, int64_t tokens, const RopePolicy& policy);

// Activations of one decoder pass over n rows (a session's chunk, or a batch's decode rows).
struct DecoderScratch {
  std::vector<float> x, xb, q, k, v, att, h1, h3;
};

class InferenceSession {
 public:
  InferenceSession(const LlamaModel& model, SessionOptions options);

  // The bytes of K and V this session allocated: kv_cache_bytes(type, layers, kv heads, head_dim,
  // max_context) — what `plan` and the server's admission predict.
  size_t kv_cache_bytes_allocated() const;

  // Appends `tokens`; returns logits [vocab] of the last one, or [n × vocab]
  // for every token when `all_logits`. Throws std::length_error past max_context.
  std::vector<float> forward(std::span<const int> tokens, bool all_logits = false);

  // One decode step of several sessions of one model at once (continuous batching): session b
  // appends tokens[b]. The dense products run as one matrix product per layer over the B rows;
  // rotation, KV cache and attention stay per session (its own position and RoPE setting). Returns
  // logits [B × vocab]. Equal to each session's own forward() up to the summation order of sgemm
  // vs sgemv (~1e-6); B = 1 is forward() exactly.
  static std::vector<float> forward_batch(std::span<InferenceSession* const> sessions, std::span<const int> tokens);

  int64_t position() const { return pos_; }
  // Rows in the KV cache: position() without a window or budget, at most kv_sinks + kv_window or
  // kv_budget with one.
  int64_t cache_length() const { return cache_len_; }
  const SessionOptions& options() const { return opt_; }
  // The frequencies used for the most recent chunk.
  const RopeFrequencies& current_frequencies() const { return freqs_; }
  void reset() { pos_ = cache_len_ = 0; }
  // Forgets every token from `position` on (e.g. to score several continuations
  // of one prompt); the next forward() continues there. Throws std::out_of_range
  // past the current position, or before a window's first kept token, or where eviction removed a
  // token at or after `position` in some layer.
  void rewind(int64_t position);
  // Replaces the protected spans (SessionOptions::kv_protect), e.g. for the next prompt after reset().
  // Throws std::invalid_argument for a reversed or negative span.
  void protect(std::vector<PositionSpan> spans);
  // With a budget: the text positions of layer l's cached keys, in cache order.
  std::span<const int64_t> cached_positions(int l) const { return {row_pos_.at(l).data(), size_t(cache_len_)}; }
  // With a budget: the attention layer l's cached keys have received (Σ of softmax weights over later
  // queries and heads), in cache order.
  std::span<const float> received_attention(int l) const { return {received_.at(l).data(), size_t(cache_len_)}; }

 private:
  // The rotation of a chunk of n tokens at the current position: frequencies for its length, the
  // cos/sin rows, and (at read) those of every cached key. Sets freqs_.
  struct ChunkRope {
    CosSinTable table, key_table;
    std::vector<int64_t> positions, key_positions;
    // Self-Extend: the grouped positions of the chunk's queries and of every cached key, one table.
    CosSinTable grouped_table;
    std::vector<int64_t> grouped_positions, grouped_key_positions;
  };
  ChunkRope prepare_rope(int n);
  // Rotates this chunk's q (and k, at write), caches k and v at the current position and attends
  // over the cache: out = n rows of attention output for layer l, on up to `threads` threads.
  void attend(int l, int n, const ChunkRope& rope, float* q, float* k, const float* v, float* out, int threads);
  void forward_chunk(const int* tokens, int n, float* logits_out, bool all_logits);
  // With a window, before a chunk of n tokens: evicts the oldest tokens after the sinks so that the
  // cache holds at most kv_sinks + kv_window rows with the chunk. After it, advance counts them.
  void make_room(int n);
  void advance(int n);
  bool windowed() const { return opt_.kv_window > 0; }
  bool evicting() const { return opt_.kv_budget > 0; }
  // Evicts, in every layer, the n rows of least accumulated attention outside the recent half and kv_protect.
  void evict(int64_t n);
  bool is_protected(int64_t position) const;
  // A rotation of `n` rows at `positions` with this session's RoPE; tensors set by the caller.
  RotaryProblem rotary_problem(int64_t n, const int64_t* positions, const CosSinTable& table) const;

  const LlamaModel& m_;
  SessionOptions opt_;
  int64_t pos_ = 0;        // tokens seen
  int64_t cache_len_ = 0;  // rows in the cache (= pos_ without a window)
  RopeFrequencies freqs_;
  // Per layer [max_context][KV] rows of opt_.kv_cache (kv_storage.h), K and V.
  std::vector<std::vector<std::byte>> k_cache_, v_cache_;
  size_t kv_row_bytes_ = 0;
  DecoderScratch s_;
  std::vector<float> k_rot_;
  // With a budget, per layer: each row's text position and the attention it has received.
  std::vector<std::vector<int64_t>> row_pos_;
  std::vector<std::vector<float>> received_;
  std::vector<float> k_grouped_, q_grouped_, near_out_, far_out_, near_lse_, far_lse_;  // Self-Extend
  // Attention of n queries (query t sees keys 0 … keys_before + t) over key rows k and this layer's
  // value rows from v; lse: optional log-sum-exps.
  void attention_over(int n, int64_t keys_before, const float* q, const void* k, KvType k_type, const std::byte* v,
                      float* out, float* lse, int threads, float* key_weight = nullptr) const;
  // A sliding window with sinks and static frequencies, after evictions: the window's keys in place
  // (rotated at write), the sinks turned to their cache positions, the two attentions merged.
  void window_attention(int l, int n, const float* q, float* out, int threads);
  // Self-Extend's attention of the chunk's n queries (q rotated exactly, q_grouped at grouped positions).
  void attend_self_extend(int l, int n, const float* q, const float* k_exact, float* out, int threads);
};

}  // namespace ropescale
