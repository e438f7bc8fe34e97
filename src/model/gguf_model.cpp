#include "ropescale/model/gguf_model.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_shape.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/rope/frequencies.h"
#include "ropescale/rope/rope_types.h"
#include "byte_level_bpe.h"
#include "space_mark.h"
#include "llama_tensors.h"
#include "qk_permutation.h"

namespace ropescale {

using nlohmann::json;
using T = GgufValueType;

std::optional<WeightType> parse_weight_type(std::string_view s) {
  if (s == "f32") return WeightType::F32;
  if (s == "f16") return WeightType::F16;
  if (s == "bf16") return WeightType::BF16;
  if (s == "q8_0") return WeightType::Q8_0;
  return std::nullopt;
}

namespace {

GgufTensorData encode_tensor(const std::string& name, const std::vector<float>& w, std::vector<uint64_t> dims, WeightType wt) {
  GgufTensorData t;
  t.name = name;
  t.dims = std::move(dims);
  if (t.dims.size() == 1) wt = WeightType::F32;  // norms stay F32
  if (wt == WeightType::Q8_0 && t.dims[0] % 32 != 0) wt = WeightType::F16;  // rows must be whole blocks
  switch (wt) {
    case WeightType::F32:
      t.type = uint32_t(GgmlType::F32);
      t.data.resize(w.size() * 4);
      std::memcpy(t.data.data(), w.data(), t.data.size());
      break;
    case WeightType::F16:
    case WeightType::BF16: {
      t.type = uint32_t(wt == WeightType::F16 ? GgmlType::F16 : GgmlType::BF16);
      t.data.resize(w.size() * 2);
      for (size_t i = 0; i < w.size(); ++i) {
        const uint16_t h = wt == WeightType::F16 ? float_to_f16(w[i]) : float_to_bf16(w[i]);
        std::memcpy(t.data.data() + 2 * i, &h, 2);
      }
      break;
    }
    case WeightType::Q8_0: {  // blocks of 32: f16 scale d = amax/127, int8 q = round(x/d)
      t.type = uint32_t(GgmlType::Q8_0);
      t.data.resize(w.size() / 32 * 34);
      for (size_t b = 0; b < w.size() / 32; ++b) {
        float amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(w[b * 32 + i]));
        const float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        const uint16_t dh = float_to_f16(d);
        std::memcpy(t.data.data() + b * 34, &dh, 2);
        for (int i = 0; i < 32; ++i)
          t.data[b * 34 + 2 + i] = static_cast<uint8_t>(static_cast<int8_t>(std::lround(w[b * 32 + i] * id)));
      }
      break;
    }
  }
  return t;
}

std::vector<float> decode_tensor(std::span<const uint8_t> bytes, const GgufFile& f, const GgufTensorInfo& t,
                                 const std::string& path) {
  const uint64_t n = t.elements();
  const uint8_t* p = bytes.data() + f.data_offset + t.offset;  // range validated by parse_gguf
  std::vector<float> out(n);
  switch (static_cast<GgmlType>(t.type)) {
    case GgmlType::F32: load_floats(DType::F32, p, out.data(), n); break;
    case GgmlType::F16: load_floats(DType::F16, p, out.data(), n); break;
    case GgmlType::BF16: load_floats(DType::BF16, p, out.data(), n); break;
    case GgmlType::Q8_0:
      for (uint64_t b = 0; b < n / 32; ++b) {
        uint16_t dh;
        std::memcpy(&dh, p + b * 34, 2);
        const float d = f16_to_float(dh);
        for (int i = 0; i < 32; ++i) out[b * 32 + i] = d * static_cast<int8_t>(p[b * 34 + 2 + i]);
      }
      break;
    default:
      throw_invalid(path, "tensor " + t.name, ggml_type_name(t.type), "unsupported type (F32, F16, BF16, Q8_0 are)");
  }
  return out;
}

}  // namespace

std::vector<uint8_t> serialize_gguf_model(const LlamaModel& m, const Llama2cTokenizer& tok, WeightType wt, const json& rope_in,
                                          const json& training) {
  const auto& hp = m.hp;
  const RopeSetting setting = rope_setting_for_model(m, rope_in, "");  // validates the setting
  const ModelConfig& pos = setting.position;
  const RopeSpec& spec = setting.spec;
  const json& rope = pos.rope_parameters;
  const RopeTypeInfo& info = rope_type_info(spec.type);

  std::vector<GgufKeyValue> md;
  auto kv = [&](const std::string& k, T t, json v, T at = T::Uint8) { md.push_back({k, t, at, std::move(v)}); };
  const std::string a = "llama.";
  kv("general.architecture", T::String, "llama");
  kv("general.name", T::String, m.position.name.empty() ? std::filesystem::path(m.path).stem().string() : m.position.name);
  kv("general.file_type", T::Uint32, wt == WeightType::F32 ? 0 : wt == WeightType::F16 ? 1 : wt == WeightType::Q8_0 ? 7 : 32);
  // Scaled models advertise the context they reach; the original length travels
  // in rope.scaling.original_context_length (as llama.cpp's converter does).
  kv(a + "context_length", T::Uint32, rope_reach(spec, hp.trained_context));
  kv(a + "embedding_length", T::Uint32, hp.dim);
  kv(a + "block_count", T::Uint32, hp.n_layers);
  kv(a + "feed_forward_length", T::Uint32, hp.hidden_dim);
  kv(a + "attention.head_count", T::Uint32, hp.n_heads);
  kv(a + "attention.head_count_kv", T::Uint32, hp.n_kv_heads);
  kv(a + "attention.layer_norm_rms_epsilon", T::Float32, hp.norm_eps);
  kv(a + "rope.dimension_count", T::Uint32, spec.rotary_dim);
  kv(a + "vocab_size", T::Uint32, hp.vocab_size);
  kv(a + "rope.freq_base", T::Float32,
     info.gguf == GgufEncoding::FreqBase ? ntk_theta(spec.theta, spec.factor, spec.rotary_dim) : spec.theta);

  // How llama.cpp reads the setting: the type's registry row says which keys or tensors carry it.
  std::vector<GgufTensorData> tensors;
  switch (info.gguf) {
    case GgufEncoding::Plain:
    case GgufEncoding::FreqBase:        // folded into rope.freq_base above
    case GgufEncoding::NotExpressible:  // llama.cpp runs it as plain RoPE (convert says so)
      break;
    case GgufEncoding::ScalingKeys:
      kv(a + "rope.scaling.type", T::String, std::string(info.ggml_name));
      kv(a + "rope.scaling.factor", T::Float32, spec.factor);
      kv(a + "rope.scaling.original_context_length", T::Uint32, hp.trained_context);
      if (spec.type == RopeType::Yarn) {
        if (spec.beta_fast != 32) kv(a + "rope.scaling.yarn_beta_fast", T::Float32, spec.beta_fast);
        if (spec.beta_slow != 1) kv(a + "rope.scaling.yarn_beta_slow", T::Float32, spec.beta_slow);
        // llama.cpp scales YaRN's cos/sin by 0.1·ln(factor) + 1, then by rope.scaling.attn_factor:
        // any other attention factor (an explicit one, DeepSeek's mscale pair) goes there as the ratio.
        const double extra = compute_frequencies(spec).attention_factor / yarn_mscale(spec.factor);
        if (std::abs(extra - 1.0) > 1e-7) kv(a + "rope.scaling.attn_factor", T::Float32, extra);
      }
      break;
    case GgufEncoding::FreqsTensor: {  // llama.cpp PR #8676: per-pair divisors as a tensor
      const auto div = divisors_against_default(spec, compute_frequencies(spec));
      tensors.push_back(encode_tensor("rope_freqs.weight", std::vector<float>(div.begin(), div.end()), {div.size()}, WeightType::F32));
      kv(a + "rope.scaling.original_context_length", T::Uint32, hp.trained_context);
      break;
    }
    case GgufEncoding::LongRopeFreqs: {
      // llama.cpp's llama architecture loads no rope_factors_long/short tensors (a file holding them
      // fails to load: "wrong number of tensors"); it takes per-pair divisors from rope_freqs.weight
      // and scales cos/sin by rope.scaling.attn_factor. So the long factors go there, as HF uses them
      // past the trained length; below it llama.cpp keeps the long factors where HF switches to the
      // short ones (ropescale reads the exact setting from ropescale.rope_parameters).
      const auto f = compute_frequencies(spec, int64_t(hp.trained_context) + 1);
      const auto div = divisors_against_default(spec, f);
      tensors.push_back(encode_tensor("rope_freqs.weight", std::vector<float>(div.begin(), div.end()), {div.size()}, WeightType::F32));
      kv(a + "rope.scaling.attn_factor", T::Float32, f.attention_factor);
      kv(a + "rope.scaling.original_context_length", T::Uint32, hp.trained_context);
      break;
    }
  }
  // Exact setting for ropescale (llama.cpp ignores unknown keys).
  kv("ropescale.rope_parameters", T::String, rope.dump());
  kv("ropescale.trained_context", T::Uint32, hp.trained_context);
  if (!training.is_null()) kv("ropescale.training", T::String, training.dump());

  // Vocabulary. A byte-level one (ropescale's own models: <unk> <s> </s>, then one token per byte)
  // is written as GPT-2 byte-level BPE with no merges: llama.cpp's BPE tokenizer then maps every
  // byte of any text to exactly the token ropescale gives it. As SentencePiece ("llama") it is
  // never exact: llama.cpp turns spaces into U+2581 and adds a leading one (three byte tokens
  // each), and even with the space token spelled U+2581 a literal U+2581 in the text would
  // become a space.
  if (tok.is_byte_level()) {
    json tokens = json::array({"<unk>", "<s>", "</s>"}), scores = json::array(), types = json::array({2, 3, 3});
    for (int b = 0; b < 256; ++b) tokens.push_back(detail::byte_level_char(b)), types.push_back(1);
    for (int i = 0; i < tok.vocab_size(); ++i) scores.push_back(0.0f);
    kv("tokenizer.ggml.model", T::String, "gpt2");
    kv("tokenizer.ggml.pre", T::String, "default");
    kv("tokenizer.ggml.tokens", T::Array, tokens, T::String);
    kv("tokenizer.ggml.scores", T::Array, scores, T::Float32);
    kv("tokenizer.ggml.token_type", T::Array, types, T::Int32);
    kv("tokenizer.ggml.merges", T::Array, json::array(), T::String);
  } else {  // SentencePiece (llama.cpp "llama"): spaces as U+2581, <s>/</s> control tokens, byte tokens
    json tokens = json::array(), scores = json::array(), types = json::array();
    for (int i = 0; i < tok.vocab_size(); ++i) {
      std::string p = tok.piece(i);
      int ty = 1;  // normal
      if (i == 0) ty = 2, p = "<unk>";
      else if (i == Llama2cTokenizer::kBos) ty = 3, p = "<s>";
      else if (i == Llama2cTokenizer::kEos) ty = 3, p = "</s>";
      else if (p.size() == 6 && p.rfind("<0x", 0) == 0) ty = 6;
      else p = detail::spaces_to_mark(p);
      tokens.push_back(p);
      scores.push_back(tok.score(i));
      types.push_back(ty);
    }
    kv("tokenizer.ggml.model", T::String, "llama");
    kv("tokenizer.ggml.tokens", T::Array, tokens, T::String);
    kv("tokenizer.ggml.scores", T::Array, scores, T::Float32);
    kv("tokenizer.ggml.token_type", T::Array, types, T::Int32);
  }
  kv("tokenizer.ggml.unknown_token_id", T::Uint32, 0);
  kv("tokenizer.ggml.bos_token_id", T::Uint32, Llama2cTokenizer::kBos);
  kv("tokenizer.ggml.eos_token_id", T::Uint32, Llama2cTokenizer::kEos);
  kv("tokenizer.ggml.add_bos_token", T::Bool, true);
  kv("tokenizer.ggml.add_eos_token", T::Bool, false);


  const uint64_t d = hp.dim, V = hp.vocab_size;
  const bool half_split = hp.layout == PairLayout::HalfSplit;
  tensors.push_back(encode_tensor("token_embd.weight", m.token_embedding, {d, V}, wt));
  for (int l = 0; l < hp.n_layers; ++l)
    for (const auto& t : detail::layer_tensors()) {
      const auto& w = m.layers[l].*t.field;
      // llama.cpp's llama architecture rotates Meta-ordered rows (ggml NORMAL).
      tensors.push_back(encode_tensor("blk." + std::to_string(l) + "." + t.gguf,
                                      half_split && t.qk_heads ? detail::permute_qk_rows(w, detail::heads_of(t, hp), hp.head_dim, hp.dim, false) : w,
                                      detail::shape_of(t, hp, true), wt));
    }
  tensors.push_back(encode_tensor("output_norm.weight", m.final_norm, {d}, wt));
  if (!m.classifier.empty()) tensors.push_back(encode_tensor("output.weight", m.classifier, {d, V}, wt));
  return serialize_gguf(md, tensors);
}

Llama2cTokenizer gguf_tokenizer(const GgufFile& f, const std::string& path) {
  const auto* toks = f.find("tokenizer.ggml.tokens");
  if (!toks || !toks->value.is_array()) throw_invalid(path, "tokenizer.ggml.tokens", "(missing)", "the GGUF has no vocabulary");
  const auto* model = f.find("tokenizer.ggml.model");
  if (model && model->value.is_string() && model->value.get<std::string>() == "gpt2") {
    // Byte-level BPE: read only as ropescale writes it — 3 specials, the 256 byte characters, no merges.
    const auto* merges = f.find("tokenizer.ggml.merges");
    if (merges && merges->value.is_array() && !merges->value.empty())
      throw_invalid(path, "tokenizer.ggml.merges", std::to_string(merges->value.size()) + " merges",
                    "ropescale reads byte-level BPE vocabularies without merges only");
    if (toks->value.size() != 259)
      throw_invalid(path, "tokenizer.ggml.tokens", std::to_string(toks->value.size()) + " tokens",
                    "a byte-level BPE vocabulary has 259 (<unk> <s> </s> and one per byte)");
    for (int b = 0; b < 256; ++b)
      if (!toks->value[3 + b].is_string() || toks->value[3 + b].get<std::string>() != detail::byte_level_char(b))
        throw_invalid(path, "tokenizer.ggml.tokens[" + std::to_string(3 + b) + "]", toks->value[3 + b].dump(),
                      "must be byte " + std::to_string(b) + "'s GPT-2 character");
    return Llama2cTokenizer::byte_level();
  }
  const auto* sc = f.find("tokenizer.ggml.scores");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  for (size_t i = 0; i < toks->value.size(); ++i) {
    const auto& v = toks->value[i];
    if (!v.is_string()) throw_invalid(path, "tokenizer.ggml.tokens[" + std::to_string(i) + "]", "", "must be a string");
    std::string p = detail::mark_to_spaces(v.get<std::string>());
    if (i == size_t(Llama2cTokenizer::kBos)) p = "\n<s>\n";   // llama2.c's spellings
    if (i == size_t(Llama2cTokenizer::kEos)) p = "\n</s>\n";
    pieces.push_back(p);
    scores.push_back(sc && sc->value.is_array() && i < sc->value.size() && sc->value[i].is_number() ? sc->value[i].get<float>() : 0.0f);
  }
  return Llama2cTokenizer::from_pieces(std::move(pieces), std::move(scores));
}

nlohmann::json load_gguf_training_record(const std::string& path) {
  MappedFile file(path);
  const auto b = file.bytes();
  if (b.size() < 4 || std::memcmp(b.data(), "GGUF", 4) != 0) return nullptr;
  const GgufFile f = parse_gguf(b, path);
  const auto* t = f.find("ropescale.training");
  if (!t || !t->value.is_string()) return nullptr;
  json j = json::parse(t->value.get<std::string>(), nullptr, false);
  return j.is_discarded() ? json() : j;
}

Llama2cTokenizer load_gguf_tokenizer(const std::string& path) {
  MappedFile file(path);
  return gguf_tokenizer(parse_gguf(file.bytes(), path), path);
}

LlamaModel load_gguf_model(const std::string& path, GgufRopeSource gguf_rope) {
  MappedFile file(path);
  const auto bytes = file.bytes();
  const GgufFile f = parse_gguf(bytes, path);
  LlamaModel m;
  m.path = path;
  m.position = model_config_from_gguf(bytes, path, gguf_rope);
  const ModelConfig& c = m.position;
  if (c.architecture != "llama")
    throw_invalid(path, "general.architecture", "\"" + c.architecture + "\"", "only the llama architecture runs (for now)");
  require_valid_model_shape(c);
  if (c.intermediate_size <= 0)
    throw_invalid(path, shape_key(c, ShapeField::Intermediate), "(missing or 0)", "the feed-forward width is needed to run the model");
  m.hp = hparams_from_config(c);
  auto& hp = m.hp;
  // Every block the file holds is one the metadata counts (and the loop below needs each it counts).
  std::vector<std::string> names;
  for (const auto& t : f.tensors) names.push_back(t.name);
  const int64_t blocks = detail::highest_layer_index(names, "blk.") + 1;
  if (blocks > hp.n_layers)
    throw_invalid(path, shape_key(c, ShapeField::Layers), std::to_string(hp.n_layers),
                  "but the file holds tensors of " + std::to_string(blocks) + " blocks (blk.0 … blk." + std::to_string(blocks - 1) + ")");
  auto tensor = [&](const std::string& name, std::vector<uint64_t> dims) {
    const auto* t = f.find_tensor(name);
    if (!t) throw_invalid(path, "tensor " + name, "(missing)", "required by the llama architecture");
    if (t->dims != dims) {
      std::string got;
      for (auto d : t->dims) got += (got.empty() ? "" : "×") + std::to_string(d);
      std::string want;
      for (auto d : dims) want += (want.empty() ? "" : "×") + std::to_string(d);
      throw_invalid(path, "tensor " + name, got,
                    "has the wrong shape: the metadata (" + shape_key(c, ShapeField::Hidden) + " " + std::to_string(hp.dim) +
                        ", heads " + std::to_string(hp.n_heads) + "/" + std::to_string(hp.n_kv_heads) + " × " +
                        std::to_string(hp.head_dim) + ", " + shape_key(c, ShapeField::Intermediate) + " " +
                        std::to_string(hp.hidden_dim) + ") needs " + want);
    }
    return decode_tensor(bytes, f, *t, path);
  };
  const auto* emb = f.find_tensor("token_embd.weight");
  if (!emb || emb->dims.size() != 2) throw_invalid(path, "tensor token_embd.weight", "(missing)", "required");
  if (emb->dims[1] < 1 || emb->dims[1] > (1u << 24))
    throw_invalid(path, "tensor token_embd.weight", std::to_string(emb->dims[1]) + " rows", "the vocabulary must have 1 to 2^24 tokens");
  if (c.vocab_size > 0 && uint64_t(c.vocab_size) != emb->dims[1])
    throw_invalid(path, shape_key(c, ShapeField::Vocab), std::to_string(c.vocab_size),
                  "disagrees with token_embd.weight, which has " + std::to_string(emb->dims[1]) + " rows");
  hp.vocab_size = int(emb->dims[1]);
  const uint64_t d = hp.dim, V = hp.vocab_size;
  m.token_embedding = tensor("token_embd.weight", {d, V});
  m.layers.resize(hp.n_layers);
  for (int l = 0; l < hp.n_layers; ++l)
    for (const auto& t : detail::layer_tensors())
      m.layers[l].*t.field = tensor("blk." + std::to_string(l) + "." + t.gguf, detail::shape_of(t, hp, true));
  m.final_norm = tensor("output_norm.weight", {d});
  if (f.find_tensor("output.weight")) m.classifier = tensor("output.weight", {d, V});
  return m;
}

}  // namespace ropescale
