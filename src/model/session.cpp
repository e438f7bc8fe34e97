#include "ropescale/model/session.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "ropescale/config/model_config.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/kernels/attention.h"
#include "ropescale/kernels/kv_storage.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/kernels/thread_pool.h"
#include "ropescale/model/llama_ops.h"

namespace ropescale {



std::string rope_scaling_for_request(const LlamaModel& m, int64_t tokens, const RopePolicy& p) {
  if (!(p.granularity > 0) || !(p.max_factor >= 1))
    throw std::invalid_argument("rope policy: granularity must be > 0 and max_factor >= 1");
  // The policy picks a factor, so the method must be a type chosen by its factor (its row's shorthand takes one).
  const RopeTypeInfo* info = find_rope_type(p.method);
  if (!info || info->shorthand_arg != ShorthandArg::Factor || m.position.alibi)
    throw std::invalid_argument("rope policy: method '" + p.method + "' must be a RoPE scaling type chosen by a factor");
  const int64_t L = m.hp.trained_context;
  if (tokens <= L) return "";
  double factor = std::ceil(static_cast<double>(tokens) / L / p.granularity - 1e-12) * p.granularity;
  if (factor > p.max_factor)
    throw std::invalid_argument("rope policy: " + std::to_string(tokens) + " tokens need factor " + std::to_string(factor) +
                                " > max_factor " + std::to_string(p.max_factor));
  return rope_dict_for(*info, factor, L).dump();
}

int session_chunk(int chunk, int64_t kv_window, int64_t kv_budget) {
  for (int64_t capacity : {kv_window, kv_budget})
    if (capacity > 0) chunk = static_cast<int>(std::min<int64_t>(chunk, std::max<int64_t>(1, capacity / 4)));
  return chunk;
}

int64_t session_cache_rows(const SessionOptions& o, int64_t trained_context) {
  if (o.kv_window > 0) return o.kv_sinks + o.kv_window;
  if (o.kv_budget > 0) return o.kv_budget;
  return o.max_context > 0 ? o.max_context : trained_context;
}

InferenceSession::InferenceSession(const LlamaModel& model, SessionOptions options) : m_(model), opt_(std::move(options)) {
  single_threaded_blas();
  const auto& hp = m_.hp;
  if (opt_.max_context <= 0) opt_.max_context = hp.trained_context;
  if (opt_.chunk <= 0) throw std::invalid_argument("session: chunk must be > 0");
  if (opt_.rope.rotary_dim != hp.head_dim && opt_.rope.rotary_dim > hp.head_dim)
    throw std::invalid_argument("session: rotary_dim exceeds head_dim");
  if (opt_.kv_window < 0 || opt_.kv_sinks < 0) throw std::invalid_argument("session: kv_window and kv_sinks must be >= 0");
  if (opt_.kv_sinks > 0 && !windowed()) throw std::invalid_argument("session: kv_sinks needs a kv_window");
  validate(opt_.self_extend);
  if (opt_.self_extend.enabled() && windowed()) throw std::invalid_argument("session: Self-Extend and a KV window do not combine");
  if (opt_.kv_budget < 0) throw std::invalid_argument("session: kv_budget must be >= 0");
  if (evicting() && (windowed() || opt_.self_extend.enabled()))
    throw std::invalid_argument("session: a KV budget does not combine with a window or Self-Extend");
  if (evicting() && opt_.kv_budget < 2) throw std::invalid_argument("session: kv_budget must be at least 2 tokens");
  protect(std::move(opt_.kv_protect));
  // Self-Extend rotates every key at two positions per read. A window with length-dependent frequencies
  // re-rotates every key at read (the frequencies move with the cache's length); with static ones keys
  // are rotated once, at write (window_attention).
  if (opt_.self_extend.enabled() || (windowed() && opt_.rope.is_dynamic())) opt_.key_rotation = KeyRotation::AtRead;
  else if (windowed()) opt_.key_rotation = KeyRotation::AtWrite;
  kv_row_bytes_ = kv_row_bytes(opt_.kv_cache, hp.head_dim);  // refuses q8_0 / q4_0 for a head_dim they cannot hold
  opt_.chunk = session_chunk(opt_.chunk, opt_.kv_window, opt_.kv_budget);
  const int64_t rows = session_cache_rows(opt_, hp.trained_context);
  if (rows > int64_t{1} << 30)  // the attention kernel's position limit
    throw std::invalid_argument("session: a KV cache of " + std::to_string(rows) + " tokens exceeds 2^30 positions");
  const size_t layer_bytes = size_t(rows) * hp.n_kv_heads * kv_row_bytes_;
  try {
    k_cache_.assign(hp.n_layers, std::vector<std::byte>(layer_bytes));
    v_cache_.assign(hp.n_layers, std::vector<std::byte>(layer_bytes));
    if (evicting()) {
      row_pos_.assign(hp.n_layers, std::vector<int64_t>(size_t(rows)));
      received_.assign(hp.n_layers, std::vector<float>(size_t(rows)));
    }
  } catch (const std::bad_alloc&) {
    k_cache_.clear(), v_cache_.clear();
    throw std::invalid_argument("session: cannot allocate a KV cache of " + std::to_string(rows) + " tokens (" +
                                std::to_string(kv_cache_bytes(opt_.kv_cache, hp.n_layers, hp.n_kv_heads, hp.head_dim, rows)) +
                                " bytes of " + std::string(to_string(opt_.kv_cache)) + ")");
  }
}

size_t InferenceSession::kv_cache_bytes_allocated() const {
  size_t bytes = 0;
  for (const auto* cache : {&k_cache_, &v_cache_})
    for (const auto& layer : *cache) bytes += layer.size();
  return bytes;
}

std::vector<float> InferenceSession::forward(std::span<const int> tokens, bool all_logits) {
  const int V = m_.hp.vocab_size;
  if (!windowed() && !evicting() && pos_ + static_cast<int64_t>(tokens.size()) > opt_.max_context)
    throw std::length_error("session: " + std::to_string(pos_ + tokens.size()) + " tokens exceed the KV cache of " +
                            std::to_string(opt_.max_context));
  for (int t : tokens)
    if (t < 0 || t >= V) throw std::invalid_argument("session: token id " + std::to_string(t) + " outside the vocabulary");
  std::vector<float> logits(all_logits ? tokens.size() * size_t(V) : size_t(V));
  for (size_t i = 0; i < tokens.size(); i += opt_.chunk) {
    const int n = static_cast<int>(std::min<size_t>(opt_.chunk, tokens.size() - i));
    const bool last = i + n == tokens.size();
    float* out = all_logits ? logits.data() + i * V : (last ? logits.data() : nullptr);
    forward_chunk(tokens.data() + i, n, out, all_logits);
  }
  return logits;
}

void InferenceSession::make_room(int n) {
  if (evicting() && cache_len_ + n > opt_.kv_budget) return evict(cache_len_ + n - opt_.kv_budget);
  const int64_t capacity = opt_.kv_sinks + opt_.kv_window;
  if (!windowed() || cache_len_ + n <= capacity) return;
  // Evict the oldest tokens after the sinks so that the chunk fits: the kept rows move down to follow
  // the sinks, where this chunk's rotation gives them their new cache positions (keys are stored unrotated).
  const int64_t sinks = std::min(opt_.kv_sinks, cache_len_);
  const int64_t drop = std::min(cache_len_ + n - capacity, cache_len_ - sinks), kept = cache_len_ - sinks - drop;
  const int64_t row = int64_t(m_.hp.n_kv_heads) * int64_t(kv_row_bytes_);
  for (auto* cache : {&k_cache_, &v_cache_})
    for (auto& layer : *cache) std::memmove(layer.data() + sinks * row, layer.data() + (sinks + drop) * row, size_t(kept * row));
  cache_len_ -= drop;
}

std::vector<PositionSpan> merge_spans(std::vector<PositionSpan> spans) {
  for (const PositionSpan& span : spans)
    if (span.begin < 0 || span.end < span.begin)
      throw std::invalid_argument("session: protected span [" + std::to_string(span.begin) + ", " + std::to_string(span.end) + ") is reversed or negative");
  std::sort(spans.begin(), spans.end(), [](const PositionSpan& a, const PositionSpan& b) { return a.begin < b.begin; });
  std::vector<PositionSpan> merged;
  for (const PositionSpan& span : spans) {
    if (span.begin == span.end) continue;
    if (!merged.empty() && span.begin <= merged.back().end)
      merged.back().end = std::max(merged.back().end, span.end);
    else
      merged.push_back(span);
  }
  return merged;
}

int64_t covered_positions(const std::vector<PositionSpan>& merged) {
  int64_t n = 0;
  for (const PositionSpan& span : merged) n += span.end - span.begin;
  return n;
}

void InferenceSession::protect(std::vector<PositionSpan> spans) { opt_.kv_protect = merge_spans(std::move(spans)); }

bool InferenceSession::is_protected(int64_t position) const {
  // The last span beginning at or before `position` (spans disjoint and sorted).
  const auto after = std::upper_bound(opt_.kv_protect.begin(), opt_.kv_protect.end(), position,
                                      [](int64_t p, const PositionSpan& span) { return p < span.begin; });
  return after != opt_.kv_protect.begin() && position < std::prev(after)->end;
}

void InferenceSession::evict(int64_t n) {
  const int64_t row = int64_t(m_.hp.n_kv_heads) * int64_t(kv_row_bytes_);
  const int64_t recent_from = cache_len_ - std::min(cache_len_, opt_.kv_budget / 2);  // H2O's recent half
  std::vector<int64_t> candidates;
  for (size_t l = 0; l < k_cache_.size(); ++l) {
    const std::vector<int64_t>& pos = row_pos_[l];
    const std::vector<float>& received = received_[l];
    // The rows eviction may take: outside the recent half first; if those are too few, any unprotected row.
    for (int64_t limit : {recent_from, cache_len_}) {
      candidates.clear();
      for (int64_t i = 0; i < limit; ++i)
        if (!is_protected(pos[i])) candidates.push_back(i);
      if (int64_t(candidates.size()) >= n) break;
    }
    if (int64_t(candidates.size()) < n)
      throw std::length_error("session: protected spans hold " + std::to_string(cache_len_ - int64_t(candidates.size())) + " of the " +
                              std::to_string(opt_.kv_budget) + "-token KV budget; nothing left to evict for " + std::to_string(n) +
                              " more tokens");
    // The n least attended (the older one on a tie), then the kept rows compacted in order.
    std::nth_element(candidates.begin(), candidates.begin() + (n - 1), candidates.end(), [&](int64_t a, int64_t b) {
      return received[a] != received[b] ? received[a] < received[b] : a < b;
    });
    std::sort(candidates.begin(), candidates.begin() + n);  // the evicted rows, in order
    // Each run of kept rows between two evicted ones moves down in one piece.
    int64_t kept = candidates[0];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t from = candidates[j] + 1, to = j + 1 < n ? candidates[j + 1] : cache_len_;
      if (to <= from) continue;
      for (auto* cache : {&k_cache_, &v_cache_})
        std::memmove((*cache)[l].data() + kept * row, (*cache)[l].data() + from * row, size_t((to - from) * row));
      std::copy(row_pos_[l].begin() + from, row_pos_[l].begin() + to, row_pos_[l].begin() + kept);
      std::copy(received_[l].begin() + from, received_[l].begin() + to, received_[l].begin() + kept);
      kept += to - from;
    }
  }
  cache_len_ -= n;
}

void InferenceSession::advance(int n) {
  pos_ += n;
  cache_len_ += n;
}

void InferenceSession::rewind(int64_t position) {
  // With a window that has evicted E tokens, rows hold the sinks and the text from S + E on; with a
  // budget, the tokens from `position` on must all still be cached, as the last rows of every layer.
  const int64_t evicted = pos_ - cache_len_;
  int64_t earliest = opt_.kv_sinks + evicted;
  if (evicting()) {
    earliest = 0;
    for (const auto& pos : row_pos_) {
      int64_t first = pos_;  // the first position of the layer's trailing run of consecutive tokens
      for (int64_t i = cache_len_ - 1; i >= 0 && pos[i] == first - 1; --i) first = pos[i];
      earliest = std::max(earliest, first);
    }
  }
  if (position < 0 || position > pos_ || (evicted > 0 && position < earliest))
    throw std::out_of_range("session: cannot rewind to " + std::to_string(position) + " from " + std::to_string(pos_) +
                            (evicted > 0 ? " (the window's earliest kept token is " + std::to_string(earliest) + ")" : ""));
  cache_len_ -= pos_ - position;
  pos_ = position;  // cache rows past it are overwritten by the next chunk
}

RotaryProblem InferenceSession::rotary_problem(int64_t n, const int64_t* positions, const CosSinTable& table) const {
  RotaryProblem p;
  p.n_tokens = n;
  p.positions = positions;
  p.head_dim = m_.hp.head_dim;
  p.rotary_dim = opt_.rope.rotary_dim;
  p.layout = m_.hp.layout;
  p.angles.table = &table;
  return p;
}

namespace {

// The dense parts of one decoder layer over n rows of x (in place): RMSNorm → Q, K, V → `attend`
// (which fills att from q, k, v rows) → O + residual → RMSNorm → SwiGLU + residual. A session's
// chunk and a batch of sessions' decode rows run through the same code.
template <class Attend>
void decoder_layer(const LlamaLayerWeights& w, const LlamaHParams& hp, DecoderScratch& s, int n, int threads, Attend&& attend) {
  const int dim = hp.dim, qd = hp.n_heads * hp.head_dim, kvd = hp.n_kv_heads * hp.head_dim, hid = hp.hidden_dim;
  s.xb.resize(size_t(n) * dim);
  s.q.resize(size_t(n) * qd);
  s.k.resize(size_t(n) * kvd);
  s.v.resize(size_t(n) * kvd);
  s.att.resize(s.q.size());
  s.h1.resize(size_t(n) * hid);
  s.h3.resize(s.h1.size());
  rmsnorm(s.x.data(), w.attn_norm, s.xb.data(), n, dim, hp.norm_eps);
  matmul_shared_input(s.xb.data(), {{&w.wq, s.q.data(), qd}, {&w.wk, s.k.data(), kvd}, {&w.wv, s.v.data(), kvd}}, n, dim, threads);
  attend();
  matmul(s.att.data(), w.wo, s.xb.data(), n, qd, dim, threads);
  for (size_t i = 0; i < size_t(n) * dim; ++i) s.x[i] += s.xb[i];
  rmsnorm(s.x.data(), w.ffn_norm, s.xb.data(), n, dim, hp.norm_eps);
  matmul_shared_input(s.xb.data(), {{&w.w1, s.h1.data(), hid}, {&w.w3, s.h3.data(), hid}}, n, dim, threads);
  swiglu(s.h1.data(), s.h3.data(), s.h1.size());  // silu(w1 x) · w3 x
  matmul(s.h1.data(), w.w2, s.xb.data(), n, hid, dim, threads);
  for (size_t i = 0; i < size_t(n) * dim; ++i) s.x[i] += s.xb[i];
}

void embed(const LlamaModel& m, const int* tokens, int n, float* x) {
  for (int t = 0; t < n; ++t)
    std::memcpy(x + size_t(t) * m.hp.dim, &m.token_embedding[size_t(tokens[t]) * m.hp.dim], m.hp.dim * sizeof(float));
}

// Final RMSNorm and the classifier for `rows` rows of x starting at `first`.
void output_logits(const LlamaModel& m, DecoderScratch& s, int first, int rows, float* logits, int threads) {
  const int dim = m.hp.dim;
  s.xb.resize(size_t(rows) * dim);
  rmsnorm(s.x.data() + size_t(first) * dim, m.final_norm, s.xb.data(), rows, dim, m.hp.norm_eps);
  matmul(s.xb.data(), m.output_weights(), logits, rows, dim, m.hp.vocab_size, threads);
}

}  // namespace

InferenceSession::ChunkRope InferenceSession::prepare_rope(int n) {
  // The chunk's positions: the text's — with a budget evicted tokens leave the cache but not the
  // positions; with a window and static frequencies only relative positions matter (window_attention) —
  // or the cache's, with a window whose frequencies depend on its length.
  const int64_t p0 = windowed() && opt_.key_rotation == KeyRotation::AtRead ? cache_len_ : pos_, p1 = p0 + n;
  ChunkRope r;
  // Frequencies for the current length (static methods ignore it).
  freqs_ = compute_frequencies(opt_.rope, p1);
  r.table = build_cos_sin_table(freqs_, p0, p1);
  r.positions.resize(n);
  for (int t = 0; t < n; ++t) r.positions[t] = p0 + t;
  if (opt_.key_rotation == KeyRotation::AtRead) {  // every cached key is rotated with the current frequencies
    r.key_table = build_cos_sin_table(freqs_, 0, p1);
    if (!evicting()) {  // with a budget, each layer's keys are at row_pos_
      r.key_positions.resize(p1);
      for (int64_t i = 0; i < p1; ++i) r.key_positions[i] = i;
    }
  }
  if (const SelfExtend& se = opt_.self_extend; se.enabled()) {
    r.grouped_positions.resize(n);
    for (int t = 0; t < n; ++t) r.grouped_positions[t] = self_extend_query_position(se, p0 + t);
    r.grouped_key_positions.resize(p1);
    for (int64_t i = 0; i < p1; ++i) r.grouped_key_positions[i] = self_extend_key_position(se, i);
    r.grouped_table = build_cos_sin_table(freqs_, 0, self_extend_query_position(se, p1 - 1) + 1);
  }
  return r;
}

void InferenceSession::attend(int l, int n, const ChunkRope& rope, float* q, float* k, const float* v, float* out, int threads) {
  const auto& hp = m_.hp;
  const int hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads, qd = H * hd, kvd = KV * hd;
  const int64_t c0 = cache_len_, c1 = cache_len_ + n;  // the chunk's cache rows
  const bool at_read = opt_.key_rotation == KeyRotation::AtRead;
  float* received = nullptr;
  if (evicting()) {  // the chunk's keys: their text positions, no attention received yet
    for (int t = 0; t < n; ++t) row_pos_[l][c0 + t] = pos_ + t;
    std::fill(received_[l].begin() + c0, received_[l].begin() + c1, 0.0f);
    received = received_[l].data();
  }
  if (opt_.self_extend.enabled()) {  // the queries again, at their grouped positions
    q_grouped_.assign(q, q + size_t(n) * qd);
    RotaryProblem gp = rotary_problem(n, rope.grouped_positions.data(), rope.grouped_table);
    gp.q = {q_grouped_.data(), DType::F32, H, qd, hd};
    apply_rotary(gp, threads);
  }
  RotaryProblem rp = rotary_problem(n, rope.positions.data(), rope.table);
  rp.q = {q, DType::F32, H, qd, hd};
  if (!at_read) rp.k = {k, DType::F32, KV, kvd, hd};
  apply_rotary(rp, threads);

  const int64_t row0 = c0 * KV;  // the chunk's first cache row
  kv_store_rows(opt_.kv_cache, k, k_cache_[l].data() + row0 * kv_row_bytes_, int64_t(n) * KV, hd);
  kv_store_rows(opt_.kv_cache, v, v_cache_[l].data() + row0 * kv_row_bytes_, int64_t(n) * KV, hd);
  const void* keys = k_cache_[l].data();
  KvType key_type = opt_.kv_cache;
  if (at_read) {
    k_rot_.resize(size_t(c1) * kvd);
    kv_load_rows(opt_.kv_cache, k_cache_[l].data(), k_rot_.data(), c1 * KV, hd);
    if (opt_.self_extend.enabled()) k_grouped_.assign(k_rot_.begin(), k_rot_.end());  // the same unrotated keys, for grouped positions
    RotaryProblem kp = rotary_problem(c1, evicting() ? row_pos_[l].data() : rope.key_positions.data(), rope.key_table);
    kp.k = {k_rot_.data(), DType::F32, KV, kvd, hd};
    apply_rotary(kp, threads);
    keys = k_rot_.data();
    key_type = KvType::F32;
    if (opt_.self_extend.enabled()) {
      RotaryProblem gp = rotary_problem(c1, rope.grouped_key_positions.data(), rope.grouped_table);
      gp.k = {k_grouped_.data(), DType::F32, KV, kvd, hd};
      apply_rotary(gp, threads);
      return attend_self_extend(l, n, q, k_rot_.data(), out, threads);
    }
  }

  if (windowed() && !at_read && pos_ > cache_len_ && opt_.kv_sinks > 0) return window_attention(l, n, q, out, threads);
  attention_over(n, c0, q, keys, key_type, v_cache_[l].data(), out, nullptr, threads, received);
}

void InferenceSession::window_attention(int l, int n, const float* q, float* out, int threads) {
  // Keys were rotated once, at their text positions, and queries are at theirs, so the window's rows
  // (consecutive text) sit at the right distances from every query with no re-rotation; only the sinks
  // moved: sink i belongs at cache position i, i.e. text position i + E after E evictions. They are
  // turned by E more (rotations compose; the table without the attention factor, which they carry), and
  // each query's attention over them is merged with the window's by the log-sum-exps.
  const auto& hp = m_.hp;
  const int hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads, qd = H * hd, kvd = KV * hd;
  const int64_t S = opt_.kv_sinks, c0 = cache_len_, evicted = pos_ - cache_len_, row = int64_t(KV) * int64_t(kv_row_bytes_);
  k_rot_.resize(size_t(S) * kvd);
  kv_load_rows(opt_.kv_cache, k_cache_[l].data(), k_rot_.data(), S * KV, hd);
  RopeFrequencies shift = freqs_;
  shift.attention_factor = 1.0;
  const CosSinTable table = build_cos_sin_table(shift, evicted, evicted + 1);
  const std::vector<int64_t> by(size_t(S), evicted);
  RotaryProblem sp = rotary_problem(S, by.data(), table);
  sp.k = {k_rot_.data(), DType::F32, KV, kvd, hd};
  apply_rotary(sp, threads);
  near_out_.resize(size_t(n) * qd), near_lse_.resize(size_t(n) * H), far_out_.resize(size_t(qd)), far_lse_.resize(H);
  attention_over(n, c0 - S, q, k_cache_[l].data() + S * row, opt_.kv_cache, v_cache_[l].data() + S * row, near_out_.data(),
                 near_lse_.data(), threads);
  for (int t = 0; t < n; ++t) {  // every query sees every sink
    attention_over(1, S - 1, q + size_t(t) * qd, k_rot_.data(), KvType::F32, v_cache_[l].data(), far_out_.data(), far_lse_.data(),
                   threads);
    merge_attention(near_out_.data() + size_t(t) * qd, near_lse_.data() + size_t(t) * H, far_out_.data(), far_lse_.data(),
                    out + size_t(t) * qd, H, hd);
  }
}

void InferenceSession::attention_over(int n, int64_t keys_before, const float* q, const void* k, KvType k_type,
                                      const std::byte* v, float* out, float* lse, int threads, float* key_weight) const {
  const auto& hp = m_.hp;
  AttentionProblem ap;
  ap.n_queries = n;
  ap.n_heads = hp.n_heads;
  ap.n_kv_heads = hp.n_kv_heads;
  ap.head_dim = hp.head_dim;
  ap.keys_before = keys_before;
  ap.q = q;
  ap.k = k;
  ap.v = v;
  ap.k_type = k_type;
  ap.v_type = opt_.kv_cache;
  ap.scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  ap.out = out;
  ap.lse = lse;
  ap.key_weight = key_weight;
  attention(ap, threads);
}

void InferenceSession::attend_self_extend(int l, int n, const float* q, const float* k_exact, float* out, int threads) {
  const auto& hp = m_.hp;
  const int hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads, qd = H * hd, kvd = KV * hd;
  const int64_t p0 = cache_len_, W = opt_.self_extend.window, row = int64_t(KV) * int64_t(kv_row_bytes_);
  const std::byte* values = v_cache_[l].data();
  // Queries at positions < W see only neighbours: one causal problem, as without Self-Extend.
  const int exact_only = static_cast<int>(std::clamp<int64_t>(W - p0, 0, n));
  if (exact_only > 0) attention_over(exact_only, p0, q, k_exact, KvType::F32, values, out, nullptr, threads);
  // Each later query p: its W neighbours [p − W + 1, p] at exact positions, the keys [0, p − W] grouped,
  // merged by their log-sum-exps.
  near_out_.resize(size_t(qd)), far_out_.resize(size_t(qd)), near_lse_.resize(H), far_lse_.resize(H);
  for (int t = exact_only; t < n; ++t) {
    const int64_t first_near = p0 + t - W + 1;
    attention_over(1, W - 1, q + size_t(t) * qd, k_exact + size_t(first_near) * kvd, KvType::F32, values + first_near * row,
                   near_out_.data(), near_lse_.data(), threads);
    attention_over(1, first_near - 1, q_grouped_.data() + size_t(t) * qd, k_grouped_.data(), KvType::F32, values,
                   far_out_.data(), far_lse_.data(), threads);  // keys 0 … p − W
    merge_attention(near_out_.data(), near_lse_.data(), far_out_.data(), far_lse_.data(), out + size_t(t) * qd, H, hd);
  }
}

void InferenceSession::forward_chunk(const int* tokens, int n, float* logits_out, bool all_logits) {
  const auto& hp = m_.hp;
  make_room(n);
  const ChunkRope rope = prepare_rope(n);
  s_.x.resize(size_t(n) * hp.dim);
  embed(m_, tokens, n, s_.x.data());
  for (int l = 0; l < hp.n_layers; ++l)
    decoder_layer(m_.layers[l], hp, s_, n, opt_.threads,
                  [&] { attend(l, n, rope, s_.q.data(), s_.k.data(), s_.v.data(), s_.att.data(), opt_.threads); });
  advance(n);
  if (!logits_out) return;
  if (all_logits) output_logits(m_, s_, 0, n, logits_out, opt_.threads);
  else output_logits(m_, s_, n - 1, 1, logits_out, opt_.threads);
}

std::vector<float> InferenceSession::forward_batch(std::span<InferenceSession* const> sessions, std::span<const int> tokens) {
  if (sessions.size() != tokens.size()) throw std::invalid_argument("forward_batch: one token per session");
  if (sessions.empty()) return {};
  const LlamaModel& m = sessions[0]->m_;
  const auto& hp = m.hp;
  const int B = static_cast<int>(sessions.size()), qd = hp.n_heads * hp.head_dim, kvd = hp.n_kv_heads * hp.head_dim;
  for (int b = 0; b < B; ++b) {
    InferenceSession& s = *sessions[b];
    if (&s.m_ != &m) throw std::invalid_argument("forward_batch: the sessions must share one model");
    if (!s.windowed() && !s.evicting() && s.pos_ + 1 > s.opt_.max_context)
      throw std::length_error("session: " + std::to_string(s.pos_ + 1) + " tokens exceed the KV cache of " +
                              std::to_string(s.opt_.max_context));
    if (tokens[b] < 0 || tokens[b] >= hp.vocab_size)
      throw std::invalid_argument("session: token id " + std::to_string(tokens[b]) + " outside the vocabulary");
  }
  if (B == 1) return sessions[0]->forward(tokens.subspan(0, 1));  // the single-session path, bit for bit
  const int threads = sessions[0]->opt_.threads;
  std::vector<ChunkRope> ropes;
  for (auto* s : sessions) {
    s->make_room(1);
    ropes.push_back(s->prepare_rope(1));
  }  // each row: its own position and setting
  DecoderScratch batch;
  batch.x.resize(size_t(B) * hp.dim);
  embed(m, tokens.data(), B, batch.x.data());
  for (int l = 0; l < hp.n_layers; ++l)
    decoder_layer(m.layers[l], hp, batch, B, threads, [&] {
      // The sessions' attentions side by side, one thread each: one hand-off per layer instead of
      // one per session and operation.
      ThreadPool::global().parallel_for(B, threads, [&](int b) {
        sessions[b]->attend(l, 1, ropes[b], batch.q.data() + size_t(b) * qd, batch.k.data() + size_t(b) * kvd,
                            batch.v.data() + size_t(b) * kvd, batch.att.data() + size_t(b) * qd, 1);
      });
    });
  for (auto* s : sessions) s->advance(1);
  std::vector<float> logits(size_t(B) * hp.vocab_size);
  output_logits(m, batch, 0, B, logits.data(), threads);
  return logits;
}

}  // namespace ropescale
