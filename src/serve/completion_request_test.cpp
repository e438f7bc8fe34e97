#include "ropescale/serve/completion_request.h"

#include <gtest/gtest.h>

namespace ropescale {
namespace {

ApiError error_of(const std::string& body, RequestLimits limits = {}) {
  try {
    parse_completion_request(body, limits);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << body;
  return ApiError(0, "");
}

TEST(CompletionRequest, ReadsTheOpenAiFieldsAndTheRopeExtension) {
  const auto r = parse_completion_request(
      R"({"model":"m","prompt":"Hello","max_tokens":7,"temperature":0,"top_p":0.9,"seed":3,"stop":["\n","END"],
          "stream":true,"echo":true,"logprobs":2,"user":"ignored","rope_scaling":{"rope_type":"yarn","factor":4}})",
      {});
  EXPECT_EQ(*r.prompt, "Hello");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(*r.seed, 3u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.stream && r.echo);
  EXPECT_EQ(*r.logprobs, 2);
  EXPECT_EQ(r.rope_scaling["factor"], 4);
  const auto ids = parse_completion_request(R"({"prompt":[1,72,105],"stop":"x","rope_policy":"auto"})", {});
  EXPECT_FALSE(ids.prompt);
  EXPECT_EQ(ids.prompt_ids, (std::vector<int>{1, 72, 105}));
  EXPECT_EQ(ids.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(ids.rope_policy, "auto");
  EXPECT_EQ(ids.max_tokens, 16);  // OpenAI's defaults
  EXPECT_EQ(ids.temperature, 1.0);
  EXPECT_EQ(*parse_completion_request(R"({"prompt":["one"]})", {}).prompt, "one");  // a batch of one
}

TEST(CompletionRequest, BadBodiesNameTheParameter) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"prompt":)", ""},
      {R"([1,2])", ""},
      {R"({"max_tokens":3})", "prompt"},
      {R"({"prompt":""})", "prompt"},
      {R"({"prompt":[]})", "prompt"},
      {R"({"prompt":["a","b"]})", "prompt"},
      {R"({"prompt":[1,-2]})", "prompt[1]"},
      {R"({"prompt":[1,2.5]})", "prompt[1]"},
      {R"({"prompt":{"a":1}})", "prompt"},
      {R"({"prompt":"x","max_tokens":-1})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":1e12})", "max_tokens"},
      {R"({"prompt":"x","max_tokens":"10"})", "max_tokens"},
      {R"({"prompt":"x","temperature":-0.5})", "temperature"},
      {R"({"prompt":"x","temperature":"hot"})", "temperature"},
      {R"({"prompt":"x","top_p":0})", "top_p"},
      {R"({"prompt":"x","logprobs":99})", "logprobs"},
      {R"({"prompt":"x","stream":"yes"})", "stream"},
      {R"({"prompt":"x","stop":[1]})", "stop"},
      {R"({"prompt":"x","stop":[""]})", "stop"},
      {R"({"prompt":"x","stop":["a","b","c","d","e"]})", "stop"},
      {R"({"prompt":"x","n":2})", "n"},
      {R"({"prompt":"x","best_of":3})", "best_of"},
      {R"({"prompt":"x","rope_scaling":"longrope:/etc/passwd"})", "rope_scaling"},
      {R"({"prompt":"x","rope_scaling":[1]})", "rope_scaling"},
      {R"({"prompt":"x","rope_policy":3})", "rope_policy"},
      {R"({"prompt":"x","rope_policy":"auto","rope_scaling":{"rope_type":"linear","factor":2}})", "rope_policy"},
  };
  for (auto [body, param] : cases) {
    SCOPED_TRACE(body);
    const ApiError e = error_of(body);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, param);
    EXPECT_EQ(e.body()["error"]["type"], "invalid_request_error");
    if (*param) EXPECT_EQ(e.body()["error"]["param"], param);
    else EXPECT_TRUE(e.body()["error"]["param"].is_null());
  }
  // Deep nesting is refused before it is built; long prompts by the limit.
  std::string deep = R"({"prompt":)" + std::string(100000, '[') + "1" + std::string(100000, ']') + "}";
  EXPECT_NE(std::string(error_of(deep).what()).find("nests deeper"), std::string::npos);
  RequestLimits small;
  small.max_prompt_tokens = 2;
  EXPECT_EQ(error_of(R"({"prompt":[1,2,3]})", small).param, "prompt");
}

}  // namespace
}  // namespace ropescale
