#include "ropescale/model/hf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "ropescale/config/error.h"
#include "ropescale/config/json_text.h"
#include "ropescale/config/hf_config.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/config/model_shape.h"
#include "ropescale/config/rope_params.h"
#include "ropescale/config/safetensors.h"
#include "ropescale/kernels/rotary.h"
#include "ropescale/rope/rope_types.h"
#include "byte_level_bpe.h"
#include "space_mark.h"
#include "llama_tensors.h"
#include "qk_permutation.h"

namespace ropescale {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

SafetensorsTensorData encode(const std::string& name, const std::vector<float>& w, std::vector<uint64_t> shape, WeightType wt) {
  SafetensorsTensorData t{name, "F32", std::move(shape), {}};
  if (wt == WeightType::F32) {
    t.data.resize(w.size() * 4);
    std::memcpy(t.data.data(), w.data(), t.data.size());
  } else {
    t.dtype = wt == WeightType::F16 ? "F16" : "BF16";
    t.data.resize(w.size() * 2);
    for (size_t i = 0; i < w.size(); ++i) {
      const uint16_t h = wt == WeightType::F16 ? float_to_f16(w[i]) : float_to_bf16(w[i]);
      std::memcpy(t.data.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

}  // namespace

namespace {

const std::string kSpecials[3] = {"<unk>", "<s>", "</s>"};

// tokenizer.json (tokenizers' format) around a model and its text pipeline, with
// what every ropescale vocabulary shares: <unk> <s> </s> as ids 0-2 and BOS
// prepended to every text.
json tokenizer_json(json normalizer, json pre_tokenizer, json decoder, json model) {
  json added = json::array();
  for (int i = 0; i < 3; ++i)
    added.push_back({{"id", i}, {"content", kSpecials[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  const json bos = {{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}};
  const json a = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, b = {{"Sequence", {{"id", "B"}, {"type_id", 1}}}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", std::move(normalizer)},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", json::array({bos, a})},
            {"pair", json::array({bos, a, b})},
            {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", json::array({1})}, {"tokens", json::array({"<s>"})}}}}}}},
          {"decoder", std::move(decoder)},
          {"model", std::move(model)}};
}

json bpe_model(json vocab, json merges, bool byte_fallback) {
  return {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", byte_fallback ? json("<unk>") : json()},
          {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", byte_fallback},
          {"byte_fallback", byte_fallback}, {"ignore_merges", false}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}};
}

// Byte level: BPE over GPT-2's byte characters with no merges and no regex
// split — one token per byte, as ropescale encodes.
json byte_level_tokenizer_json() {
  json vocab = json::object();
  for (int i = 0; i < 3; ++i) vocab[kSpecials[i]] = i;
  for (int b = 0; b < 256; ++b) vocab[detail::byte_level_char(b)] = 3 + b;
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  return tokenizer_json(nullptr, byte_level, byte_level, bpe_model(vocab, json::array(), false));
}

// SentencePiece-style (llama2.c scores, byte fallback): the text gets a leading
// space and spaces become U+2581 (so a U+2581 in the text is a space, as in
// ropescale's encoder); the merges are every (left, right) whose concatenation
// is a piece, highest-scoring merged piece first — the order llama2.c and
// SentencePiece merge in. Ties between different merged pieces go to the lower
// id (ropescale takes the leftmost pair; `inspect` reports vocabularies with such ties).
json sentencepiece_tokenizer_json(const Llama2cTokenizer& tok) {
  std::vector<std::string> pieces(tok.vocab_size());
  json vocab = json::object();
  for (int i = 0; i < tok.vocab_size(); ++i) {
    pieces[i] = i < 3 ? kSpecials[i] : detail::spaces_to_mark(tok.piece(i));
    if (!vocab.contains(pieces[i])) vocab[pieces[i]] = i;  // first occurrence wins, as in ropescale
  }
  struct Merge {
    float score;
    int merged, left, right;
  };
  std::vector<Merge> merges;
  for (int m = 3; m < tok.vocab_size(); ++m) {
    if (vocab[pieces[m]].get<int>() != m) continue;
    for (size_t k = 1; k < pieces[m].size(); ++k) {
      const auto l = vocab.find(pieces[m].substr(0, k)), r = vocab.find(pieces[m].substr(k));
      if (l != vocab.end() && r != vocab.end() && l->get<int>() >= 3 && r->get<int>() >= 3)
        merges.push_back({tok.score(m), m, l->get<int>(), r->get<int>()});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return a.score != b.score ? a.score > b.score : a.merged < b.merged;
  });
  json merge_list = json::array();
  for (const auto& m : merges) merge_list.push_back(json::array({pieces[m.left], pieces[m.right]}));
  const json normalizer = {{"type", "Sequence"},
                           {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", detail::kSpaceMark}},
                                                        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", detail::kSpaceMark}}})}};
  const json decoder = {{"type", "Sequence"},
                        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", detail::kSpaceMark}}}, {"content", " "}},
                                                  {{"type", "ByteFallback"}},
                                                  {{"type", "Fuse"}},
                                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  return tokenizer_json(normalizer, nullptr, decoder, bpe_model(vocab, merge_list, true));
}

// tokenizer.json + tokenizer_config.json, so transformers (AutoTokenizer) gives
// every text ropescale's ids.
void write_tokenizer_json(const Llama2cTokenizer& tok, const std::string& dir) {
  const json tokenizer = tok.is_byte_level() ? byte_level_tokenizer_json() : sentencepiece_tokenizer_json(tok);
  const json config = {{"tokenizer_class", "PreTrainedTokenizerFast"}, {"bos_token", "<s>"}, {"eos_token", "</s>"},
                       {"unk_token", "<unk>"}, {"add_bos_token", true}, {"add_eos_token", false},
                       {"clean_up_tokenization_spaces", false}, {"split_special_tokens", true}};  // no model_max_length: contexts get extended
  write_file((fs::path(dir) / "tokenizer.json").string(), tokenizer.dump(2) + "\n");
  write_file((fs::path(dir) / "tokenizer_config.json").string(), config.dump(2) + "\n");
}

}  // namespace

void write_hf_model(const LlamaModel& m, const Llama2cTokenizer& tok, WeightType wt, const std::string& dir, const json& rope_in) {
  if (wt == WeightType::Q8_0) throw_unreadable("--dtype", "q8_0 is not a safetensors type (f32, f16, bf16)");
  const auto& hp = m.hp;
  const RopeSetting setting = rope_setting_for_model(m, rope_in, "");  // validates the setting
  const ModelConfig& pos = setting.position;
  const RopeSpec& spec = setting.spec;
  json rope = pos.rope_parameters;
  const int64_t max_pos = rope_reach(spec, hp.trained_context);
  const double theta = number_or(rope, "rope_theta", hp.rope_theta);
  rope.erase("rope_theta");
  // Only the types whose HF schema has it (linear/dynamic would be warned about).
  if (rope_type_info(spec.type).needs_original_length)
    rope["original_max_position_embeddings"] = hp.trained_context;
  else
    rope.erase("original_max_position_embeddings");
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", hp.dim},
              {"intermediate_size", hp.hidden_dim},
              {"num_hidden_layers", hp.n_layers},
              {"num_attention_heads", hp.n_heads},
              {"num_key_value_heads", hp.n_kv_heads},
              {"head_dim", hp.head_dim},
              {"hidden_act", "silu"},
              {"max_position_embeddings", max_pos},
              {"rms_norm_eps", hp.norm_eps},
              {"rope_theta", theta},
              {"rope_scaling", spec.type == RopeType::Default ? json() : rope},
              {"vocab_size", hp.vocab_size},
              {"tie_word_embeddings", m.classifier.empty()},
              {"attention_bias", false},
              {"mlp_bias", false},
              {"bos_token_id", Llama2cTokenizer::kBos},
              {"eos_token_id", Llama2cTokenizer::kEos},
              {"torch_dtype", wt == WeightType::F32 ? "float32" : wt == WeightType::F16 ? "float16" : "bfloat16"}};

  const uint64_t d = hp.dim, V = hp.vocab_size;
  const bool to_hf = hp.layout == PairLayout::Interleaved;  // Meta rows → rotate_half rows
  std::vector<SafetensorsTensorData> ts;
  ts.push_back(encode("model.embed_tokens.weight", m.token_embedding, {V, d}, wt));
  for (int l = 0; l < hp.n_layers; ++l)
    for (const auto& t : detail::layer_tensors()) {
      const auto& w = m.layers[l].*t.field;
      ts.push_back(encode("model.layers." + std::to_string(l) + "." + t.hf,
                          to_hf && t.qk_heads ? detail::permute_qk_rows(w, detail::heads_of(t, hp), hp.head_dim, hp.dim, true) : w,
                          detail::shape_of(t, hp, false), wt));
    }
  ts.push_back(encode("model.norm.weight", m.final_norm, {d}, wt));
  if (!m.classifier.empty()) ts.push_back(encode("lm_head.weight", m.classifier, {V, d}, wt));

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw_unreadable(dir, "cannot create the directory: " + ec.message());
  const std::string cfg_text = cfg.dump(2) + "\n";
  write_file((fs::path(dir) / "config.json").string(), cfg_text);
  const auto st = serialize_safetensors(ts, {{"format", "pt"}});
  write_file((fs::path(dir) / "model.safetensors").string(), st);
  tok.save((fs::path(dir) / "tokenizer.bin").string());
  write_tokenizer_json(tok, dir);
}

LlamaModel load_hf_model(const std::string& path_in) {
  fs::path dir = fs::is_directory(path_in) ? fs::path(path_in) : fs::path(path_in).parent_path();
  const fs::path cfg_path = dir / "config.json";
  LlamaModel m;
  m.path = dir.string();
  m.position = load_model_config(cfg_path.string());
  const ModelConfig& c = m.position;
  if (c.architecture != "llama" && c.architecture != "mistral")
    throw_invalid(cfg_path.string(), "model_type", "\"" + c.architecture + "\"", "only Llama-family models run (for now)");
  require_valid_model_shape(c);
  if (c.intermediate_size <= 0 || c.vocab_size <= 0)
    throw_invalid(cfg_path.string(), c.intermediate_size <= 0 ? "intermediate_size" : "vocab_size", "(missing or 0)",
                  "must be a positive integer to run the model");
  m.hp = hparams_from_config(c);
  auto& hp = m.hp;
  hp.layout = PairLayout::HalfSplit;  // HF q/k rows are in rotate_half order
  // The raw config for the one field ModelConfig does not keep (tie_word_embeddings).
  MappedFile cf(cfg_path.string());
  const json raw = json::parse(cf.bytes().begin(), cf.bytes().end(), nullptr, false);

  // One file, or shards listed in model.safetensors.index.json.
  std::vector<fs::path> shards;
  if (fs::exists(dir / "model.safetensors")) {
    shards.push_back(dir / "model.safetensors");
  } else if (fs::exists(dir / "model.safetensors.index.json")) {
    MappedFile idx((dir / "model.safetensors.index.json").string());
    const json j = json::parse(idx.bytes().begin(), idx.bytes().end(), nullptr, false);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw_unreadable((dir / "model.safetensors.index.json").string(), "no weight_map");
    std::set<std::string> files;
    for (const auto& v : j["weight_map"]) if (v.is_string()) files.insert(v.get<std::string>());
    for (const auto& f : files) shards.push_back(dir / f);
  } else {
    throw_unreadable(dir.string(), "no model.safetensors (or model.safetensors.index.json) beside config.json");
  }
  std::vector<std::unique_ptr<MappedFile>> files;
  std::vector<SafetensorsFile> parsed;
  for (const auto& s : shards) {
    files.push_back(std::make_unique<MappedFile>(s.string()));
    parsed.push_back(parse_safetensors(files.back()->bytes(), s.string()));
  }
  auto tensor = [&](const std::string& name, std::vector<uint64_t> shape) {
    for (size_t i = 0; i < parsed.size(); ++i) {
      auto it = parsed[i].tensors.find(name);
      if (it == parsed[i].tensors.end()) continue;
      if (it->second.shape != shape) {
        auto text = [](const std::vector<uint64_t>& v) {
          std::string out;
          for (auto x : v) out += (out.empty() ? "" : "×") + std::to_string(x);
          return out;
        };
        throw_invalid(shards[i].string(), "tensor " + name, text(it->second.shape),
                      "has the wrong shape: config.json (hidden_size " + std::to_string(hp.dim) + ", heads " +
                          std::to_string(hp.n_heads) + "/" + std::to_string(hp.n_kv_heads) + " × " + std::to_string(hp.head_dim) +
                          ", intermediate_size " + std::to_string(hp.hidden_dim) + ", vocab_size " + std::to_string(hp.vocab_size) +
                          ") needs " + text(shape));
      }
      const std::string& dt = it->second.dtype;
      if (dt != "F32" && dt != "F16" && dt != "BF16")
        throw_invalid(shards[i].string(), "tensor " + name, dt, "unsupported dtype (F32, F16, BF16 are)");
      const auto data = safetensors_data(files[i]->bytes(), parsed[i], name, shards[i].string());
      const DType type = dt == "F32" ? DType::F32 : dt == "F16" ? DType::F16 : DType::BF16;
      std::vector<float> out(data.size() / dtype_size(type));
      load_floats(type, data.data(), out.data(), out.size());
      return out;
    }
    throw_invalid(dir.string(), "tensor " + name, "(missing)", "required by the Llama architecture");
  };
  auto has = [&](const std::string& name) {
    for (const auto& p : parsed) if (p.tensors.count(name)) return true;
    return false;
  };
  std::vector<std::string> names;
  for (const auto& p : parsed)
    for (const auto& [name, t] : p.tensors) names.push_back(name);
  if (const int64_t layers = detail::highest_layer_index(names, "model.layers.") + 1; layers > hp.n_layers)
    throw_invalid(cfg_path.string(), "num_hidden_layers", std::to_string(hp.n_layers),
                  "but the checkpoint holds tensors of " + std::to_string(layers) + " layers (model.layers.0 … " +
                      std::to_string(layers - 1) + ")");
  const uint64_t d = hp.dim, V = hp.vocab_size;
  m.token_embedding = tensor("model.embed_tokens.weight", {V, d});
  m.layers.resize(hp.n_layers);
  for (int l = 0; l < hp.n_layers; ++l)
    for (const auto& t : detail::layer_tensors())
      m.layers[l].*t.field = tensor("model.layers." + std::to_string(l) + "." + t.hf, detail::shape_of(t, hp, false));
  m.final_norm = tensor("model.norm.weight", {d});
  if (has("lm_head.weight") && !bool_or(raw, "tie_word_embeddings", false)) m.classifier = tensor("lm_head.weight", {V, d});
  return m;
}

}  // namespace ropescale
