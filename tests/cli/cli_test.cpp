// The `ropescale` program as users and other tools run it: exit codes
// (0 ok, 1 config errors, 2 unreadable input / bad command line), JSON
// contracts, and error messages that name the file, key and value.
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ropescale/config/gguf.h"
#include "test_support.h"

namespace {

using nlohmann::json;
namespace test = ropescale::test;

struct Run {
  int code = -1;
  std::string out, err;
  json j() const { return json::parse(out); }
};

Run run(const std::string& args) {
  const std::string err_file = test::write_temp("stderr.txt", "");
  const std::string cmd = std::string(ROPESCALE_CLI) + " " + args + " 2>" + err_file;
  Run r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

std::string cfg(const std::string& name) { return test::model_config(name).string(); }

// The `ropescale.training` record a trained checkpoint carries (null when absent).
json training_record(const std::string& gguf) {
  std::ifstream f(gguf, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), {});
  const auto g = ropescale::parse_gguf(bytes, gguf);
  const auto* rec = g.find("ropescale.training");
  return rec ? json::parse(rec->value.get<std::string>()) : json(nullptr);
}

TEST(Cli, EveryRealConfigThroughEveryCommand) {
  struct Expect {
    const char* model;
    int check_exit;
    int64_t target;
    const char* method;
  };
  const Expect cases[] = {
      {"llama-3.1-8b", 0, 262144, "llama3"},
      {"llama-3.2-1b", 0, 65536, "none"},
      {"phi-3-mini-128k-instruct", 0, 65536, "none"},
      {"qwen2.5-7b-instruct-yarn", 0, 65536, "none"},
      {"qwen3-8b-yarn", 0, 262144, "yarn"},
      {"deepseek-v3", 0, 131072, "none"},
      {"gpt-oss-20b", 0, 131072, "none"},
      {"mistral-7b-v0.1", 0, 65536, "not-rope-scaling"},
      {"codellama-7b", 0, 32768, "yarn"},
      {"bloom-560m", 0, 8192, "not-rope-scaling"},
      {"mpt-7b", 0, 8192, "not-rope-scaling"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    auto inspect = run("inspect " + cfg(c.model) + " --json");
    ASSERT_EQ(inspect.code, 0) << inspect.err;
    EXPECT_EQ(inspect.j()["format"], "hf-config");
    auto human = run("inspect " + cfg(c.model));
    EXPECT_EQ(human.code, 0);
    EXPECT_NE(human.out.find("max_position"), std::string::npos);
    auto check = run("check " + cfg(c.model) + " --json");
    EXPECT_EQ(check.code, c.check_exit) << check.out;
    EXPECT_EQ(check.j()["ok"], c.check_exit == 0);
    const bool alibi = inspect.j()["alibi"].get<bool>();
    for (const char* to : {"hf", "hf-v5", "vllm", "llama.cpp"}) {
      auto ex = run("export " + cfg(c.model) + " --to " + to + " --json");
      EXPECT_EQ(ex.code, alibi ? 1 : 0) << to << ": " << ex.err;  // ALiBi: no RoPE setting to export
    }
    auto plan = run("plan " + cfg(c.model) + " --target-context " + std::to_string(c.target) + " --json");
    ASSERT_EQ(plan.code, 0) << plan.err;
    EXPECT_EQ(plan.j()["method"], c.method);
    // f32, f16/bf16, fp8, and q8_0 / q4_0 where head_dim is whole 32-value blocks (with a note where it is not).
    const auto kv = plan.j()["kv_cache"];
    ASSERT_GE(kv.size(), 3u);
    EXPECT_EQ(kv[0]["dtype"], "f32");
    EXPECT_TRUE(kv.size() == 5u || plan.j()["notes"].dump().find("q8_0 / q4_0 KV caches") != std::string::npos) << plan.out;
  }
}

TEST(Cli, FreqsJsonContract) {
  auto r = run("freqs --config " + cfg("llama-3.1-8b") + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = r.j();
  EXPECT_EQ(j["rope_type"], "llama3");
  EXPECT_EQ(j["rotary_dim"], 128);
  ASSERT_EQ(j["inv_freq"].size(), 64u);
  EXPECT_NEAR(j["inv_freq"][29].get<double>(), 2.1665707635e-03, 2.2e-12);
  EXPECT_EQ(j["attention_factor"], 1.0);
  // Override, seq-len and convention.
  auto dyn = run("freqs --config " + cfg("codellama-7b") + " --rope-scaling '{\"rope_type\":\"dynamic\",\"factor\":2}' --seq-len 32768 --json");
  ASSERT_EQ(dyn.code, 0) << dyn.err;
  EXPECT_GT(dyn.j()["effective_theta"].get<double>(), 1e6);
  auto gg = run("freqs --config " + cfg("gpt-oss-20b") + " --convention ggml --json");
  EXPECT_EQ(gg.j()["yarn"]["correction_low"], 8.0);
  auto table = run("freqs --config " + cfg("llama-3.1-8b"));
  EXPECT_EQ(table.code, 0);
  EXPECT_NE(table.out.find("divisor"), std::string::npos);
}

TEST(Cli, CheckExitCodes) {
  // 1: the config has errors; the message names key and value.
  auto bad = test::write_temp("bad-factor.json",
                              R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":512,"rope_scaling":{"rope_type":"linear","factor":-4}})");
  auto r = run("check " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("rope_scaling.factor"), std::string::npos);
  EXPECT_NE(r.out.find("-4"), std::string::npos);
  // ALiBi + RoPE scaling.
  auto alibi = run("check " + cfg("bloom-560m") + " --rope-scaling '{\"rope_type\":\"linear\",\"factor\":2}' --json");
  EXPECT_EQ(alibi.code, 1);
  EXPECT_EQ(alibi.j()["findings"][0]["rule"], "alibi-with-rope-scaling");
  // 2: unreadable.
  EXPECT_EQ(run("check /nonexistent/config.json").code, 2);
  auto notjson = test::write_temp("notjson.json", "{\"rope_scaling\": {\"factor\": NaN}}");
  auto nj = run("check " + notjson);
  EXPECT_EQ(nj.code, 2);
  EXPECT_NE(nj.err.find("notjson.json"), std::string::npos);
  EXPECT_NE(nj.err.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(run("check " + test::write_temp("empty.json", "")).code, 2);
  EXPECT_EQ(run("check " + cfg("codellama-7b") + " --rope-scaling '{oops'").code, 2);
  // Truncated GGUF.
  auto gguf = test::write_temp("trunc.gguf", std::string("GGUF\x03\0\0\0\x01\0\0\0", 12));
  auto g = run("check " + gguf);
  EXPECT_EQ(g.code, 2);
  EXPECT_NE(g.err.find("truncated"), std::string::npos);
}

TEST(Cli, ModelRulesAndDisagreeingRopeRecords) {
  // check on a config.json judges the model's shape too: KV heads must divide the heads.
  auto kv = test::write_temp("kv3.json", R"({"hidden_size":64,"num_attention_heads":8,"num_key_value_heads":3,"max_position_embeddings":512})");
  auto c = run("check " + kv + " --json");
  EXPECT_EQ(c.code, 1);
  EXPECT_EQ(c.j()["findings"][0]["rule"], "bad-model-shape");
  EXPECT_EQ(c.j()["findings"][0]["key"], "num_key_value_heads");
  // A GGUF whose ropescale record (YaRN ×4) and llama.cpp keys (YaRN ×2) disagree.
  using T = ropescale::GgufValueType;
  const std::vector<ropescale::GgufKeyValue> md = {
      {"general.architecture", T::String, T::Uint8, "llama"},
      {"llama.context_length", T::Uint32, T::Uint8, 2048},
      {"llama.embedding_length", T::Uint32, T::Uint8, 64},
      {"llama.block_count", T::Uint32, T::Uint8, 2},
      {"llama.attention.head_count", T::Uint32, T::Uint8, 4},
      {"llama.attention.head_count_kv", T::Uint32, T::Uint8, 2},
      {"llama.rope.scaling.type", T::String, T::Uint8, "yarn"},
      {"llama.rope.scaling.factor", T::Float32, T::Uint8, 2.0},
      {"llama.rope.scaling.original_context_length", T::Uint32, T::Uint8, 512},
      {"ropescale.rope_parameters", T::String, T::Uint8, R"({"rope_type":"yarn","factor":4,"original_max_position_embeddings":512})"},
  };
  const auto path = test::write_temp("two-records.gguf", ropescale::serialize_gguf(md, {}));
  auto both = run("inspect " + path);
  EXPECT_EQ(both.code, 1);
  EXPECT_NE(both.err.find("two-records.gguf"), std::string::npos) << both.err;
  EXPECT_NE(both.err.find("ropescale.rope_parameters vs llama.rope.*"), std::string::npos) << both.err;
  EXPECT_NE(both.err.find("--gguf-rope"), std::string::npos) << both.err;
  auto ours = run("inspect " + path + " --gguf-rope ropescale --json");
  ASSERT_EQ(ours.code, 0) << ours.err;
  EXPECT_EQ(ours.j()["rope_parameters"]["factor"], 4);
  auto theirs = run("inspect " + path + " --gguf-rope llama.cpp --json");
  ASSERT_EQ(theirs.code, 0) << theirs.err;
  EXPECT_EQ(theirs.j()["rope_parameters"]["factor"], 2.0);
  EXPECT_EQ(run("inspect " + path + " --gguf-rope both").code, 2);
}

TEST(Cli, ErrorsNameFileKeyAndValue) {
  auto bad = test::write_temp("bad-type.json",
                              R"({"hidden_size":64,"num_attention_heads":8,"max_position_embeddings":512,"rope_scaling":{"rope_type":"yarn","factor":4,"original_max_position_embeddings":"512"}})");
  auto r = run("freqs --config " + bad + " --json");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("bad-type.json"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("rope_scaling.original_max_position_embeddings"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"512\""), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, UsageAndHelp) {
  for (const char* cmd : {"", "inspect", "freqs", "check", "export", "plan"}) {
    auto r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd;
  }
  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("plan " + cfg("codellama-7b")).code, 2);  // --target-context missing
  EXPECT_EQ(run("plan " + cfg("codellama-7b") + " --target-context -5").code, 2);
  EXPECT_EQ(run("export " + cfg("codellama-7b") + " --to tensorrt").code, 2);
  EXPECT_EQ(run("--version").code, 0);
}

TEST(Cli, ExportText) {
  auto r = run("export " + cfg("qwen2.5-7b-instruct-yarn") + " --to llama.cpp --target-context 131072");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--rope-scaling yarn --rope-scale 4.0 --yarn-orig-ctx 32768 -c 131072"), std::string::npos) << r.out;
  auto h = run("export " + cfg("llama-3.1-8b") + " --to hf-v5 --json");
  auto data = h.j()["data"];
  EXPECT_EQ(data["rope_parameters"]["rope_type"], "llama3");
  EXPECT_EQ(data["rope_parameters"]["rope_theta"], 500000.0);
}

TEST(Cli, GgufThroughEveryCommand) {
  // A llama GGUF carrying YaRN metadata, written with the library's writer.
  using ropescale::GgufValueType;
  using T = GgufValueType;
  std::vector<ropescale::GgufKeyValue> md = {
      {"general.architecture", T::String, T::Uint8, "llama"},
      {"llama.context_length", T::Uint32, T::Uint8, 4096},
      {"llama.embedding_length", T::Uint32, T::Uint8, 512},
      {"llama.block_count", T::Uint32, T::Uint8, 4},
      {"llama.attention.head_count", T::Uint32, T::Uint8, 8},
      {"llama.attention.head_count_kv", T::Uint32, T::Uint8, 2},
      {"llama.rope.freq_base", T::Float32, T::Uint8, 10000.0},
      {"llama.rope.scaling.type", T::String, T::Uint8, "yarn"},
      {"llama.rope.scaling.factor", T::Float32, T::Uint8, 8.0},
      {"llama.rope.scaling.original_context_length", T::Uint32, T::Uint8, 512},
  };
  const auto path = test::write_temp("yarn.gguf", ropescale::serialize_gguf(md, {}));
  auto inspect = run("inspect " + path + " --json");
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_EQ(inspect.j()["format"], "gguf");
  EXPECT_EQ(inspect.j()["convention"], "ggml");
  EXPECT_EQ(inspect.j()["layout"], "interleaved");
  EXPECT_EQ(inspect.j()["trained_context"], 512);
  EXPECT_NEAR(inspect.j()["attention_factor"].get<double>(), 1.207944154, 1e-9);
  EXPECT_EQ(run("check " + path).code, 0);
  auto ex = run("export " + path + " --to llama.cpp");
  EXPECT_EQ(ex.code, 0);
  EXPECT_NE(ex.out.find("--rope-scaling yarn --rope-scale 8.0 --yarn-orig-ctx 512 -c 4096"), std::string::npos) << ex.out;
  auto hf = run("freqs --config " + path + " --convention hf --json");
  EXPECT_NEAR(hf.j()["attention_factor"].get<double>(), 1.207944154, 1e-9);
  // A truncated copy of the same file: exit 2, naming the file.
  const auto bytes = ropescale::serialize_gguf(md, {});
  const auto cut = test::write_temp("cut.gguf", std::vector<uint8_t>(bytes.begin(), bytes.begin() + bytes.size() / 2));
  auto bad = run("inspect " + cut);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("cut.gguf"), std::string::npos);
}

TEST(Cli, GenerateGreedyAndScaled) {
  const auto model = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "SKIPPED LOUDLY: " << model << " is absent";
  auto r = run("generate --model " + model.string() + " --prompt 'Once upon a time' --max-tokens 12");
  ASSERT_EQ(r.code, 0) << r.err;
  // Greedy continuation of the golden sequence (SOURCES.md).
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << r.out;
  // --timings: the same text, and on stderr the prompt's tokens and the 11 one-token passes after the first.
  auto t = run("generate --model " + model.string() + " --prompt 'Once upon a time' --max-tokens 12 --timings");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_EQ(t.out, r.out);
  EXPECT_NE(t.err.find("ropescale: prompt "), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("; decode 11 tokens in "), std::string::npos) << t.err;
  EXPECT_EQ(r.err.find("decode"), std::string::npos) << r.err;
  auto y = run("generate --model " + model.string() + " --prompt 'Once upon a time' --max-tokens 8 --ctx 4096 "
               "--rope-scaling '{\"rope_type\":\"yarn\",\"factor\":8}' --key-rotation read --temp 0.8 --seed 7");
  EXPECT_EQ(y.code, 0) << y.err;
  EXPECT_GT(y.out.size(), std::string("Once upon a time").size());
  auto bad = run("generate --model " + model.string() + " --prompt hi --rope-scaling '{\"rope_type\":\"linear\",\"factor\":-1}'");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("factor"), std::string::npos);
  EXPECT_EQ(run("generate --model /nonexistent.bin --prompt hi").code, 2);
}

TEST(Cli, Stories260K) {
  const auto path = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "SKIPPED LOUDLY: " << path << " is absent";
  auto r = run("inspect " + path.string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.j()["format"], "llama2c");
  EXPECT_EQ(r.j()["trained_context"], 512);
  auto p = run("plan " + path.string() + " --target-context 4096 --json");
  EXPECT_EQ(p.j()["method"], "yarn");
  EXPECT_EQ(p.j()["rope_scaling"]["factor"], 8.0);
}

TEST(Cli, EvalPerplexityJsonContract) {
  const auto model = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "SKIPPED LOUDLY: " << model << " is absent";
  // Pre-tokenized input: 1 200 ids of a real story text, via the model's own tokenizer.
  std::string ids_text;
  {
    auto t = run("eval ppl --model " + model.string() + " --ids /nonexistent.txt");
    EXPECT_EQ(t.code, 2);
    EXPECT_NE(t.err.find("/nonexistent.txt"), std::string::npos) << t.err;
  }
  std::ifstream in(test::shared_dir() / "data/tinystories_valid_head.txt");
  std::string text(6000, '\0');
  in.read(text.data(), text.size());
  const std::string text_file = test::write_temp("story.txt", text);
  const std::string json_file = test::write_temp("ppl.json", "");
  auto r = run("eval ppl --model " + model.string() + " --text " + text_file + " --ctx 256,512 --stride 128 "
               "--methods none,yarn:2 --methods '{\"rope_type\":\"linear\",\"factor\":2}' --bucket 64 --json " + json_file);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("perplexity by context length"), std::string::npos) << r.out;
  std::ifstream jf(json_file);
  const json j = json::parse(jf);
  EXPECT_EQ(j["model"], model.string());
  EXPECT_EQ(j["protocol"]["windows"], "sliding");
  const int64_t n = j["input"]["tokens"];
  ASSERT_EQ(j["results"].size(), 6u);  // 3 methods × 2 contexts
  for (const auto& res : j["results"]) {
    EXPECT_EQ(res["tokens"], n - 1) << "sliding windows score every token but the first, once";
    int64_t sum = 0;
    for (const auto& b : res["buckets"]) {
      EXPECT_EQ(b["end"].get<int64_t>() - b["start"].get<int64_t>(), 64);
      sum += b["tokens"].get<int64_t>();
    }
    EXPECT_EQ(sum, res["tokens"].get<int64_t>());
    EXPECT_NEAR(std::exp(res["nll"].get<double>()), res["ppl"].get<double>(), 1e-9);
  }
  EXPECT_EQ(j["results"][1]["method"], "yarn:2");
  EXPECT_EQ(j["results"][1]["rope_scaling"]["factor"], 2.0);
  EXPECT_EQ(j["results"][1]["rope_scaling"]["original_max_position_embeddings"], 512);
  EXPECT_EQ(j["results"][2]["rope_scaling"]["rope_type"], "linear");
  // Pre-tokenized ids (from `tokenize`) give the same numbers as the text.
  const auto tokens = run("tokenize --model " + model.string() + " --text " + text_file);
  ASSERT_EQ(tokens.code, 0) << tokens.err;
  EXPECT_EQ(tokens.out.rfind("1 ", 0), 0u);  // BOS first
  const std::string ids_file = test::write_temp("story_ids.txt", tokens.out);
  const auto a = run("eval ppl --model " + model.string() + " --text " + text_file + " --ctx 256 --methods none --json -");
  const auto b = run("eval ppl --model " + model.string() + " --ids " + ids_file + " --ctx 256 --methods none --json -");
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_EQ(a.j()["protocol"]["windows"], "non-overlapping");
  EXPECT_EQ(a.j()["input"]["tokens"], n);
  EXPECT_EQ(b.j()["input"]["tokens"], n);
  EXPECT_EQ(a.j()["results"][0]["nll"], b.j()["results"][0]["nll"]);
  EXPECT_EQ(a.j()["results"][0]["tokens"], (n / 256) * 255);
}

TEST(Cli, EvalRejectsBadInput) {
  const auto model = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "SKIPPED LOUDLY: " << model << " is absent";
  const std::string m = " --model " + model.string();
  const std::string ids = test::write_temp("ids.txt", "1 403 407 261 378 12 99999 5");
  auto r = run("eval ppl" + m + " --ids " + ids + " --ctx 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("ids.txt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("99999"), std::string::npos) << r.err;
  const std::string good = test::write_temp("good_ids.txt", "1 403 407 261 378\n12 99 5 7 8");
  EXPECT_EQ(run("eval ppl" + m + " --ids " + good + " --ctx 4 --methods none --quiet").code, 0);
  r = run("eval ppl" + m + " --ids " + good + " --ctx 64");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("fewer than one window"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --ids " + good + " --ctx 4 --methods yarn:zero");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("yarn:zero"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --ids " + good + " --ctx 4 --methods '{\"rope_type\":\"yarn\",\"factor\":-3}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("factor"), std::string::npos) << r.err;
  EXPECT_EQ(run("eval ppl" + m + " --ids " + good + " --ctx 4 --stride 4").code, 2);
  EXPECT_EQ(run("eval ppl" + m + " --ctx 4").code, 2);  // no input
  r = run("eval passkey" + m + " --lengths 20");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("shorter than the prompt"), std::string::npos) << r.err;
  EXPECT_EQ(run("eval passkey" + m + " --lengths 200 --depths 0.5,2").code, 2);
  // A dead endpoint: exit 2, naming the URL (port 9 on loopback: nothing listens there).
  r = run("eval ppl" + m + " --ids " + good + " --ctx 4 --endpoint http://127.0.0.1:9");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--endpoint"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("http://127.0.0.1:9/v1/models: cannot connect"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --ids " + good + " --ctx 4 --endpoint ftp://127.0.0.1:9");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("not an http:// URL"), std::string::npos) << r.err;
}

TEST(Cli, EvalPasskeyJson) {
  const auto model = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "SKIPPED LOUDLY: " << model << " is absent";
  auto r = run("eval passkey --model " + model.string() + " --lengths 200,400 --depths 0,1 --trials 2 --methods none,yarn:2 "
               "--alternatives 4 --json -");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = r.j();
  EXPECT_EQ(j["passkey"]["trials"].size(), 2u * 2 * 2 * 2);
  EXPECT_EQ(j["passkey"]["cells"].size(), 2u * 2 * 2);
  EXPECT_FALSE(j.contains("results"));
  for (const auto& t : j["passkey"]["trials"]) {
    EXPECT_GE(t["rank"].get<int>(), 1);
    EXPECT_LE(t["rank"].get<int>(), 5);
    EXPECT_EQ(t["key"].get<std::string>().size(), 5u);
  }
  // Every method sees the same keys.
  EXPECT_EQ(j["passkey"]["trials"][0]["key"], j["passkey"]["trials"][8]["key"]);
}

TEST(Cli, TrainAndFinetune) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "And God said, Let there be light: and there was light. ";
  const std::string data = test::write_temp("train.txt", text);
  const std::string out = test::write_temp("tiny.gguf", "");
  const std::string csv = test::write_temp("tiny.csv", "");
  auto r = run("train --text " + data + " --out " + out + " --ctx 32 --steps 6 --batch 2 --dim 16 --layers 1 --heads 2 "
               "--kv-heads 1 --hidden 32 --warmup 2 --eval-every 3 --valid 2 --log " + csv);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("0.01 M parameters"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step      6/6"), std::string::npos) << r.err;
  std::ifstream log(csv);
  std::string header, line;
  std::getline(log, header);
  EXPECT_EQ(header, "step,lr,loss,grad_norm,valid_loss,tokens_per_second,elapsed_s");
  int rows = 0;
  while (std::getline(log, line)) ++rows;
  EXPECT_EQ(rows, 6);
  auto inspect = run("inspect " + out + " --json");
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_EQ(inspect.j()["trained_context"], 32);
  // Fine-tune at 2× with YaRN: the new checkpoint carries the scaling and the record of how it was made.
  const std::string ft = test::write_temp("tiny-ft.gguf", "");
  r = run("finetune --model " + out + " --rope-scaling '{\"rope_type\":\"yarn\",\"factor\":2}' --ctx 64 --steps 2 "
          "--text " + data + " --out " + ft + " --valid 2");
  ASSERT_EQ(r.code, 0) << r.err;
  inspect = run("inspect " + ft + " --json");
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_EQ(inspect.j()["rope_parameters"]["rope_type"], "yarn");
  EXPECT_EQ(inspect.j()["trained_context"], 32);
  const json training = training_record(ft);
  ASSERT_FALSE(training.is_null());
  EXPECT_EQ(training["ctx"], 64);
  EXPECT_EQ(training["rope_scaling"]["factor"], 2);
  EXPECT_EQ(training["finetuned_from"], out);
  // A curriculum stage: train on from the tiny model's weights at a longer context.
  const std::string stage2 = test::write_temp("tiny-stage2.gguf", "");
  r = run("train --init " + out + " --text " + data + " --out " + stage2 + " --ctx 48 --steps 2 --batch 2 --dim 64 --valid 2");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("1 layers, dim 16"), std::string::npos) << r.err;  // the shape is the init model's
  inspect = run("inspect " + stage2 + " --json");
  ASSERT_EQ(inspect.code, 0) << inspect.err;
  EXPECT_EQ(inspect.j()["trained_context"], 48);
  const json stage2_training = training_record(stage2);
  ASSERT_FALSE(stage2_training.is_null());
  EXPECT_EQ(stage2_training["initialized_from"], std::filesystem::path(out).filename().string());
  r = run("train --init " + ft + " --text " + data + " --out " + stage2 + " --steps 1");  // a scaled model: finetune's job
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--init"), std::string::npos) << r.err;
  // Bad input: a missing text, impossible shapes, a bad scaling.
  r = run("train --text /nonexistent.txt --out " + out + " --steps 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent.txt"), std::string::npos) << r.err;
  r = run("train --text " + data + " --out " + out + " --dim 30 --heads 4 --steps 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("heads"), std::string::npos) << r.err;
  r = run("finetune --model " + out + " --rope-scaling '{\"rope_type\":\"yarn\",\"factor\":0}' --text " + data + " --out " + ft);
  EXPECT_EQ(r.code, 1);
}

TEST(Cli, TheCommittedDefaultModel) {
  const auto path = test::source_dir() / "models/ropescale-kjv-256.gguf";
  ASSERT_TRUE(std::filesystem::exists(path)) << path;
  EXPECT_LE(std::filesystem::file_size(path), 8u << 20);
  const auto r = run("inspect " + path.string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.j()["head_dim"], 32);
  EXPECT_EQ(r.j()["trained_context"], 256);
  EXPECT_EQ(r.j()["vocab_size"], 259);
  // inspect says how each engine tokenizes it: byte for byte, the same ids everywhere.
  const auto tok = r.j()["tokenizer"];
  EXPECT_EQ(tok["kind"], "byte-level");
  ASSERT_EQ(tok["engines"].size(), 2u) << tok.dump();
  for (const auto& e : tok["engines"]) EXPECT_TRUE(e["exact"].get<bool>()) << e.dump();
  EXPECT_NE(run("inspect " + path.string()).out.find("llama.cpp           same ids"), std::string::npos);
  // It writes Bible-like text, byte by byte.
  const auto g = run("generate --model " + path.string() + " --prompt 'And God said' --max-tokens 60");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_GT(g.out.size(), 40u);
  EXPECT_NE(g.out.find(' ', 13), std::string::npos) << g.out;
  // Within its trained context it finds the pass key: the true key outranks 9 random ones (chance
  // 0.5), and greedy decoding writes it out exactly in most prompts (the model of stage 3 alone: 0/6).
  const auto p = run("eval passkey --model " + path.string() +
                     " --methods none --lengths 256 --depths 0,0.5,1 --trials 2 --threads 1 --quiet --json -");
  ASSERT_EQ(p.code, 0) << p.err;
  double rank_score = 0;
  int exact = 0;
  const auto cells = p.j()["passkey"]["cells"];
  ASSERT_EQ(cells.size(), 3u) << p.out;
  for (const auto& cell : cells) {
    rank_score += cell["rank_score"].get<double>() / 3;
    exact += cell["exact"].get<int>();
  }
  EXPECT_GE(rank_score, 0.9) << p.out;
  EXPECT_GE(exact, 4) << p.out;
}

// Golden sets: record on the default model, compare the same model (exit 0), another model (exit 1),
// a text that changed since (exit 2), a file that is not a golden set (exit 2). And `eval tasks`.
TEST(Cli, GoldenRecordAndCompare) {
  const auto model = (test::source_dir() / "models/ropescale-kjv-256.gguf").string();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "And God said, Let there be light: and there was light. And God saw the light. ";
  const std::string data = test::write_temp("golden-text.txt", text);
  const std::string golden = test::write_temp("golden.json", "");
  const std::string grid = " --ctx 256,512 --lengths 256 --depths 0,1 --trials 1 --methods none,yarn:2 --tasks kv "
                           "--task-wording compact --threads 1";
  auto r = run("golden record --model " + model + " --text " + data + grid + " --quiet --out " + golden);
  ASSERT_EQ(r.code, 0) << r.err;
  const json doc = json::parse(std::ifstream(golden));
  EXPECT_EQ(doc["ropescale_golden"], 1);
  EXPECT_EQ(doc["options"]["text_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(doc["results_json"]["results"].size(), 4u);
  EXPECT_TRUE(doc["results_json"].contains("tasks"));
  EXPECT_TRUE(doc["results_json"].contains("effective_context"));
  // The same model: every gate passes.
  r = run("golden compare " + golden + " --json -");
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_TRUE(r.j()["pass"].get<bool>());
  EXPECT_GE(r.j()["checks"].size(), 4u + 4u + 4u);  // ppl, passkey exact + NLL, kv score + NLL
  // Another model (a few training steps from scratch): the gates fail, exit 1, the table says which.
  const std::string other = test::write_temp("golden-other.gguf", "");
  ASSERT_EQ(run("train --text " + data + " --out " + other + " --ctx 64 --steps 2 --batch 1 --dim 16 --layers 1 "
                "--heads 2 --kv-heads 1 --hidden 32 --valid 1").code, 0);
  r = run("golden compare " + golden + " --model " + other + " --report " + test::write_temp("cmp.html", ""));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("FAIL: perplexity"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("FAIL"), std::string::npos) << r.err;
  // Looser gates let it through only if they are loose enough: not here.
  EXPECT_EQ(run("golden compare " + golden + " --model " + other + " --max-short-ppl-rise 0.5 --quiet").code, 1);
  // The text changed since: refused before any work.
  test::write_temp("golden-text.txt", text + "Amen.");
  r = run("golden compare " + golden);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("changed since the golden set was recorded"), std::string::npos) << r.err;
  r = run("golden compare " + data);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is not a golden set"), std::string::npos) << r.err;
  // eval tasks: every task of the compact wording, its JSON contract.
  r = run("eval tasks --model " + model + " --lengths 256 --depths 0.5 --trials 1 --methods none "
          "--task-wording compact --threads 1 --quiet --json -");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = r.j();
  EXPECT_EQ(j["tasks"]["options"]["tasks"].size(), 6u);
  EXPECT_EQ(j["tasks"]["trials"].size(), 6u);
  for (const auto& t : j["tasks"]["trials"]) {
    EXPECT_GE(t["score"].get<double>(), 0.0);
    EXPECT_GT(t["needle_nll"].get<double>(), 0.0);
  }
  EXPECT_EQ(run("eval tasks --model " + model + " --lengths 256 --tasks niah_single,nope").code, 2);
  r = run("eval tasks --model " + model + " --lengths 256 --tasks niah_single");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("compact wording is shorter"), std::string::npos) << r.err;
}

// calibrate: YaRN's ramp and attention factor searched on text, written for every engine; the budget
// holds; held-out text must be other text; what is not built is refused.
TEST(Cli, CalibrateYarn) {
  const auto model = (test::source_dir() / "models/ropescale-kjv-256.gguf").string();
  std::string text, other;
  for (int i = 0; i < 30; ++i) text += "And God said, Let there be light: and there was light. ";
  for (int i = 0; i < 30; ++i) other += "In the beginning God created the heaven and the earth. ";
  const std::string cal = test::write_temp("cal.txt", text), held = test::write_temp("held.txt", other);
  const std::string out = test::write_temp("cal.json", "");
  auto r = run("calibrate --model " + model + " --text " + cal + " --target-context 512 --windows 1 --max-evals 12 "
               "--eval-text " + held + " --eval-windows 1 --threads 1 --out " + out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = r.j();
  EXPECT_EQ(j["search"]["evals"], 12);
  EXPECT_TRUE(j["search"]["stopped_by_budget"].get<bool>());
  EXPECT_EQ(j["search"]["history"].size(), 12u);
  EXPECT_DOUBLE_EQ(j["search"]["yarn_default"]["beta_fast"].get<double>(), 32.0);
  const json rope = j["rope_scaling"];
  EXPECT_EQ(rope["rope_type"], "yarn");
  EXPECT_DOUBLE_EQ(rope["factor"].get<double>(), 2.0);
  EXPECT_GT(rope["beta_fast"].get<double>(), rope["beta_slow"].get<double>());
  EXPECT_LE(j["search"]["best"]["fitness_nll"].get<double>(), j["search"]["yarn_default"]["fitness_nll"].get<double>());
  for (const char* e : {"hf", "vllm", "llama.cpp"}) EXPECT_TRUE(j["exports"].contains(e)) << e;
  EXPECT_EQ(j["held_out"]["results"].size(), 4u);  // none, NTK, YaRN, calibrated
  EXPECT_EQ(json::parse(std::ifstream(out))["rope_scaling"], rope);
  // The setting it wrote is one every command takes.
  EXPECT_EQ(run("check " + model + " --rope-scaling '" + rope.dump() + "'").code, 0);
  r = run("calibrate --model " + model + " --text " + cal + " --target-context 512 --eval-text " + cal);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is the calibration text"), std::string::npos) << r.err;
  EXPECT_EQ(run("calibrate --model " + model + " --text " + cal + " --target-context 256").code, 2);
  r = run("calibrate --model " + model + " --text " + cal + " --target-context 512 --method pi");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--method"), std::string::npos) << r.err;
  r = run("calibrate --model " + model + " --text " + cal + " --target-context 8192");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("fewer than 4 windows"), std::string::npos) << r.err;
}

// calibrate --method longrope: per-pair factors, monotone and within the bounds, short factors after;
// the same seed gives the same result, a resumed search the uninterrupted one; the file it writes is a
// --rope-scaling argument for every command; a checkpoint of another search is refused.
TEST(Cli, CalibrateLongRope) {
  const auto model = (test::source_dir() / "models/ropescale-kjv-256.gguf").string();
  std::string text;
  for (int i = 0; i < 30; ++i) text += "And God said, Let there be light: and there was light. ";
  const std::string cal = test::write_temp("lr-cal.txt", text), out = test::write_temp("lr.json", "");
  const std::string ck = test::write_temp("lr-ck.json", ""), gguf = test::write_temp("lr.gguf", "");
  const std::string small = " --population 6 --mutations 3 --crossovers 3 --parents 3 --short-iterations 1 --windows 1 "
                            "--select-windows 2 --threads 1 --method longrope --model " + model + " --text " + cal + " --target-context 512";
  auto r = run("calibrate" + small + " --iterations 2 --checkpoint " + ck + " --out " + out + " --out-gguf " + gguf + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = r.j();
  const json rope = j["rope_scaling"];
  EXPECT_EQ(rope["rope_type"], "longrope");
  const auto lf = rope["long_factor"].get<std::vector<double>>(), sf = rope["short_factor"].get<std::vector<double>>();
  ASSERT_EQ(lf.size(), 16u);
  ASSERT_EQ(sf.size(), 16u);
  for (size_t i = 0; i < lf.size(); ++i) {
    EXPECT_GE(lf[i], 1.0);
    EXPECT_LE(lf[i], 4.0);  // 2 × the factor 2
    if (i) {
      EXPECT_GE(lf[i], lf[i - 1]);
    }
  }
  // Each regime's attention factor: the long one searched, the short one searched from 1 at the trained length;
  // the vLLM export carries both (vLLM ignores attention_factor for longrope).
  EXPECT_EQ(rope["long_mscale"], rope["attention_factor"]);
  EXPECT_GE(rope["short_mscale"].get<double>(), 1.0);
  EXPECT_NE(j["exports"]["vllm"]["text"].get<std::string>().find("short_mscale"), std::string::npos);
  EXPECT_EQ(j["search"]["evals"], 6 + 2 * 6);
  EXPECT_EQ(j["search"]["generations"], 2);
  // The final choice: the last generation's 3 parents ranked on 2 other windows, the lowest NLL there chosen.
  const json sel = j["search"]["selection"];
  ASSERT_EQ(sel["nll"].size(), 3u);
  const auto sel_nll = sel["nll"].get<std::vector<double>>();
  const int rank = sel["chosen_rank"].get<int>();
  ASSERT_GE(rank, 1);
  ASSERT_LE(rank, 3);
  EXPECT_DOUBLE_EQ(sel["chosen_nll"].get<double>(), *std::min_element(sel_nll.begin(), sel_nll.end()));
  EXPECT_DOUBLE_EQ(sel["chosen_nll"].get<double>(), sel_nll[size_t(rank - 1)]);
  EXPECT_EQ(j["search"]["best"]["factors"], rope["long_factor"]);
  EXPECT_EQ(j["calibration"]["select_windows"], 2);
  EXPECT_EQ(j["gguf"]["file"], gguf);
  // Progressive extension: the ×2 result, as is and rescaled to ×4, joins the seeds of a search at 1 024.
  std::string wide = small;
  wide.replace(wide.find("--population 6"), 14, "--population 16");
  r = run("calibrate" + wide + " --iterations 0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t seeds = r.j()["search"]["seeds"].get<size_t>();
  std::string small4 = std::string(wide).replace(wide.find("512"), 3, "1024");
  small4.replace(small4.find("--select-windows 2"), 18, "--select-windows 0");  // the text holds 1 window of 1 024
  r = run("calibrate" + small4 + " --iterations 0 --from " + out + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.j()["search"]["seeds"].get<size_t>(), seeds + 2);
  EXPECT_EQ(r.j()["search"]["from"], out);
  r = run("calibrate" + small4 + " --iterations 0 --from " + cal);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(cal), std::string::npos) << r.err;
  // The needle fitness: LongRoPE2's needle perplexity of passkeys hidden in the calibration text.
  std::string unselected = small;
  unselected.replace(unselected.find("--select-windows 2"), 18, "--select-windows 0");
  r = run("calibrate" + unselected + " --iterations 0 --short-mscale long --json");  // HF's one attention factor
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.j()["rope_scaling"].contains("short_mscale"));
  EXPECT_TRUE(r.j()["search"]["selection"].is_null());  // no selection: the search's best, never worse than PI
  EXPECT_LE(r.j()["search"]["best"]["fitness_nll"].get<double>(), r.j()["search"]["seed_fitness_nll"][0].get<double>());
  const double ppl_best = r.j()["search"]["best"]["fitness_nll"].get<double>();
  EXPECT_EQ(run("calibrate" + small + " --iterations 0 --short-mscale both").code, 2);
  r = run("calibrate" + small + " --iterations 0 --fitness needle --needles 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.j()["calibration"]["fitness"].get<std::string>().find("needle NLL of 2"), std::string::npos);
  const double needle_best = r.j()["search"]["best"]["fitness_nll"].get<double>();
  EXPECT_GT(needle_best, 0.0);
  // Both: the windows' NLL plus the needles'. The same seeds are scored (no generations), so its best
  // exceeds the needle-only best by at least the smallest windows' NLL (the unselected run's best).
  r = run("calibrate" + small + " --iterations 0 --fitness ppl+needle --needles 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.j()["calibration"]["fitness"].get<std::string>().find("window(s) + needle NLL of 2"), std::string::npos);
  EXPECT_GE(r.j()["search"]["best"]["fitness_nll"].get<double>(), needle_best + ppl_best - 1e-9);
  // One generation, then resumed to two: the same result as the run above.
  const std::string ck2 = test::write_temp("lr-ck2.json", "");
  ASSERT_EQ(run("calibrate" + small + " --iterations 1 --checkpoint " + ck2 + " --json").code, 0);
  r = run("calibrate" + small + " --iterations 2 --checkpoint " + ck2 + " --resume --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.j()["rope_scaling"], rope);
  EXPECT_EQ(r.j()["search"]["evals"], j["search"]["evals"]);
  // Another seed is another search: its checkpoint is refused, naming what differs.
  r = run("calibrate" + small + " --iterations 2 --seed 9 --checkpoint " + ck + " --resume");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("seed"), std::string::npos) << r.err;
  // The calibration file is a --rope-scaling argument; llama.cpp's keys in the GGUF carry the long factors.
  EXPECT_EQ(run("check " + model + " --rope-scaling " + out).code, 0);
  r = run("check " + model + " --rope-scaling /nonexistent/lr.json");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/lr.json"), std::string::npos) << r.err;
  r = run("--gguf-rope llama.cpp freqs --json --config " + gguf + " --seq-len 512");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(r.j()["attention_factor"].get<double>(), rope["attention_factor"].get<double>(), 1e-6);
}

TEST(Cli, ConvertToLlama2c) {
  const auto model = test::shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) GTEST_SKIP() << "SKIPPED LOUDLY: " << model << " is absent";
  // stories260K → HF layout (Q/K rows permuted) → llama2.c v1 (rows back in Meta order): the golden greedy text.
  const auto dir = test::temp_dir() / "hf";
  ASSERT_EQ(run("convert --model " + model.string() + " --to safetensors --out " + dir.string()).code, 0);
  const std::string bin = (dir.parent_path() / "v1" / "stories.bin").string();
  std::filesystem::create_directories(dir.parent_path() / "v1");
  auto r = run("convert --model " + dir.string() + " --to llama2c --out " + bin);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.parent_path() / "v1" / "tok512.bin"));
  auto g = run("generate --model " + bin + " --prompt 'Once upon a time' --max-tokens 12");
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << g.out;
  // A scaled setting has no place in the format: refused, not silently dropped.
  r = run("convert --model " + model.string() + " --to llama2c --out " + bin + " --rope-scaling '{\"rope_type\":\"yarn\",\"factor\":4}'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot carry"), std::string::npos) << r.err;
}

}  // namespace

TEST(Cli, KvCachePolicyFlags) {
  const auto stories = test::shared_dir() / "models/stories260K/stories260K.bin";
  const auto text = test::shared_dir() / "data/tinystories_valid_head.txt";
  if (!std::filesystem::exists(stories) || !std::filesystem::exists(text)) GTEST_SKIP() << "SKIPPED LOUDLY: ../shared is absent";
  const std::string m = " --model " + stories.string() + " --text " + text.string() + " --ctx 64 --tokens 200 --methods none --quiet";
  auto r = run("eval ppl" + m + " --kv-cache q8_0");  // head_dim 8: not a whole q8_0 block
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("q8_0 needs head_dim a multiple of 32 (this model's is 8)"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --kv-cache q5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'q5' is not one of f32, f16, q8_0, q4_0"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --kv-sinks 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-sinks: 4 needs --kv-window"), std::string::npos) << r.err;
  // The default model (head_dim 32): a quantized cache with sinks + window, recorded in the JSON protocol.
  const auto kjv = test::source_dir() / "models/ropescale-kjv-256.gguf";
  r = run("eval ppl --model " + kjv.string() + " --text " + text.string() +
          " --ctx 256,1024 --tokens 2048 --methods none --kv-cache q8_0 --kv-window 128 --kv-sinks 4 --quiet --json -");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto p = r.j()["protocol"];
  EXPECT_EQ(p["kv_cache"], "q8_0");
  EXPECT_EQ(p["kv_window"], 128);
  EXPECT_EQ(p["kv_sinks"], 4);
  EXPECT_EQ(p["chunk"], 32);  // capped at W / 4
  const auto results = r.j()["results"];  // a copy: the parsed document is a temporary
  ASSERT_EQ(results.size(), 2u);
  for (const auto& x : results) EXPECT_TRUE(x["ppl"].is_number()) << x.dump();
  // An absurd window is refused by name, not attempted.
  r = run("eval ppl --model " + kjv.string() + " --text " + text.string() + " --ctx 256 --tokens 512 --methods none --kv-window 100000000000 --quiet");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("KV cache of 100000000000 tokens exceeds 2^30 positions"), std::string::npos) << r.err;
  // Self-Extend: flags checked, recorded in the protocol.
  r = run("eval ppl" + m + " --self-extend-group 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--self-extend-group: 4 needs --self-extend-window"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --self-extend-group 4 --self-extend-window 16 --kv-window 32");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("does not combine with --kv-window"), std::string::npos) << r.err;
  r = run("eval ppl --model " + kjv.string() + " --text " + text.string() +
          " --ctx 512 --tokens 1024 --methods none --self-extend-group 4 --self-extend-window 64 --quiet --json -");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.j()["protocol"]["self_extend"]["group"], 4);
  EXPECT_EQ(r.j()["protocol"]["self_extend"]["window"], 64);
  // bench model: every cache type in one run, each row's KV bytes as the session allocated them.
  r = run("bench model --model " + kjv.string() + " --ctx 64 --threads 1 --decode-tokens 2 --kv-cache f32,q8_0,q4_0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rows = r.j()["results"];
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1]["kv_cache"], "q8_0");
  EXPECT_EQ(rows[0]["kv_cache_bytes"].get<double>() * 34 / 128, rows[1]["kv_cache_bytes"].get<double>());
  EXPECT_EQ(rows[0]["kv_cache_bytes"].get<double>() * 18 / 128, rows[2]["kv_cache_bytes"].get<double>());
  // --simd: an unknown target is refused with the ones this build runs here, best first; the same bench
  // on the last of them (the non-SIMD fallback: scalar or emu128, as the build chose) names it in its output.
  r = run("--simd avx9000 bench model --model " + kjv.string() + " --ctx 64");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'avx9000' is not a SIMD target"), std::string::npos) << r.err;
  const auto list_at = r.err.find("available: "), list_end = r.err.find(')', list_at);
  ASSERT_NE(list_at, std::string::npos) << r.err;
  const std::string available = r.err.substr(list_at, list_end - list_at);
  const std::string fallback = available.substr(available.rfind(' ') + 1);
  ASSERT_TRUE(fallback == "scalar" || fallback == "emu128") << r.err;
  r = run("--simd " + fallback + " bench model --model " + kjv.string() + " --ctx 64 --threads 1 --decode-tokens 2 --kv-cache q8_0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::string named = r.j()["simd_target"];
  for (char& c : named) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_EQ(named, fallback);
  r = run("bench model --model " + kjv.string() + " --ctx 64 --threads 1 --decode-tokens 2 --kv-cache q8_0 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.j()["simd_target"], fallback == "scalar" ? "SCALAR" : "EMU128");
}

// H2O eviction and the comparison of KV policies in one run: pairs labelled "method · policy", the KV
// bytes each policy's sessions allocate (ggml's q8_0: 34 bytes per 32 values), bad policies refused by name.
TEST(Cli, KvPoliciesInOneRunAndEviction) {
  const auto text = test::shared_dir() / "data/tinystories_valid_head.txt";
  const auto kjv = test::source_dir() / "models/ropescale-kjv-256.gguf";
  if (!std::filesystem::exists(text)) GTEST_SKIP() << "SKIPPED LOUDLY: ../shared is absent";
  const std::string m = " --model " + kjv.string() + " --text " + text.string() + " --tokens 1024 --methods yarn:2 --quiet";
  auto r = run("eval ppl" + m + " --ctx 512,1024 --json - --kv-policy f32 q8_0,kv-budget-tokens=128 kv-window=128,kv-sinks=4");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto results = r.j()["results"];
  ASSERT_EQ(results.size(), 6u);  // 3 policies × 2 lengths
  std::set<std::string> labels;
  for (const auto& x : results) {
    labels.insert(x["method"].get<std::string>());
    EXPECT_TRUE(x["ppl"].is_number()) << x.dump();
  }
  EXPECT_EQ(labels, (std::set<std::string>{"yarn:2 · f32", "yarn:2 · q8_0, H2O budget 128", "yarn:2 · f32, sinks 4 + window 128"}));
  const auto memory = r.j()["kv_memory"];
  ASSERT_EQ(memory.size(), 6u);
  const int64_t per_token_f32 = 4 /*layers*/ * 2 /*K, V*/ * 2 /*kv heads*/ * 32 /*head_dim*/ * 4;
  for (const auto& x : memory) {
    const std::string policy = x["policy"];
    const int64_t tokens = x["tokens"], rows = x["cached_tokens"], bytes = x["bytes"];
    if (policy == "f32") {
      EXPECT_EQ(bytes, tokens * per_token_f32);
    } else if (policy == "q8_0, H2O budget 128") {
      EXPECT_EQ(bytes, 128 * (4 * 2 * 2) * 34) << "q8_0: 34 bytes per 32 values (one block per head row)";
    } else if (policy == "f32, sinks 4 + window 128") {
      EXPECT_EQ(rows, 132);
    }
  }
  // Bad policies: an unknown flag, a combination the flags refuse, a bad pattern — each named, exit 2.
  r = run("eval ppl" + m + " --ctx 256 --kv-policy kv-bogus=3");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-policy: 'kv-bogus=3'"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --ctx 256 --kv-policy kv-budget-tokens=64,kv-window=32");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-budget-tokens: does not combine with --kv-window"), std::string::npos) << r.err;
  r = run("eval ppl" + m + " --ctx 256 --kv-protect 'Genesis'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-protect: 'Genesis' needs --kv-budget-tokens"), std::string::npos) << r.err;
  r = run("generate --model " + kjv.string() + " --prompt 'In the beginning' --max-tokens 4 --kv-budget-tokens 64 --kv-protect '([a'");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--kv-protect: protected-span pattern '([a' does not compile"), std::string::npos) << r.err;
  // generate streams past the budget with a protected span.
  r = run("generate --model " + kjv.string() + " --prompt 'In the beginning God created the heaven and the earth.' "
          "--max-tokens 300 --kv-budget-tokens 64 --kv-protect 'God' --rope-scaling '{\"rope_type\":\"yarn\",\"factor\":2}'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GT(r.out.size(), 300u) << r.out;
}
