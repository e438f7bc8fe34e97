// libFuzzer target: an HTTP body → parse_completion_request → choose_rope on a
// tiny model, and the same body as a /tokenize and a /detokenize request.
// Anything wrong must be an ApiError (the server's 4xx), never a crash, a hang
// or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "ropescale/serve/completion_request.h"
#include "ropescale/serve/serve_policy.h"
#include "tiny_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ropescale;
  static const LlamaModel model = test::tiny_llama(16, 32, 1, 2, 1, 259, 64, 3);
  static const ServePolicy policy = parse_serve_policy("auto");
  try {
    const CompletionRequest r = parse_completion_request(std::string(reinterpret_cast<const char*>(data), size), {});
    const int64_t prompt = r.prompt ? int64_t(r.prompt->size()) + 1 : int64_t(r.prompt_ids.size());
    (void)choose_rope(model, r, policy, prompt + r.max_tokens).describe();
  } catch (const ApiError&) {
  }
  const std::string body(reinterpret_cast<const char*>(data), size);
  try {
    (void)parse_tokenize_request(body, {});
  } catch (const ApiError&) {
  }
  try {
    (void)parse_detokenize_request(body, {});
  } catch (const ApiError&) {
  }
  return 0;
}
