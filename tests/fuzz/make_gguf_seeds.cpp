// Writes small valid GGUF files (yarn, longrope tensors, rope_freqs) as the
// GGUF fuzzer's seed corpus. Usage: make_gguf_seeds DIR
#include <cstring>
#include <fstream>
#include <string>

#include "ropescale/config/gguf.h"
#include "ropescale/model/gguf_model.h"
#include "tiny_model.h"

using namespace ropescale;
using nlohmann::json;

static GgufTensorData f32(const std::string& name, std::vector<float> v) {
  GgufTensorData t{name, {v.size()}, 0, std::vector<uint8_t>(v.size() * 4)};
  std::memcpy(t.data.data(), v.data(), t.data.size());
  return t;
}

static void write(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  using T = GgufValueType;
  std::vector<GgufKeyValue> base = {
      {"general.architecture", T::String, T::Uint8, "llama"},
      {"llama.context_length", T::Uint32, T::Uint8, 4096},
      {"llama.embedding_length", T::Uint32, T::Uint8, 64},
      {"llama.attention.head_count", T::Uint32, T::Uint8, 8},
      {"llama.attention.head_count_kv", T::Uint32, T::Uint8, 4},
      {"llama.rope.freq_base", T::Float32, T::Uint8, 10000.0},
  };
  auto yarn = base;
  yarn.push_back({"llama.rope.scaling.type", T::String, T::Uint8, "yarn"});
  yarn.push_back({"llama.rope.scaling.factor", T::Float32, T::Uint8, 8.0});
  yarn.push_back({"llama.rope.scaling.original_context_length", T::Uint32, T::Uint8, 512});
  yarn.push_back({"tokenizer.ggml.tokens", T::Array, T::String, json::array({"a", "b"})});
  write(dir + "/yarn.gguf", serialize_gguf(yarn, {f32("token_embd.weight", std::vector<float>(128, 1.f))}));
  write(dir + "/longrope.gguf", serialize_gguf(base, {f32("rope_factors_long.weight", {1, 2, 3, 4}),
                                                      f32("rope_factors_short.weight", {1, 1, 1, 1})}));
  write(dir + "/rope_freqs.gguf", serialize_gguf(base, {f32("rope_freqs.weight", {1, 1, 2, 8})}));
  // Whole models for the loader fuzzer: 1 layer, width 8, 2/1 heads, 16 tokens.
  const LlamaModel tiny = test::tiny_llama(8, 8, 1, 2, 1, 16, 32);
  std::vector<std::string> pieces{"<unk>", "<s>", "</s>"};
  for (int i = 3; i < 16; ++i) pieces.push_back(std::string(1, char('a' + i)));
  const auto tok = Llama2cTokenizer::from_pieces(pieces, std::vector<float>(16, 0.f));
  write(dir + "/model-yarn.gguf", serialize_gguf_model(tiny, tok, WeightType::F32, json::parse(R"({"rope_type":"yarn","factor":4})")));
  write(dir + "/model.bin", serialize_llama2c_model(tiny));
  return 0;
}
