// Perplexity over a served model (an Endpoint), with the same windows, results
// and reports as the runtime's, through /v1/completions (EndpointTarget runs it;
// retrieval prompts are in eval_target.cpp).
//
// Perplexity: the text is tokenized by the server; each window is the server's
// prefix (BOS) and ctx − 1 stream tokens, sent as their text (the server's
// /detokenize of them), scored by the echoed prompt log-probabilities — the
// protocol `eval ppl --window-bos` runs locally, so the two agree to rounding.
// Each method's rope_scaling dict is sent with every request (null for
// "model"): ropescale's server applies it; a fixed-config engine ignores it, and
// the method is then the label of that deployment.
#pragma once

#include <span>
#include <vector>

#include "ropescale/eval/endpoint.h"
#include "ropescale/eval/perplexity.h"

namespace ropescale {

// `stream`: the server's tokens of the text (Endpoint::tokenize), no specials.
// Results as evaluate_perplexity's (ctx-major); options.bos_each_window is
// ignored (the server's prefix leads every window).
std::vector<PerplexityResult> evaluate_perplexity_endpoint(const Endpoint& e, std::span<const int> stream,
                                                           const std::vector<RopeSetting>& methods,
                                                           const PerplexityOptions& options,
                                                           const EvalProgress& progress = {});

// The server's tokens of the start of `text` — at least `max_tokens` of them when
// the text has that many (0 = the whole text) — in one request of as little text
// as will do (8 bytes per token, doubled until enough; the last token of a cut
// text is dropped, since the cut may split it).
std::vector<int> tokenize_text(const Endpoint& e, const std::string& text, int64_t max_tokens = 0);

}  // namespace ropescale
