#include "ropescale/config/llama2c_header.h"

#include <climits>
#include <cstring>
#include <string>

#include "ropescale/config/error.h"
#include "ropescale/config/rope_params.h"

namespace ropescale {

namespace {

int32_t read_i32(std::span<const uint8_t> b, size_t off) {
  int32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}

// fp32 weights of a llama2.c model, in floats (same count for v0 and v1).
uint64_t weight_floats(const Llama2cHeader& h) {
  const uint64_t d = h.dim, hd = h.head_dim(), L = h.n_layers, V = static_cast<uint64_t>(h.vocab_size);
  const uint64_t q = static_cast<uint64_t>(h.n_heads) * hd, kv = static_cast<uint64_t>(h.n_kv_heads) * hd;
  uint64_t n = V * d;                           // token embedding
  n += L * d * 2;                               // rms_att, rms_ffn
  n += L * (d * q + 2 * d * kv + q * d);        // wq, wk, wv, wo
  n += L * 3 * d * static_cast<uint64_t>(h.hidden_dim);  // w1, w2, w3
  n += d;                                       // rms_final
  if (!h.shared_classifier) n += V * d;
  return n;
}

}  // namespace

Llama2cHeader parse_llama2c_header(std::span<const uint8_t> b, const std::string& path) {
  Llama2cHeader h;
  if (b.size() < 28) throw_unreadable(path, "llama2.c: file too small for a header (" + std::to_string(b.size()) + " bytes)");
  uint32_t magic;
  std::memcpy(&magic, b.data(), 4);
  size_t off = 0;
  if (magic == kLlama2cMagic) {
    if (b.size() < 256) throw_unreadable(path, "llama2.c: versioned header needs 256 bytes, file has " + std::to_string(b.size()));
    h.version = read_i32(b, 4);
    if (h.version != 1 && h.version != 2)
      throw_unreadable(path, "llama2.c: unsupported checkpoint version " + std::to_string(h.version));
    off = 8;
    h.header_bytes = 256;
  } else {
    h.version = 0;
    h.header_bytes = 28;
  }
  h.dim = read_i32(b, off);
  h.hidden_dim = read_i32(b, off + 4);
  h.n_layers = read_i32(b, off + 8);
  h.n_heads = read_i32(b, off + 12);
  h.n_kv_heads = read_i32(b, off + 16);
  h.vocab_size = read_i32(b, off + 20);
  h.seq_len = read_i32(b, off + 24);
  if (h.version == 0) {
    // Legacy: a negative vocab_size means a separate classifier.
    h.shared_classifier = h.vocab_size > 0;
    if (h.vocab_size < 0) h.vocab_size = h.vocab_size == INT32_MIN ? 0 : -h.vocab_size;  // 0 fails the range check
  } else {
    h.shared_classifier = b[off + 28] != 0;
    if (h.version == 2) {
      std::memcpy(&h.group_size, b.data() + off + 29, 4);
      if (h.group_size <= 0) throw_unreadable(path, "llama2.c: group_size " + std::to_string(h.group_size) + " must be > 0");
    }
  }
  auto bad = [&](const char* field, int64_t v, const char* why) {
    throw_unreadable(path, std::string("llama2.c header: ") + field + " = " + std::to_string(v) + " " + why +
                               " (not a llama2.c checkpoint, or a corrupt one)");
  };
  constexpr int32_t kLimit = 1 << 20;
  if (h.dim <= 0 || h.dim > kLimit) bad("dim", h.dim, "is out of range");
  if (h.hidden_dim <= 0 || h.hidden_dim > 4 * kLimit) bad("hidden_dim", h.hidden_dim, "is out of range");
  if (h.n_layers <= 0 || h.n_layers > 4096) bad("n_layers", h.n_layers, "is out of range");
  if (h.n_heads <= 0 || h.n_heads > h.dim || h.dim % h.n_heads != 0) bad("n_heads", h.n_heads, "does not divide dim");
  if (h.n_kv_heads <= 0 || h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0)
    bad("n_kv_heads", h.n_kv_heads, "does not divide n_heads");
  if (h.vocab_size <= 0 || h.vocab_size > 16 * kLimit) bad("vocab_size", h.vocab_size, "is out of range");
  if (h.seq_len <= 0 || h.seq_len > 64 * kLimit) bad("seq_len", h.seq_len, "is out of range");
  if (h.head_dim() % 2 != 0) bad("head_dim", h.head_dim(), "is odd; RoPE needs pairs");

  if (h.version == 0) {
    // karpathy's legacy export appends freq_cis_real/imag ([seq_len, head_dim/2] each).
    const uint64_t with_freqs = h.header_bytes + 4 * (weight_floats(h) + static_cast<uint64_t>(h.seq_len) * h.head_dim());
    const uint64_t without = h.header_bytes + 4 * weight_floats(h);
    h.expected_bytes = b.size() == without ? without : with_freqs;
  } else if (h.version == 1) {
    h.expected_bytes = h.header_bytes + 4 * weight_floats(h);
  }
  if (h.expected_bytes && b.size() != h.expected_bytes)
    throw_unreadable(path, "llama2.c: the header implies " + std::to_string(h.expected_bytes) + " bytes, the file has " +
                               std::to_string(b.size()) + (b.size() < h.expected_bytes ? " (truncated)" : " (trailing data)"));
  return h;
}

ModelConfig model_config_from_llama2c(const Llama2cHeader& h, const std::string& path) {
  ModelConfig c;
  c.path = path;
  c.format = SourceFormat::Llama2c;
  c.architecture = "llama";
  c.hidden_size = h.dim;
  c.num_attention_heads = h.n_heads;
  c.num_key_value_heads = h.n_kv_heads;
  c.num_hidden_layers = h.n_layers;
  c.vocab_size = h.vocab_size;
  c.intermediate_size = h.hidden_dim;
  c.head_dim = c.rotary_head_dim = h.head_dim();
  c.max_position_embeddings = h.seq_len;
  c.layout = PairLayout::Interleaved;  // llama2.c rotates (x[2i], x[2i+1]) like Meta
  c.convention = Convention::HF;
  c.rope_source = "llama2.c (theta 10000, no scaling)";
  c.rope_parameters = standardize_rope_parameters(nlohmann::json::object(), c);
  c.notes.push_back("llama2.c checkpoint v" + std::to_string(h.version) + (h.shared_classifier ? ", tied classifier" : ", separate classifier"));
  return c;
}

}  // namespace ropescale
