#include "ropescale/eval/passkey.h"

#include "prompt_parts.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>


namespace ropescale {

using namespace prompt_parts;

namespace {

const char* const kIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there.";
const char* const kFiller[] = {"The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                               "There and back again."};
const char* const kQuestion = "What is the pass key? The pass key is";

std::string needle(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}


}  // namespace

std::string random_passkey(std::mt19937_64& rng, int digits) {
  int64_t lo = 1;
  for (int i = 1; i < digits; ++i) lo *= 10;
  return std::to_string(std::uniform_int_distribution<int64_t>(lo, lo * 10 - 1)(rng));
}

const char* passkey_intro() { return kIntro; }
const std::vector<std::string>& passkey_filler_sentences() {
  static const std::vector<std::string> s(std::begin(kFiller), std::end(kFiller));
  return s;
}
std::string passkey_needle(const std::string& key) { return needle(key); }
const char* passkey_question() { return kQuestion; }

std::vector<PasskeyPrompt> build_passkey_prompts(const Tokenizer& tok, const PasskeyOptions& o) {
  if (o.lengths.empty() || o.depths.empty() || o.trials < 1)
    throw std::invalid_argument("passkey: give at least one length, one depth and one trial");
  if (o.alternatives < 1 || o.digits < 1 || o.digits > 12)
    throw std::invalid_argument("passkey: alternatives must be >= 1 and digits 1 … 12");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1)) throw std::invalid_argument("passkey: depth " + std::to_string(d) + " is outside 0 … 1");
  const int64_t longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  const Filler filler = Filler::make(tok, passkey_filler_sentences(), o.haystack, longest);
  const std::vector<int> intro = tok.encode(kIntro, true, false);

  std::vector<PasskeyPrompt> prompts;
  for (size_t li = 0; li < o.lengths.size(); ++li)
    for (size_t di = 0; di < o.depths.size(); ++di)
      for (int trial = 0; trial < o.trials; ++trial) {
        std::seed_seq seq{uint64_t(o.seed), uint64_t(o.lengths[li]), uint64_t(di), uint64_t(trial)};
        std::mt19937_64 rng(seq);
        PasskeyPrompt p;
        p.length = o.lengths[li];  // the target; built-in filler may leave it up to one sentence short
        p.depth = o.depths[di];
        p.trial = trial;
        p.key = random_passkey(rng, o.digits);
        std::set<std::string> used{p.key};
        while (int(p.alternatives.size()) < o.alternatives) {
          std::string k = random_passkey(rng, o.digits);
          if (used.insert(k).second) p.alternatives.push_back(k);
        }
        // "… The pass key is" + " KEY": the question is the tokens every candidate shares.
        std::vector<std::string> candidates{p.key};
        candidates.insert(candidates.end(), p.alternatives.begin(), p.alternatives.end());
        QuestionAndAnswers qa = split_answers(tok, kQuestion, candidates);
        p.answers = std::move(qa.answers);
        const std::vector<int> needle_ids = tok.encode(needle(p.key), false, false);
        const int64_t fixed = int64_t(intro.size() + needle_ids.size() + qa.question.size());
        const int64_t n_filler = p.length - fixed;
        if (n_filler < 0)
          throw std::invalid_argument("passkey: length " + std::to_string(p.length) + " is shorter than the prompt's " +
                                      std::to_string(fixed) + " fixed tokens");
        const Placed placed = place_needles(filler.take(n_filler), {needle_ids}, {p.depth});
        p.ids = intro;
        p.needle_at = int64_t(p.ids.size()) + placed.needle_at[0];
        p.ids.insert(p.ids.end(), placed.ids.begin(), placed.ids.end());
        p.ids.insert(p.ids.end(), qa.question.begin(), qa.question.end());
        prompts.push_back(std::move(p));
      }
  return prompts;
}

bool passkey_exact(const std::string& generated, const std::string& key) {
  const size_t a = generated.find_first_not_of(' ');
  if (a == std::string::npos) return false;
  const size_t b = generated.find_first_not_of("0123456789", a);
  return generated.substr(a, b == std::string::npos ? std::string::npos : b - a) == key;
}

void rank_passkey_answers(PasskeyTrial& t, const std::vector<double>& lp, const std::vector<std::vector<int>>& answers) {
  t.key_logprob = lp.at(0);
  t.key_tokens = int(answers.at(0).size());
  t.rank = 1;
  for (size_t i = 1; i < lp.size(); ++i) t.rank += lp[i] > lp[0];
}

int passkey_generate_tokens(const std::vector<PasskeyPrompt>& prompts) {
  size_t longest_answer = 0;
  for (const auto& p : prompts)
    for (const auto& a : p.answers) longest_answer = std::max(longest_answer, a.size());
  return int(longest_answer) + 2;
}

std::vector<PasskeyTrial> evaluate_passkey(const EvalTarget& target, const std::vector<RopeSetting>& methods,
                                           const std::vector<PasskeyPrompt>& prompts, const EvalProgress& progress) {
  std::vector<const RetrievalPrompt*> ps;
  for (const auto& p : prompts) ps.push_back(&p);
  const auto outcomes = target.retrieve(methods, ps, passkey_generate_tokens(prompts), progress);
  std::vector<PasskeyTrial> out;
  for (size_t mi = 0; mi < methods.size(); ++mi)
    for (size_t pi = 0; pi < prompts.size(); ++pi) {
      const PasskeyPrompt& p = prompts[pi];
      const RetrievalOutcome& o = outcomes[mi][pi];
      PasskeyTrial t{methods[mi].label, p.length, p.depth, p.trial, p.key, o.generated, false, 1, 0.0, 0};
      t.exact = passkey_exact(t.generated, p.key);
      rank_passkey_answers(t, o.answer_logprobs, p.answers);
      out.push_back(std::move(t));
    }
  return out;
}

std::vector<PasskeyCell> passkey_cells(const std::vector<PasskeyTrial>& trials, int alternatives) {
  std::vector<PasskeyCell> cells;
  std::map<std::tuple<std::string, int64_t, double>, size_t> index;
  for (const auto& t : trials) {
    auto [it, fresh] = index.try_emplace({t.method, t.length, t.depth}, cells.size());
    if (fresh) cells.push_back({t.method, t.length, t.depth});
    PasskeyCell& c = cells[it->second];
    ++c.trials;
    c.exact += t.exact;
    c.mean_rank += t.rank;
    c.rank_score += 1.0 - double(t.rank - 1) / std::max(1, alternatives);
    c.needle_nll += -t.key_logprob / std::max(1, t.key_tokens);
  }
  for (auto& c : cells) c.mean_rank /= c.trials, c.rank_score /= c.trials, c.needle_nll /= c.trials;
  return cells;
}

}  // namespace ropescale
