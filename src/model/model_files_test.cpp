// Malformed model files, every class in every format ropescale runs: GGUF,
// llama2.c and HF safetensors. Each is built from a good tiny model by one
// edit and must be refused before any use with a ConfigError whose key (or,
// for llama2.c's header, message) names what is wrong — never garbage output.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>

#include <gtest/gtest.h>

#include "ropescale/config/error.h"
#include "ropescale/config/gguf.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/hf_model.h"
#include "ropescale/model/session.h"
#include "test_support.h"
#include "tiny_model.h"

namespace ropescale {
namespace {

using nlohmann::json;
using T = GgufValueType;

LlamaModel tiny() { return test::tiny_llama(32, 48, 2, 4, 2, 259, 64); }

// Expects load_model(path) to throw a ConfigError whose key (or message) contains `fragment`.
void expect_refused(const std::string& path, const std::string& fragment, GgufRopeSource src = GgufRopeSource::Agree) {
  try {
    (void)load_model(path, src);
    ADD_FAILURE() << "loaded although " << fragment << " is wrong";
  } catch (const ConfigError& e) {
    const std::string all = e.key() + " | " + e.what();
    EXPECT_NE(all.find(fragment), std::string::npos) << all;
    EXPECT_NE(std::string(e.what()).find(std::filesystem::path(path).filename().string()), std::string::npos) << e.what();
  }
}

// ---- GGUF: rewrite a good file with one metadata or tensor edit --------------
struct GgufParts {
  std::vector<GgufKeyValue> metadata;
  std::vector<GgufTensorData> tensors;
  GgufKeyValue& kv(const std::string& key) {
    for (auto& k : metadata)
      if (k.key == key) return k;
    metadata.push_back({key, T::Uint32, T::Uint8, 0});
    return metadata.back();
  }
  void erase(const std::string& key) {
    std::erase_if(metadata, [&](const GgufKeyValue& k) { return k.key == key; });
  }
};

GgufParts split(const std::vector<uint8_t>& bytes) {
  const GgufFile f = parse_gguf(bytes, "good.gguf");
  GgufParts p{f.metadata, {}};
  for (const auto& t : f.tensors) {
    const uint8_t* at = bytes.data() + f.data_offset + t.offset;
    p.tensors.push_back({t.name, t.dims, t.type, std::vector<uint8_t>(at, at + *t.n_bytes)});
  }
  return p;
}

std::string write_gguf(const std::string& name, const GgufParts& p) {
  return test::write_temp(name, serialize_gguf(p.metadata, p.tensors));
}

TEST(ModelFiles, GgufEveryClassOfLieIsRefused) {
  const auto tok = Llama2cTokenizer::byte_level();
  const auto good = serialize_gguf_model(tiny(), tok, WeightType::F32, json::parse(R"({"rope_type":"yarn","factor":4})"));
  ASSERT_NO_THROW(load_model(test::write_temp("good.gguf", good)));
  const double nan = std::nan("");
  struct Case {
    const char* what;
    std::function<void(GgufParts&)> edit;
    const char* fragment;
  };
  const Case cases[] = {
      {"zero heads", [](GgufParts& p) { p.kv("llama.attention.head_count").value = 0; }, "llama.attention.head_count"},
      {"KV heads that do not divide the heads", [](GgufParts& p) { p.kv("llama.attention.head_count_kv").value = 3; },
       "llama.attention.head_count_kv"},
      {"zero context", [](GgufParts& p) { p.kv("llama.context_length").value = 0; }, "llama.context_length"},
      {"absurd width", [](GgufParts& p) { p.kv("llama.embedding_length").value = uint32_t(1) << 31; }, "llama.embedding_length"},
      {"absurd layer count", [](GgufParts& p) { p.kv("llama.block_count").value = 1u << 30; }, "llama.block_count"},
      {"NaN RMS epsilon", [&](GgufParts& p) { p.kv("llama.attention.layer_norm_rms_epsilon").value = nan; },
       "llama.attention.layer_norm_rms_epsilon"},
      {"negative RMS epsilon", [](GgufParts& p) { p.kv("llama.attention.layer_norm_rms_epsilon").value = -1e-5; },
       "llama.attention.layer_norm_rms_epsilon"},
      {"no feed-forward width", [](GgufParts& p) { p.erase("llama.feed_forward_length"); }, "llama.feed_forward_length"},
      {"fewer layers than tensors", [](GgufParts& p) { p.kv("llama.block_count").value = 1; }, "llama.block_count"},
      {"more layers than tensors", [](GgufParts& p) { p.kv("llama.block_count").value = 3; }, "blk.2."},
      {"width disagreeing with the tensors", [](GgufParts& p) { p.kv("llama.embedding_length").value = 64; }, "has the wrong shape"},
      {"vocabulary size disagreeing with the embedding", [](GgufParts& p) { p.kv("llama.vocab_size").value = 300; },
       "llama.vocab_size"},
      {"a tensor of an unsupported type",
       [](GgufParts& p) {
         for (auto& t : p.tensors)
           if (t.name == "blk.0.attn_q.weight") {
             t.type = static_cast<uint32_t>(GgmlType::I32);  // same bytes per element as F32
           }
       },
       "blk.0.attn_q.weight"},
      {"llama.cpp keys edited after writing (factor 4 → 2)",
       [](GgufParts& p) { p.kv("llama.rope.scaling.factor").value = 2.0; }, "ropescale.rope_parameters vs llama.rope"},
      {"llama.cpp keys removed", [](GgufParts& p) { p.erase("llama.rope.scaling.type"); }, "ropescale.rope_parameters vs"},
      {"a ropescale record that is not JSON",
       [](GgufParts& p) { p.kv("ropescale.rope_parameters").value = "{yarn"; }, "ropescale.rope_parameters"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    GgufParts p = split(good);
    c.edit(p);
    expect_refused(write_gguf("lie.gguf", p), c.fragment);
  }
}

TEST(ModelFiles, GgufDisagreeingRopeRecordsLoadOnlyWhenASideIsChosen) {
  const auto tok = Llama2cTokenizer::byte_level();
  GgufParts p = split(serialize_gguf_model(tiny(), tok, WeightType::F32, json::parse(R"({"rope_type":"yarn","factor":4})")));
  p.kv("llama.rope.scaling.factor").value = 2.0;
  const auto path = write_gguf("two-records.gguf", p);
  try {
    (void)load_model(path);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.kind(), ConfigError::Kind::Invalid);  // exit 1: read, but inconsistent
    // Both values are named.
    EXPECT_NE(e.value().find("\"factor\":4,"), std::string::npos) << e.value();
    EXPECT_NE(e.value().find("\"factor\":2.0"), std::string::npos) << e.value();
    EXPECT_NE(std::string(e.what()).find("--gguf-rope"), std::string::npos);
  }
  EXPECT_EQ(rope_spec_for_model(load_model(path, GgufRopeSource::Ropescale)).factor, 4.0);
  EXPECT_EQ(rope_spec_for_model(load_model(path, GgufRopeSource::LlamaCpp)).factor, 2.0);
  EXPECT_EQ(rope_spec_for_model(load_model(path, GgufRopeSource::LlamaCpp)).convention, Convention::GGML);
}

// ---- llama2.c: the header is all there is ------------------------------------
TEST(ModelFiles, Llama2cEveryClassOfLieIsRefused) {
  const auto good = serialize_llama2c_model(tiny());
  ASSERT_NO_THROW(load_model(test::write_temp("good.bin", good)));
  // v1 header: magic, version, then dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len (int32 each).
  auto patch = [&](int field, int32_t v) {
    auto b = good;
    std::memcpy(b.data() + 8 + 4 * field, &v, 4);
    return b;
  };
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    const char* fragment;
  };
  const Case cases[] = {
      {"zero width", patch(0, 0), "dim"},
      {"negative feed-forward width", patch(1, -48), "hidden_dim"},
      {"absurd layer count", patch(2, 1 << 30), "n_layers"},
      {"heads that do not divide the width", patch(3, 5), "n_heads"},
      {"KV heads that do not divide the heads", patch(4, 3), "n_kv_heads"},
      {"zero vocabulary", patch(5, 0), "vocab_size"},
      {"negative context", patch(6, -64), "seq_len"},
      {"a layer count the weights cannot fit", patch(2, 3), "truncated"},
      {"truncated weights", std::vector<uint8_t>(good.begin(), good.end() - 4), "truncated"},
      {"trailing data", [&] { auto b = good; b.resize(b.size() + 4); return b; }(), "trailing"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    expect_refused(test::write_temp("lie.bin", c.bytes), c.fragment);
  }
}

// ---- HF: config.json + model.safetensors -------------------------------------
struct HfDir {
  std::string dir;
  HfDir() : dir((test::temp_dir() / "lie-hf").string()) {
    std::filesystem::remove_all(dir);
    write_hf_model(tiny(), Llama2cTokenizer::byte_level(), WeightType::F32, dir);
  }
  ~HfDir() { std::filesystem::remove_all(dir); }
  std::string file(const char* name) const { return (std::filesystem::path(dir) / name).string(); }
  json config() const { return json::parse(read_file_text(file("config.json"))); }
  void set_config(const json& j) const { write_file(file("config.json"), j.dump(2)); }
  // The safetensors header (JSON after an 8-byte length) and the data after it.
  std::pair<json, std::vector<uint8_t>> safetensors() const {
    const auto text = read_file_text(file("model.safetensors"));
    uint64_t n = 0;
    std::memcpy(&n, text.data(), 8);
    return {json::parse(text.substr(8, n)), std::vector<uint8_t>(text.begin() + 8 + n, text.end())};
  }
  void set_safetensors(const json& header, const std::vector<uint8_t>& data, std::optional<uint64_t> lie = {}) const {
    const std::string h = header.dump();
    const uint64_t n = lie.value_or(h.size());
    std::string out(8, '\0');
    std::memcpy(out.data(), &n, 8);
    out += h;
    out.append(data.begin(), data.end());
    write_file(file("model.safetensors"), std::vector<uint8_t>(out.begin(), out.end()));
  }
};

TEST(ModelFiles, SafetensorsEveryClassOfLieIsRefused) {
  {
    HfDir good;
    ASSERT_NO_THROW(load_model(good.dir));
  }
  struct ConfigCase {
    const char* what;
    std::function<void(json&)> edit;
    const char* fragment;
  };
  const ConfigCase config_cases[] = {
      {"zero heads", [](json& c) { c["num_attention_heads"] = 0; }, "num_attention_heads"},
      {"KV heads that do not divide the heads", [](json& c) { c["num_key_value_heads"] = 3; }, "num_key_value_heads"},
      {"negative layers", [](json& c) { c["num_hidden_layers"] = -2; }, "num_hidden_layers"},
      {"fewer layers than the checkpoint holds", [](json& c) { c["num_hidden_layers"] = 1; }, "num_hidden_layers"},
      {"more layers than the checkpoint holds", [](json& c) { c["num_hidden_layers"] = 3; }, "model.layers.2."},
      {"zero context", [](json& c) { c["max_position_embeddings"] = 0; }, "max_position_embeddings"},
      {"negative RMS epsilon", [](json& c) { c["rms_norm_eps"] = -1e-6; }, "rms_norm_eps"},
      {"absurd RMS epsilon", [](json& c) { c["rms_norm_eps"] = 3.0; }, "rms_norm_eps"},
      {"no feed-forward width", [](json& c) { c.erase("intermediate_size"); }, "intermediate_size"},
      {"width disagreeing with the tensors", [](json& c) { c["hidden_size"] = 64; }, "has the wrong shape"},
      {"absurd vocabulary", [](json& c) { c["vocab_size"] = int64_t(1) << 40; }, "vocab_size"},
  };
  for (const auto& c : config_cases) {
    SCOPED_TRACE(c.what);
    HfDir d;
    json cfg = d.config();
    c.edit(cfg);
    d.set_config(cfg);
    expect_refused(d.dir, c.fragment);
  }
  struct FileCase {
    const char* what;
    std::function<void(const HfDir&)> edit;
    const char* fragment;
  };
  const FileCase file_cases[] = {
      {"a header length past the end",
       [](const HfDir& d) {
         auto [h, data] = d.safetensors();
         d.set_safetensors(h, data, uint64_t(1) << 40);
       },
       "model.safetensors"},
      {"a tensor whose offsets run past the end",
       [](const HfDir& d) {
         auto [h, data] = d.safetensors();
         h["model.norm.weight"]["data_offsets"][1] = data.size() + 4096;
         d.set_safetensors(h, data);
       },
       "model.safetensors"},
      {"an unknown dtype",
       [](const HfDir& d) {
         auto [h, data] = d.safetensors();
         h["model.norm.weight"]["dtype"] = "F8_E4M3";
         d.set_safetensors(h, data);
       },
       "model.norm.weight"},
      {"a shape that disagrees with its byte count",
       [](const HfDir& d) {
         auto [h, data] = d.safetensors();
         h["model.norm.weight"]["shape"] = json::array({64});
         d.set_safetensors(h, data);
       },
       "model.norm.weight"},
      {"truncated data",
       [](const HfDir& d) {
         auto [h, data] = d.safetensors();
         data.resize(data.size() / 2);
         d.set_safetensors(h, data);
       },
       "model.safetensors"},
  };
  for (const auto& c : file_cases) {
    SCOPED_TRACE(c.what);
    HfDir d;
    c.edit(d);
    expect_refused(d.dir, c.fragment);
  }
}

}  // namespace
}  // namespace ropescale
