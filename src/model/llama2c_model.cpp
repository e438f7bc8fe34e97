// llama2.c checkpoints: legacy v0 (karpathy's legacy_export) and v1 (fp32
// version1_export). Sizes were validated against the header by
// parse_llama2c_header before any weight is read.
#include <cmath>
#include <cstring>

#include "ropescale/config/error.h"
#include "ropescale/config/llama2c_header.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/llama_model.h"
#include "qk_permutation.h"

namespace ropescale {

namespace {

class FloatReader {
 public:
  FloatReader(std::span<const uint8_t> b, size_t offset, const std::string& path) : b_(b), pos_(offset), path_(path) {}
  std::vector<float> take(size_t n, const char* what) {
    if (n * 4 > b_.size() - pos_) throw_unreadable(path_, std::string("llama2.c: truncated while reading ") + what);
    std::vector<float> v(n);
    std::memcpy(v.data(), b_.data() + pos_, n * 4);
    pos_ += n * 4;
    return v;
  }
  void skip(size_t n) { pos_ += std::min(n * 4, b_.size() - pos_); }

 private:
  std::span<const uint8_t> b_;
  size_t pos_;
  const std::string& path_;
};

}  // namespace

LlamaModel load_llama2c_model(const std::string& path) {
  MappedFile file(path);
  const auto h = parse_llama2c_header(file.bytes(), path);
  if (h.version == 2) throw_unreadable(path, "llama2.c: int8 (version 2) checkpoints are not supported; export fp32 (version 1)");
  LlamaModel m;
  m.path = path;
  auto& hp = m.hp;
  hp.dim = h.dim;
  hp.hidden_dim = h.hidden_dim;
  hp.n_layers = h.n_layers;
  hp.n_heads = h.n_heads;
  hp.n_kv_heads = h.n_kv_heads;
  hp.vocab_size = h.vocab_size;
  hp.head_dim = h.head_dim();
  hp.trained_context = h.seq_len;
  hp.layout = PairLayout::Interleaved;  // llama2.c rotates (x[2i], x[2i+1])
  const size_t d = hp.dim, hd = hp.head_dim, q = size_t(hp.n_heads) * hd, kv = size_t(hp.n_kv_heads) * hd,
               hid = hp.hidden_dim, V = hp.vocab_size, L = hp.n_layers;
  m.layers.resize(L);
  FloatReader r(file.bytes(), h.header_bytes, path);
  auto per_layer = [&](std::vector<float> LlamaLayerWeights::*field, size_t n, const char* what) {
    for (auto& layer : m.layers) layer.*field = r.take(n, what);
  };
  if (h.version == 0) {
    m.token_embedding = r.take(V * d, "tok_embeddings");
    per_layer(&LlamaLayerWeights::attn_norm, d, "rms_att");
    per_layer(&LlamaLayerWeights::wq, q * d, "wq");
    per_layer(&LlamaLayerWeights::wk, kv * d, "wk");
    per_layer(&LlamaLayerWeights::wv, kv * d, "wv");
    per_layer(&LlamaLayerWeights::wo, d * q, "wo");
    per_layer(&LlamaLayerWeights::ffn_norm, d, "rms_ffn");
    per_layer(&LlamaLayerWeights::w1, hid * d, "w1");
    per_layer(&LlamaLayerWeights::w2, d * hid, "w2");
    per_layer(&LlamaLayerWeights::w3, hid * d, "w3");
    m.final_norm = r.take(d, "rms_final");
    r.skip(size_t(h.seq_len) * hd);  // freq_cis_real/imag: precomputed RoPE, not used
  } else {
    per_layer(&LlamaLayerWeights::attn_norm, d, "attention_norm");
    per_layer(&LlamaLayerWeights::ffn_norm, d, "ffn_norm");
    m.final_norm = r.take(d, "norm");
    m.token_embedding = r.take(V * d, "tok_embeddings");
    per_layer(&LlamaLayerWeights::wq, q * d, "wq");
    per_layer(&LlamaLayerWeights::wk, kv * d, "wk");
    per_layer(&LlamaLayerWeights::wv, kv * d, "wv");
    per_layer(&LlamaLayerWeights::wo, d * q, "wo");
    per_layer(&LlamaLayerWeights::w1, hid * d, "w1");
    per_layer(&LlamaLayerWeights::w2, d * hid, "w2");
    per_layer(&LlamaLayerWeights::w3, hid * d, "w3");
  }
  if (!h.shared_classifier) m.classifier = r.take(V * d, "classifier");
  m.position = model_config_from_llama2c(h, path);
  return m;
}

std::vector<uint8_t> serialize_llama2c_model(const LlamaModel& m) {
  const auto& hp = m.hp;
  std::vector<uint8_t> out(256, 0);
  auto put_i32 = [&](size_t at, int32_t v) { std::memcpy(out.data() + at, &v, 4); };
  put_i32(0, static_cast<int32_t>(kLlama2cMagic));
  put_i32(4, 1);  // version 1: fp32
  const int32_t fields[7] = {hp.dim, hp.hidden_dim, hp.n_layers, hp.n_heads, hp.n_kv_heads, hp.vocab_size, hp.trained_context};
  for (int i = 0; i < 7; ++i) put_i32(8 + 4 * size_t(i), fields[i]);
  out[36] = m.classifier.empty() ? 1 : 0;  // shared classifier
  auto put = [&](const std::vector<float>& v) {
    const size_t at = out.size();
    out.resize(at + v.size() * 4);
    std::memcpy(out.data() + at, v.data(), v.size() * 4);
  };
  // llama2.c rotates interleaved pairs: half-split (HF-order) rows go back to Meta order.
  const bool half_split = hp.layout == PairLayout::HalfSplit;
  auto qk = [&](const std::vector<float>& w, int heads) {
    return half_split ? detail::permute_qk_rows(w, heads, hp.head_dim, hp.dim, /*meta_to_hf*/ false) : w;
  };
  for (const auto& l : m.layers) put(l.attn_norm);
  for (const auto& l : m.layers) put(l.ffn_norm);
  put(m.final_norm);
  put(m.token_embedding);
  for (const auto& l : m.layers) put(qk(l.wq, hp.n_heads));
  for (const auto& l : m.layers) put(qk(l.wk, hp.n_kv_heads));
  for (const auto& l : m.layers) put(l.wv);
  for (const auto& l : m.layers) put(l.wo);
  for (const auto& l : m.layers) put(l.w1);
  for (const auto& l : m.layers) put(l.w2);
  for (const auto& l : m.layers) put(l.w3);
  if (!m.classifier.empty()) put(m.classifier);
  return out;
}

}  // namespace ropescale
