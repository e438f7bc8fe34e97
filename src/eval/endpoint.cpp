#include "ropescale/eval/endpoint.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>

#include <fmt/core.h>

namespace ropescale {

using nlohmann::json;

namespace {

// A reply that is not JSON or not the shape asked for, quoted briefly.
std::string head(const std::string& s, size_t n = 160) {
  std::string h = s.substr(0, n);
  for (char& c : h)
    if (c == '\n' || c == '\r') c = ' ';
  return s.size() > n ? h + "…" : h;
}

bool retryable_status(int status) { return status == 429 || status == 502 || status == 503 || status == 504; }

// The server's own words for an error reply: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, else the body.
std::string error_message(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    if (j.contains("error") && j["error"].is_object() && j["error"].contains("message") && j["error"]["message"].is_string())
      return j["error"]["message"].get<std::string>();
    if (j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
    if (j.contains("detail")) return head(j["detail"].dump());
    if (j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  }
  return head(body);
}

}  // namespace

Endpoint::Endpoint(EndpointOptions options) : o_(std::move(options)) {
  base_ = o_.url;
  while (!base_.empty() && base_.back() == '/') base_.pop_back();
  if (base_.size() >= 3 && base_.compare(base_.size() - 3, 3, "/v1") == 0) base_.resize(base_.size() - 3);
  if (base_.rfind("https://", 0) == 0)
    throw EndpointError(o_.url + ": https is not available in this build (cpp-httplib without TLS); use http:// "
                                 "(a loopback port, an SSH tunnel or a TLS-terminating proxy)");
  if (base_.rfind("http://", 0) != 0 || base_.size() <= 7)
    throw EndpointError(o_.url + ": not an http:// URL (give e.g. http://127.0.0.1:8000 or http://host:8000/v1)");
  if (o_.concurrency < 1) throw EndpointError(o_.url + ": concurrency must be at least 1");

  const json models = call("GET", "/v1/models");
  if (!models.contains("data") || !models["data"].is_array() || models["data"].empty())
    throw EndpointError(base_ + "/v1/models: the reply lists no model: " + head(models.dump()));
  std::vector<std::string> names;
  for (const json& m : models["data"]) {
    if (!m.is_object() || !m.contains("id") || !m["id"].is_string())
      throw EndpointError(base_ + "/v1/models: a model entry has no string \"id\": " + head(m.dump()));
    names.push_back(m["id"].get<std::string>());
    if (!o_.served_model.empty() && names.back() != o_.served_model) continue;
    model_ = names.back();
    if (m.contains("max_model_len") && m["max_model_len"].is_number_integer()) max_model_len_ = m["max_model_len"].get<int64_t>();
    if (m.contains("trained_context") && m["trained_context"].is_number_integer())
      trained_context_ = m["trained_context"].get<int64_t>();
    break;
  }
  if (model_.empty()) {
    std::string all;
    for (const auto& n : names) all += (all.empty() ? "" : ", ") + n;
    throw EndpointError(base_ + "/v1/models: no model named '" + o_.served_model + "' (the server has: " + all + ")");
  }

  // The tokenizer route: vLLM's (also ropescale's), else llama-cpp-python's.
  for (const char* route : {"vllm", "llama-cpp-python"}) {
    route_ = route;
    try {
      prefix_ = tokenize_raw("", true);
      break;
    } catch (const EndpointError& e) {
      if (e.http_status != 404) throw;
      if (route_ == "llama-cpp-python")
        throw EndpointError(base_ + ": the server has no tokenizer route (neither vLLM's POST /tokenize nor "
                                    "llama-cpp-python's POST /extras/tokenize): the evaluation cuts its texts by the "
                                    "server's own token counts and needs one");
    }
  }
}

json Endpoint::call(const std::string& method, const std::string& path, const json& body) const {
  const std::string where = base_ + path;
  double delay = o_.backoff_s;
  for (int attempt = 0;; ++attempt) {
    httplib::Client cli(base_);
    cli.set_connection_timeout(std::chrono::seconds(10));
    const auto timeout = std::chrono::milliseconds(int64_t(o_.timeout_s * 1000));
    cli.set_read_timeout(timeout);
    cli.set_write_timeout(timeout);
    httplib::Headers headers;
    if (!o_.api_key.empty()) headers.emplace("Authorization", "Bearer " + o_.api_key);
    const auto started = std::chrono::steady_clock::now();
    const auto res = method == "GET" ? cli.Get(path, headers)
                                     : cli.Post(path, headers, body.dump(-1, ' ', false, json::error_handler_t::replace),
                                                "application/json");
    const bool last = attempt >= o_.retries;
    if (!res) {
      const httplib::Error err = res.error();
      if (err == httplib::Error::Connection)
        throw EndpointError(where + ": cannot connect (" + httplib::to_string(err) + "): is the server running there?");
      // A dropped connection is retried; a request that ran out its timeout is not (it would only wait again).
      const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (took >= 0.95 * o_.timeout_s)
        throw EndpointError(where + fmt::format(": no reply within the per-request timeout of {:g} s (--timeout)", o_.timeout_s));
      if (last || (err != httplib::Error::Read && err != httplib::Error::Write))
        throw EndpointError(where + ": no reply (" + httplib::to_string(err) + ") after " + std::to_string(attempt + 1) +
                            " attempt(s)");
    } else if (res->status >= 400) {
      if (last || !retryable_status(res->status))
        throw EndpointError(where + ": HTTP " + std::to_string(res->status) + ": " + error_message(res->body) +
                                (retryable_status(res->status) ? " (after " + std::to_string(attempt + 1) + " attempts)" : ""),
                            res->status);
      if (res->has_header("Retry-After")) {
        const double after = std::atof(res->get_header_value("Retry-After").c_str());
        if (after > 0) delay = std::min(after, 30.0);
      }
    } else {
      json j = json::parse(res->body, nullptr, false);
      if (j.is_discarded()) throw EndpointError(where + ": the reply is not JSON: " + head(res->body));
      return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(int64_t(delay * 1000)));
    delay = std::min(delay * 2, 30.0);
  }
}

std::vector<int> Endpoint::tokenize_raw(const std::string& text, bool special) const {
  const bool vllm = route_ == "vllm";
  const std::string path = vllm ? "/tokenize" : "/extras/tokenize";
  const json body = vllm ? json{{"model", model_}, {"prompt", text}, {"add_special_tokens", special}}
                         : json{{"model", model_}, {"input", text}};
  const json r = call("POST", path, body);
  if (!r.is_object() || !r.contains("tokens") || !r["tokens"].is_array())
    throw EndpointError(base_ + path + ": the reply has no \"tokens\" array: " + head(r.dump()));
  std::vector<int> ids;
  for (const json& t : r["tokens"]) {
    if (!t.is_number_integer()) throw EndpointError(base_ + path + ": a token is not an integer id: " + head(t.dump()));
    ids.push_back(t.get<int>());
  }
  // llama-cpp-python always puts the model's BOS first: take it off for a plain tokenization.
  if (!vllm && !special && !prefix_.empty()) {
    if (!std::equal(prefix_.begin(), prefix_.end(), ids.begin(), ids.begin() + std::min(ids.size(), prefix_.size())))
      throw EndpointError(base_ + path + ": the tokens do not start with the prefix the server puts before every text");
    ids.erase(ids.begin(), ids.begin() + prefix_.size());
  }
  return ids;
}

std::vector<int> Endpoint::tokenize(const std::string& text) const { return tokenize_raw(text, false); }

std::string Endpoint::detokenize(std::span<const int> ids) const {
  const bool vllm = route_ == "vllm";
  const std::string path = vllm ? "/detokenize" : "/extras/detokenize";
  const std::vector<int> tokens(ids.begin(), ids.end());
  const json r = call("POST", path, {{"model", model_}, {"tokens", tokens}});
  const char* key = vllm ? "prompt" : "text";
  if (!r.is_object() || !r.contains(key) || !r[key].is_string())
    throw EndpointError(base_ + path + ": the reply has no \"" + key + "\" string: " + head(r.dump()));
  return r[key].get<std::string>();
}

std::vector<double> Endpoint::prompt_logprobs(const std::string& text, size_t n_tokens, const json& rope) const {
  json body = {{"model", model_}, {"prompt", text}, {"max_tokens", 1}, {"temperature", 0},
               {"echo", true},    {"logprobs", 1}};
  if (!rope.is_null()) body["rope_scaling"] = rope;
  const json r = call("POST", "/v1/completions", body);
  const std::string where = base_ + "/v1/completions";
  if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() || !r["choices"][0].is_object())
    throw EndpointError(where + ": the reply has no choices: " + head(r.dump()));
  const json& choice = r["choices"][0];
  if (!choice.contains("logprobs") || !choice["logprobs"].is_object() || !choice["logprobs"].contains("token_logprobs") ||
      !choice["logprobs"]["token_logprobs"].is_array())
    throw EndpointError(where + ": the reply has no choices[0].logprobs.token_logprobs — the server must return the "
                                "prompt's log-probabilities for echo: true + logprobs (vLLM's protocol)");
  const json& lp = choice["logprobs"]["token_logprobs"];
  const size_t expected_prompt = prefix_.size() + n_tokens;
  int64_t generated = 1;
  if (r.contains("usage") && r["usage"].is_object()) {
    const json& u = r["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer() &&
        u["prompt_tokens"].get<int64_t>() != int64_t(expected_prompt))
      throw EndpointError(fmt::format("{}: token counts disagree: the server read a prompt of {} tokens where its "
                                      "tokenizer route gave {} (+{} special): the text does not survive "
                                      "detokenize → tokenize on this server (on a byte-level vocabulary, a window "
                                      "cut inside a UTF-8 character does this)",
                                      where, u["prompt_tokens"].get<int64_t>(), n_tokens, prefix_.size()));
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer())
      generated = u["completion_tokens"].get<int64_t>();
  }
  const int64_t prompt_entries = int64_t(lp.size()) - generated;
  if (prompt_entries < int64_t(n_tokens) || prompt_entries > int64_t(expected_prompt))
    throw EndpointError(fmt::format("{}: token counts disagree: {} log-probabilities for a prompt of {} tokens (+{} "
                                    "special) and {} generated",
                                    where, lp.size(), n_tokens, prefix_.size(), generated));
  std::vector<double> out;
  out.reserve(n_tokens);
  for (int64_t i = prompt_entries - int64_t(n_tokens); i < prompt_entries; ++i) {
    const json& v = lp[size_t(i)];
    if (v.is_null()) {
      out.push_back(std::numeric_limits<double>::quiet_NaN());
    } else if (v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() <= 1e-6) {
      out.push_back(std::min(0.0, v.get<double>()));
    } else {
      throw EndpointError(where + ": token_logprobs[" + std::to_string(i) + "] is not a log-probability: " + head(v.dump()));
    }
  }
  return out;
}

std::string Endpoint::greedy(const std::string& prompt, int max_tokens, const json& rope) const {
  json body = {{"model", model_}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}};
  if (!rope.is_null()) body["rope_scaling"] = rope;
  const json r = call("POST", "/v1/completions", body);
  if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() || !r["choices"][0].is_object() ||
      !r["choices"][0].contains("text") || !r["choices"][0]["text"].is_string())
    throw EndpointError(base_ + "/v1/completions: the reply has no choices[0].text: " + head(r.dump()));
  return r["choices"][0]["text"].get<std::string>();
}

void Endpoint::parallel_for(size_t n, const std::function<void(size_t)>& fn) const {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex m;
  auto worker = [&] {
    for (size_t i; !failed && (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        if (!first) first = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  const size_t k = std::min<size_t>(n, size_t(o_.concurrency));
  for (size_t t = 1; t < k; ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

std::vector<int> EndpointTokenizer::encode(const std::string& text, bool bos, bool) const {
  std::vector<int> ids = e_.tokenize(text);
  if (bos) ids.insert(ids.begin(), e_.prompt_prefix().begin(), e_.prompt_prefix().end());
  return ids;
}

std::string EndpointTokenizer::decode(int, int token) const { return e_.detokenize(std::span<const int>(&token, 1)); }

}  // namespace ropescale
