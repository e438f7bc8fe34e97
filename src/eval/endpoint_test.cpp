// The endpoint client against a fake server (cpp-httplib on a free loopback
// port) that answers right, or fails in each way a real one can: refused
// connection, HTTP errors, malformed JSON, missing logprobs, lying counts,
// busy replies (retried), silence (timeout), no tokenizer route.
#include "ropescale/eval/endpoint.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "ropescale/eval/endpoint_eval.h"

namespace ropescale {
namespace {

using nlohmann::json;

// A byte-level model's server: BOS = 1, token = 3 + byte; each prompt token's
// log-probability is −0.5 (the first null), so the NLL of any window is 0.5.
struct FakeServer {
  enum class Fault { None, Http500, NotJson, NoLogprobs, WrongCount, Busy429, AlwaysBusy, Slow, NoTokenizer, NoModels };
  Fault fault = Fault::None;
  std::atomic<int> completions{0}, busy_left{2};
  httplib::Server svr;
  std::thread thread;
  int port = 0;

  static std::vector<int> bytes_of(const std::string& s) {
    std::vector<int> ids;
    for (unsigned char c : s) ids.push_back(3 + c);
    return ids;
  }

  explicit FakeServer(Fault f) : fault(f) {
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const json body = fault == Fault::NoModels ? json{{"object", "list"}, {"data", json::array()}}
                                                 : json{{"data", {{{"id", "fake"}, {"max_model_len", 4096}}}}};
      res.set_content(body.dump(), "application/json");
    });
    svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
      if (fault == Fault::NoTokenizer) {
        res.status = 404;
        return;
      }
      const json j = json::parse(req.body);
      std::vector<int> ids = bytes_of(j["prompt"].get<std::string>());
      if (j.value("add_special_tokens", true)) ids.insert(ids.begin(), 1);
      res.set_content(json{{"tokens", ids}, {"count", ids.size()}}.dump(), "application/json");
    });
    svr.Post("/detokenize", [](const httplib::Request& req, httplib::Response& res) {
      const json j = json::parse(req.body);
      std::string s;
      for (int id : j["tokens"]) s += char(id - 3);
      res.set_content(json{{"prompt", s}}.dump(), "application/json");
    });
    svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      ++completions;
      const json j = json::parse(req.body);
      switch (fault) {
        case Fault::Http500:
          res.status = 500;
          res.set_content(R"({"error":{"message":"CUDA out of memory"}})", "application/json");
          return;
        case Fault::NotJson: res.set_content("<html>proxy error</html>", "text/html"); return;
        case Fault::Busy429:
          if (busy_left-- > 0) {
            res.status = 429;
            return;
          }
          break;
        case Fault::AlwaysBusy: res.status = 503; return;
        case Fault::Slow: std::this_thread::sleep_for(std::chrono::milliseconds(1500)); break;
        default: break;
      }
      const std::string prompt = j["prompt"].get<std::string>();
      const int n = int(prompt.size()) + 1;  // BOS + bytes
      json lp = json::array({nullptr});
      for (int i = 1; i < n; ++i) lp.push_back(-0.5);
      lp.push_back(-0.25);  // the generated token
      json choice = {{"text", j.value("echo", false) ? prompt + "x" : "12345 is"}, {"index", 0}};
      if (fault != Fault::NoLogprobs && j.value("echo", false)) choice["logprobs"] = {{"token_logprobs", lp}};
      json body = {{"choices", {choice}},
                   {"usage", {{"prompt_tokens", fault == Fault::WrongCount ? n + 3 : n}, {"completion_tokens", 1}}}};
      res.set_content(body.dump(), "application/json");
    });
    port = svr.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { svr.listen_after_bind(); });
    while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeServer() {
    svr.stop();
    thread.join();
  }
  EndpointOptions options() const {
    EndpointOptions o;
    o.url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
    o.backoff_s = 0.01;
    o.retries = 3;
    o.timeout_s = 5;
    return o;
  }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const EndpointError& e) {
    return e.what();
  }
  return "";
}

TEST(Endpoint, ConnectsAndReadsTheServersTokenizer) {
  FakeServer s(FakeServer::Fault::None);
  Endpoint e(s.options());
  EXPECT_EQ(e.model(), "fake");
  EXPECT_EQ(e.max_model_len(), 4096);
  EXPECT_EQ(e.tokenizer_route(), "vllm");
  EXPECT_EQ(e.prompt_prefix(), std::vector<int>{1});
  EXPECT_EQ(e.tokenize("ab"), (std::vector<int>{3 + 'a', 3 + 'b'}));
  const std::vector<int> ids{3 + 'h', 3 + 'i'};
  EXPECT_EQ(e.detokenize(ids), "hi");
  const auto lp = e.prompt_logprobs("hello", 5, nullptr);
  ASSERT_EQ(lp.size(), 5u);
  for (double x : lp) EXPECT_DOUBLE_EQ(x, -0.5);  // the BOS's null entry and the generated token are not the text's
  EXPECT_EQ(e.greedy("The pass key is", 7, nullptr), "12345 is");
}

TEST(Endpoint, PerplexityOverTheEndpointIsTheMeanOfTheEchoedLogprobs) {
  FakeServer s(FakeServer::Fault::None);
  Endpoint e(s.options());
  std::string text(1000, 'a');
  const std::vector<int> stream = tokenize_text(e, text, 600);
  ASSERT_EQ(stream.size(), 600u);
  PerplexityOptions o;
  o.ctxs = {65, 129};
  RopeSetting none;
  none.label = "model";
  const auto r = evaluate_perplexity_endpoint(e, stream, {none}, o);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].windows, 600 / 64);
  EXPECT_EQ(r[0].tokens, (600 / 64) * 63);  // the first stream token of a window is context only
  EXPECT_NEAR(r[0].nll, 0.5, 1e-12);
  EXPECT_EQ(r[0].position_tokens[0] + r[0].position_tokens[1], 0);  // BOS and the first text token unscored
  EXPECT_EQ(r[0].position_tokens[2], r[0].windows);
  EXPECT_EQ(r[1].windows, 600 / 128);
}

TEST(Endpoint, ARefusedConnectionNamesTheUrl) {
  int port = 0;
  {
    FakeServer s(FakeServer::Fault::None);
    port = s.port;
  }  // stopped: nothing listens there now
  EndpointOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  const std::string why = error_of([&] { Endpoint e(o); });
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << why;
  EXPECT_NE(why.find("cannot connect"), std::string::npos) << why;
}

TEST(Endpoint, EachFaultIsAClearError) {
  struct Case {
    FakeServer::Fault fault;
    const char* says;
  } cases[] = {
      {FakeServer::Fault::Http500, "HTTP 500: CUDA out of memory"},
      {FakeServer::Fault::NotJson, "is not JSON: <html>proxy error"},
      {FakeServer::Fault::NoLogprobs, "no choices[0].logprobs.token_logprobs"},
      {FakeServer::Fault::WrongCount, "token counts disagree"},
      {FakeServer::Fault::AlwaysBusy, "HTTP 503"},
      {FakeServer::Fault::Slow, "no reply within the per-request timeout of 0.3 s"},
  };
  for (const auto& c : cases) {
    FakeServer s(c.fault);
    EndpointOptions o = s.options();
    if (c.fault == FakeServer::Fault::Slow) o.timeout_s = 0.3;  // not retried: a timeout is not a dropped connection
    Endpoint e(o);
    const std::string why = error_of([&] { e.prompt_logprobs("hello", 5, nullptr); });
    EXPECT_NE(why.find(c.says), std::string::npos) << int(c.fault) << ": " << why;
    EXPECT_NE(why.find("127.0.0.1:" + std::to_string(s.port) + "/v1/completions"), std::string::npos) << why;
    if (c.fault == FakeServer::Fault::AlwaysBusy) {
      EXPECT_EQ(s.completions, o.retries + 1);
    }
    if (c.fault == FakeServer::Fault::Http500 || c.fault == FakeServer::Fault::Slow) {
      EXPECT_EQ(s.completions, 1);  // not retried
    }
  }
}

TEST(Endpoint, BusyRepliesAreRetriedWithBackoff) {
  FakeServer s(FakeServer::Fault::Busy429);
  Endpoint e(s.options());
  const auto lp = e.prompt_logprobs("hi", 2, nullptr);
  EXPECT_EQ(lp.size(), 2u);
  EXPECT_EQ(s.completions, 3);  // two 429s, then the answer
}

TEST(Endpoint, AServerWithoutATokenizerRouteOrModelsIsRefused) {
  {
    FakeServer s(FakeServer::Fault::NoTokenizer);
    const std::string why = error_of([&] { Endpoint e(s.options()); });
    EXPECT_NE(why.find("no tokenizer route"), std::string::npos) << why;
  }
  {
    FakeServer s(FakeServer::Fault::NoModels);
    const std::string why = error_of([&] { Endpoint e(s.options()); });
    EXPECT_NE(why.find("/v1/models: the reply lists no model"), std::string::npos) << why;
  }
  {
    FakeServer s(FakeServer::Fault::None);
    EndpointOptions o = s.options();
    o.served_model = "llama-70b";
    const std::string why = error_of([&] { Endpoint e(o); });
    EXPECT_NE(why.find("no model named 'llama-70b' (the server has: fake)"), std::string::npos) << why;
  }
  EndpointOptions o;
  o.url = "https://example.com";
  EXPECT_NE(error_of([&] { Endpoint e(o); }).find("https is not available"), std::string::npos);
  o.url = "example.com:8000";
  EXPECT_NE(error_of([&] { Endpoint e(o); }).find("not an http:// URL"), std::string::npos);
}

TEST(Endpoint, ParallelForRunsEveryIndexOnceAndRethrowsTheFirstFailure) {
  FakeServer s(FakeServer::Fault::None);
  EndpointOptions o = s.options();
  o.concurrency = 3;
  Endpoint e(o);
  std::vector<std::atomic<int>> hits(50);
  e.parallel_for(hits.size(), [&](size_t i) { ++hits[i]; });
  for (auto& h : hits) EXPECT_EQ(h, 1);
  EXPECT_THROW(e.parallel_for(10, [](size_t i) {
    if (i == 4) throw EndpointError("boom");
  }), EndpointError);
}

}  // namespace
}  // namespace ropescale
