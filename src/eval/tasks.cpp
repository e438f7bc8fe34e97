#include "ropescale/eval/tasks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <stdexcept>

#include "prompt_parts.h"
#include "ropescale/eval/passkey.h"

namespace ropescale {

using namespace prompt_parts;

namespace {

const std::vector<TaskInfo> kTasks = {
    {TaskKind::NiahSingle, "niah_single", "one needle \"One of the special magic numbers for KEY is: VALUE.\""},
    {TaskKind::NiahMultikey, "niah_multikey", "the needle among 3 distractor needles with other keys"},
    {TaskKind::NiahMultivalue, "niah_multivalue", "4 values of one key, all asked"},
    {TaskKind::NiahMultiquery, "niah_multiquery", "4 keys, all asked"},
    {TaskKind::VariableTracking, "vt", "variable tracking: VAR A = 12345, 4 hops VAR B = VAR A …, all names asked"},
    {TaskKind::KeyValue, "kv", "key-value retrieval by depth: records \"The code for NAME is 12345.\", one asked"},
};

// Word keys, as RULER's adjective-noun pairs (wonderwords there; a fixed list here).
const char* const kAdjectives[] = {"ancient", "bitter",  "brave",  "calm",   "clever", "curious", "distant", "eager",
                                   "fancy",   "gentle",  "golden", "hollow", "humble", "jolly",   "lively",  "lucky",
                                   "modest",  "narrow",  "polite", "proud",  "quiet",  "rapid",   "silent",  "tidy"};
const char* const kNouns[] = {"anchor", "basket", "bridge", "candle", "canyon", "castle", "cellar", "comet",
                              "desert", "falcon", "garden", "harbor", "island", "lantern", "meadow", "mirror",
                              "orchard", "pebble", "river",  "saddle", "tunnel", "valley", "violin", "window"};
// The names of the default model's key-value training documents.
const char* const kNames[] = {"Anna", "Ben",   "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Iris",  "Jack",
                              "Kate", "Leo",   "Mia",   "Noah",  "Olive", "Paul", "Rosa",  "Sam",   "Tara",  "Victor"};

const char* const kNiahIntro =
    "Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about "
    "the numbers afterwards. ";
const char* const kVtIntro = "Memorize and track the chain(s) of variable assignment hidden in the following text. ";
const char* const kKvIntro = "Remember the codes in the following text. ";

// The wording of one template set.
struct Wording {
  const char* niah_intro;
  const char* vt_intro;
  const char* kv_intro;
  int digits;       // of a magic number
  bool word_pairs;  // adjective-noun keys, else one noun
  std::string needle(const std::string& key, const std::string& value) const {
    return niah_intro[0] ? "One of the special magic numbers for " + key + " is: " + value + ". "
                         : "The magic number for " + key + " is " + value + ". ";
  }
  std::string single(const std::string& key) const {
    return niah_intro[0] ? "What is the special magic number for " + key + " mentioned in the provided text? The special "
                           "magic number for " + key + " mentioned in the provided text is"
                         : "What is the magic number for " + key + "? The magic number for " + key + " is";
  }
  std::string several(const std::string& keys) const {
    return niah_intro[0] ? "What are all the special magic numbers for " + keys + " mentioned in the provided text? The "
                           "special magic numbers for " + keys + " mentioned in the provided text are"
                         : "What are all the magic numbers for " + keys + "? They are";
  }
  std::string chain(const std::string& value) const {
    return niah_intro[0] ? "Find all variables that are assigned the value " + value + " in the text above. Answer: "
                           "According to the chain(s) of variable assignment in the text above, 5 variables are "
                           "assigned the value " + value + ", they are:"
                         : "Which variables are assigned the value " + value + "? They are:";
  }
};
const Wording kRuler{kNiahIntro, kVtIntro, kKvIntro, 7, true};
const Wording kCompact{"", "", "", 5, false};

// "a, b, c and d"
std::string listing(const std::vector<std::string>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) s += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  return s;
}

// What one sample is before tokenization: its needles (the asked one first), their depths, the
// question up to the answer, and the references.
struct SampleText {
  const char* intro = kNiahIntro;
  std::vector<std::string> needles;
  std::vector<double> depths;
  std::string question;
  std::vector<std::string> references;
};

SampleText sample_text(TaskKind kind, double depth, std::mt19937_64& rng, int kv_records, const Wording& w) {
  std::uniform_real_distribution<double> anywhere(0.0, 1.0);
  std::set<std::string> used_keys, used_values;
  auto word_key = [&] {
    for (;;) {
      const std::string noun = kNouns[rng() % std::size(kNouns)];
      std::string k = w.word_pairs ? std::string(kAdjectives[rng() % std::size(kAdjectives)]) + "-" + noun : noun;
      if (used_keys.insert(k).second) return k;
    }
  };
  auto value = [&](int digits) {
    for (;;) {
      std::string v = random_passkey(rng, digits);
      if (used_values.insert(v).second) return v;
    }
  };
  SampleText t;
  t.intro = w.niah_intro;
  switch (kind) {
    case TaskKind::NiahSingle:
    case TaskKind::NiahMultikey: {
      const std::string key = word_key(), v = value(w.digits);
      t.needles = {w.needle(key, v)};
      t.depths = {depth};
      for (int i = 0; kind == TaskKind::NiahMultikey && i < 3; ++i) {
        t.needles.push_back(w.needle(word_key(), value(w.digits)));
        t.depths.push_back(anywhere(rng));
      }
      t.intro = w.niah_intro;
      t.question = w.single(key);
      t.references = {v};
      break;
    }
    case TaskKind::NiahMultivalue: {
      const std::string key = word_key();
      for (int i = 0; i < 4; ++i) {
        t.references.push_back(value(w.digits));
        t.needles.push_back(w.needle(key, t.references.back()));
        t.depths.push_back(i == 0 ? depth : anywhere(rng));
      }
      t.intro = w.niah_intro;
      t.question = w.several(key);
      break;
    }
    case TaskKind::NiahMultiquery: {
      std::vector<std::string> keys;
      for (int i = 0; i < 4; ++i) {
        keys.push_back(word_key());
        t.references.push_back(value(w.digits));
        t.needles.push_back(w.needle(keys.back(), t.references.back()));
        t.depths.push_back(i == 0 ? depth : anywhere(rng));
      }
      t.intro = w.niah_intro;
      t.question = w.several(listing(keys));
      break;
    }
    case TaskKind::VariableTracking: {
      t.intro = w.vt_intro;
      auto name = [&] {
        for (;;) {
          std::string n(5, 'A');
          for (char& c : n) c = char('A' + rng() % 26);
          if (used_keys.insert(n).second) return n;
        }
      };
      const std::string v = value(5);
      std::vector<std::string> names{name()};
      t.needles.push_back("VAR " + names[0] + " = " + v + ". ");
      t.depths.push_back(depth);
      for (int hop = 0; hop < 4; ++hop) {  // each hop after the previous line
        names.push_back(name());
        t.needles.push_back("VAR " + names.back() + " = VAR " + names[names.size() - 2] + ". ");
        t.depths.push_back(t.depths.back() + (1.0 - t.depths.back()) * anywhere(rng));
      }
      t.question = w.chain(v);
      t.references = names;
      break;
    }
    case TaskKind::KeyValue: {
      t.intro = w.kv_intro;
      std::vector<int> order(std::size(kNames));
      for (size_t i = 0; i < order.size(); ++i) order[i] = int(i);
      std::shuffle(order.begin(), order.end(), rng);
      for (int i = 0; i < kv_records; ++i) {
        const std::string v = value(5);
        t.needles.push_back(std::string("The code for ") + kNames[order[size_t(i)]] + " is " + v + ". ");
        t.depths.push_back(i == 0 ? depth : anywhere(rng));
        if (i == 0) t.references = {v};
      }
      const std::string asked = kNames[order[0]];
      t.question = "What is the code for " + asked + "? The code for " + asked + " is";
      break;
    }
  }
  return t;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

const std::vector<TaskInfo>& task_infos() { return kTasks; }

const TaskInfo& task_info(TaskKind k) {
  for (const auto& t : kTasks)
    if (t.kind == k) return t;
  throw std::logic_error("task_info: unknown task");
}

std::optional<TaskKind> parse_task(std::string_view name) {
  for (const auto& t : kTasks)
    if (name == t.name) return t.kind;
  return std::nullopt;
}

std::optional<TaskWording> parse_task_wording(std::string_view name) {
  if (name == "ruler") return TaskWording::Ruler;
  if (name == "compact") return TaskWording::Compact;
  return std::nullopt;
}

std::string task_names() {
  std::string s;
  for (const auto& t : kTasks) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

std::vector<TaskSample> build_task_samples(const Tokenizer& tok, const TaskOptions& o) {
  if (o.tasks.empty() || o.lengths.empty() || o.depths.empty() || o.trials < 1)
    throw std::invalid_argument("tasks: give at least one task, one length, one depth and one trial");
  for (double d : o.depths)
    if (!(d >= 0 && d <= 1)) throw std::invalid_argument("tasks: depth " + std::to_string(d) + " is outside 0 … 1");
  if (o.kv_records < 2 || o.kv_records > int(std::size(kNames)))
    throw std::invalid_argument("tasks: kv records must be 2 … " + std::to_string(std::size(kNames)));
  std::vector<std::string> sentences;  // RULER's noise haystack, a space after each sentence
  for (const auto& s : passkey_filler_sentences()) sentences.push_back(s + " ");
  const Filler filler = Filler::make(tok, sentences, o.haystack, *std::max_element(o.lengths.begin(), o.lengths.end()));
  std::map<const char*, std::vector<int>> intros;
  std::vector<TaskSample> out;
  for (TaskKind kind : o.tasks)
    for (size_t li = 0; li < o.lengths.size(); ++li)
      for (size_t di = 0; di < o.depths.size(); ++di)
        for (int trial = 0; trial < o.trials; ++trial) {
          std::seed_seq seq{uint64_t(o.seed), uint64_t(kind), uint64_t(o.lengths[li]), uint64_t(di), uint64_t(trial)};
          std::mt19937_64 rng(seq);
          const SampleText st = sample_text(kind, o.depths[di], rng, o.kv_records,
                                            o.wording == TaskWording::Ruler ? kRuler : kCompact);
          TaskSample s;
          s.kind = kind;
          s.length = o.lengths[li];
          s.depth = o.depths[di];
          s.trial = trial;
          s.references = st.references;
          auto [it, fresh] = intros.try_emplace(st.intro);
          if (fresh) it->second = tok.encode(st.intro, true, false);
          const std::vector<int>& intro = it->second;
          QuestionAndAnswers qa = split_answers(tok, st.question, st.references);
          s.answers = std::move(qa.answers);
          std::vector<std::vector<int>> needles;
          int64_t fixed = int64_t(intro.size() + qa.question.size());
          for (const auto& n : st.needles) {
            needles.push_back(tok.encode(n, false, false));
            fixed += int64_t(needles.back().size());
          }
          if (fixed > s.length)
            throw std::invalid_argument(std::string("tasks: length ") + std::to_string(s.length) + " is shorter than " +
                                        task_info(kind).name + "'s " + std::to_string(fixed) + " fixed tokens" +
                                        (o.wording == TaskWording::Ruler ? " (the compact wording is shorter)" : ""));
          const Placed placed = place_needles(filler.take(s.length - fixed), needles, st.depths);
          s.ids = intro;
          for (int64_t at : placed.needle_at) s.needle_at.push_back(int64_t(intro.size()) + at);
          for (const auto& n : needles) s.needle_tokens.push_back(int64_t(n.size()));
          s.haystack_begin = int64_t(s.ids.size());
          s.ids.insert(s.ids.end(), placed.ids.begin(), placed.ids.end());
          s.haystack_end = int64_t(s.ids.size());
          s.ids.insert(s.ids.end(), qa.question.begin(), qa.question.end());
          out.push_back(std::move(s));
        }
  return out;
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& references) {
  if (references.empty()) return 0;
  const std::string p = lower(prediction);
  int found = 0;
  for (const auto& r : references) found += p.find(lower(r)) != std::string::npos;
  return double(found) / double(references.size());
}

std::vector<TaskTrial> evaluate_tasks(const EvalTarget& target, const std::vector<RopeSetting>& methods,
                                      const std::vector<TaskSample>& samples, const EvalProgress& progress) {
  std::vector<const RetrievalPrompt*> prompts;
  int generate = 0;
  for (const auto& s : samples) {
    prompts.push_back(&s);
    int need = 4;  // every reference, with room for separators ("a, b, c and d")
    for (const auto& a : s.answers) need += int(a.size()) + 2;
    generate = std::max(generate, need);
  }
  const auto outcomes = target.retrieve(methods, prompts, generate, progress);
  std::vector<TaskTrial> out;
  for (size_t mi = 0; mi < methods.size(); ++mi)
    for (size_t si = 0; si < samples.size(); ++si) {
      const TaskSample& s = samples[si];
      const RetrievalOutcome& o = outcomes[mi][si];
      TaskTrial t;
      t.method = methods[mi].label;
      t.kind = s.kind;
      t.length = s.length;
      t.depth = s.depth;
      t.trial = s.trial;
      t.references = s.references;
      t.generated = o.generated;
      t.score = string_match_all(o.generated, s.references);
      for (size_t a = 0; a < s.answers.size(); ++a) t.needle_nll += -o.answer_logprobs[a] / double(s.answers[a].size());
      t.needle_nll /= double(s.answers.size());
      out.push_back(std::move(t));
    }
  return out;
}

std::vector<TaskCell> task_cells(const std::vector<TaskTrial>& trials, bool over_depths) {
  std::vector<TaskCell> cells;
  std::map<std::tuple<std::string, int, int64_t, double>, size_t> index;
  for (const auto& t : trials) {
    const double depth = over_depths ? std::nan("") : t.depth;
    auto [it, fresh] = index.try_emplace({t.method, int(t.kind), t.length, over_depths ? -1.0 : t.depth}, cells.size());
    if (fresh) cells.push_back({t.method, t.kind, t.length, depth, 0, 0, 0.0, 0.0});
    TaskCell& c = cells[it->second];
    ++c.trials;
    c.exact += t.score >= 1.0;
    c.score += t.score;
    c.needle_nll += t.needle_nll;
  }
  for (auto& c : cells) c.score /= c.trials, c.needle_nll /= c.trials;
  return cells;
}

}  // namespace ropescale
