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
#include "ropescale/kernels/convert.h"
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

InferenceSession::InferenceSession(const LlamaModel& model, SessionOptions options) : m_(model), opt_(std::move(options)) {
  single_threaded_blas();
  const auto& hp = m_.hp;
  if (opt_.max_context <= 0) opt_.max_context = hp.trained_context;
  if (opt_.chunk <= 0) throw std::invalid_argument("session: chunk must be > 0");
  if (opt_.rope.rotary_dim != hp.head_dim && opt_.rope.rotary_dim > hp.head_dim)
    throw std::invalid_argument("session: rotary_dim exceeds head_dim");
  const size_t kv = size_t(hp.n_kv_heads) * hp.head_dim;
  if (opt_.kv_cache == KvType::F16) {
    k16_.assign(hp.n_layers, std::vector<uint16_t>(size_t(opt_.max_context) * kv));
    v16_.assign(hp.n_layers, std::vector<uint16_t>(size_t(opt_.max_context) * kv));
  } else {
    k_cache_.assign(hp.n_layers, std::vector<float>(size_t(opt_.max_context) * kv));
    v_cache_.assign(hp.n_layers, std::vector<float>(size_t(opt_.max_context) * kv));
  }
}

std::vector<float> InferenceSession::forward(std::span<const int> tokens, bool all_logits) {
  const int V = m_.hp.vocab_size;
  if (pos_ + static_cast<int64_t>(tokens.size()) > opt_.max_context)
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

void InferenceSession::rewind(int64_t position) {
  if (position < 0 || position > pos_)
    throw std::out_of_range("session: cannot rewind to " + std::to_string(position) + " from " + std::to_string(pos_));
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

void InferenceSession::forward_chunk(const int* tokens, int n, float* logits_out, bool all_logits) {
  const auto& hp = m_.hp;
  const int dim = hp.dim, hd = hp.head_dim, H = hp.n_heads, KV = hp.n_kv_heads, hid = hp.hidden_dim;
  const int qd = H * hd, kvd = KV * hd;
  const int64_t p0 = pos_, p1 = pos_ + n;
  // Frequencies for the current length (static methods ignore it).
  freqs_ = compute_frequencies(opt_.rope, p1);
  const CosSinTable table = build_cos_sin_table(freqs_, p0, p1);
  std::vector<int64_t> positions(n);
  for (int t = 0; t < n; ++t) positions[t] = p0 + t;

  x_.resize(size_t(n) * dim);
  xb_.resize(x_.size());
  q_.resize(size_t(n) * qd);
  k_.resize(size_t(n) * kvd);
  v_.resize(size_t(n) * kvd);
  att_.resize(q_.size());
  h1_.resize(size_t(n) * hid);
  h3_.resize(h1_.size());
  for (int t = 0; t < n; ++t)
    std::memcpy(&x_[size_t(t) * dim], &m_.token_embedding[size_t(tokens[t]) * dim], dim * sizeof(float));

  const bool at_read = opt_.key_rotation == KeyRotation::AtRead;
  CosSinTable key_table;
  std::vector<int64_t> key_positions;
  if (at_read) {  // every cached key is rotated with the current frequencies
    key_table = build_cos_sin_table(freqs_, 0, p1);
    key_positions.resize(p1);
    for (int64_t i = 0; i < p1; ++i) key_positions[i] = i;
    k_rot_.resize(size_t(p1) * kvd);
  }

  for (int l = 0; l < hp.n_layers; ++l) {
    const auto& w = m_.layers[l];
    rmsnorm(x_.data(), w.attn_norm, xb_.data(), n, dim, hp.norm_eps);
    matmul_shared_input(xb_.data(), {{&w.wq, q_.data(), qd}, {&w.wk, k_.data(), kvd}, {&w.wv, v_.data(), kvd}}, n, dim,
                        opt_.threads);

    RotaryProblem rp = rotary_problem(n, positions.data(), table);
    rp.q = {q_.data(), DType::F32, H, qd, hd};
    if (!at_read) rp.k = {k_.data(), DType::F32, KV, kvd, hd};
    apply_rotary(rp, opt_.threads);

    const bool f16 = opt_.kv_cache == KvType::F16;
    const void* kc = f16 ? static_cast<const void*>(k16_[l].data()) : k_cache_[l].data();
    const void* vc = f16 ? static_cast<const void*>(v16_[l].data()) : v_cache_[l].data();
    if (f16) {
      f32_to_f16(k_.data(), k16_[l].data() + p0 * kvd, k_.size());
      f32_to_f16(v_.data(), v16_[l].data() + p0 * kvd, v_.size());
    } else {
      std::memcpy(k_cache_[l].data() + p0 * kvd, k_.data(), k_.size() * sizeof(float));
      std::memcpy(v_cache_[l].data() + p0 * kvd, v_.data(), v_.size() * sizeof(float));
    }
    const void* keys = kc;
    KvType key_type = opt_.kv_cache;
    if (at_read) {
      if (f16)
        f16_to_f32(k16_[l].data(), k_rot_.data(), size_t(p1) * kvd);
      else
        std::memcpy(k_rot_.data(), k_cache_[l].data(), size_t(p1) * kvd * sizeof(float));
      RotaryProblem kp = rotary_problem(p1, key_positions.data(), key_table);
      kp.k = {k_rot_.data(), DType::F32, KV, kvd, hd};
      apply_rotary(kp, opt_.threads);
      keys = k_rot_.data();
      key_type = KvType::F32;
    }

    AttentionProblem ap;
    ap.n_queries = n;
    ap.n_heads = H;
    ap.n_kv_heads = KV;
    ap.head_dim = hd;
    ap.keys_before = p0;
    ap.q = q_.data();
    ap.k = keys;
    ap.v = vc;
    ap.k_type = key_type;
    ap.v_type = opt_.kv_cache;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    ap.out = att_.data();
    attention(ap, opt_.threads);

    matmul(att_.data(), w.wo, xb_.data(), n, qd, dim, opt_.threads);
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += xb_[i];

    rmsnorm(x_.data(), w.ffn_norm, xb_.data(), n, dim, hp.norm_eps);
    matmul_shared_input(xb_.data(), {{&w.w1, h1_.data(), hid}, {&w.w3, h3_.data(), hid}}, n, dim, opt_.threads);
    swiglu(h1_.data(), h3_.data(), h1_.size());  // silu(w1 x) · w3 x
    matmul(h1_.data(), w.w2, xb_.data(), n, hid, dim, opt_.threads);
    for (size_t i = 0; i < x_.size(); ++i) x_[i] += xb_[i];
  }
  pos_ = p1;
  if (!logits_out) return;
  const int V = hp.vocab_size;
  if (all_logits) {
    rmsnorm(x_.data(), m_.final_norm, xb_.data(), n, dim, hp.norm_eps);
    matmul(xb_.data(), m_.output_weights(), logits_out, n, dim, V, opt_.threads);
  } else {
    rmsnorm(x_.data() + size_t(n - 1) * dim, m_.final_norm, xb_.data(), 1, dim, hp.norm_eps);
    matmul(xb_.data(), m_.output_weights(), logits_out, 1, dim, V, opt_.threads);
  }
}

}  // namespace ropescale
