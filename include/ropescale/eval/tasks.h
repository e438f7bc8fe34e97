// RULER-style synthetic retrieval tasks (Hsieh et al. 2024, NVIDIA/RULER's
// scripts/data/synthetic), deterministic from a seed, over any haystack text.
// Each sample is a prompt (BOS, instruction, haystack with needles, question,
// answer prefix) and its reference answers. A sample is scored by
//  - RULER's string_match_all: the fraction of the references that occur
//    (case-insensitive) in the greedy continuation; "exact" when all do;
//  - needle NLL: each reference teacher-forced right after the prompt, its
//    negative log-likelihood per token, averaged over the references — the
//    continuous signal LongRoPE2 searched on, informative for models too small
//    to answer exactly.
//
// Tasks (needle: "One of the special magic numbers for KEY is: VALUE.", KEY an
// adjective-noun word pair, VALUE 7 digits, as RULER's niah_* with word keys):
//   niah_single      one needle
//   niah_multikey    the needle and 3 distractor needles with other keys
//   niah_multivalue  4 needles with the same key: all 4 values are asked
//   niah_multiquery  4 needles with 4 keys: all 4 are asked
//   vt               variable tracking: VAR ABCDE = 12345, then 4 hops
//                    VAR FGHIJ = VAR ABCDE …; every name holding the value is asked
//   kv               key–value retrieval by depth ("lost in the middle"): records
//                    "The code for NAME is 12345." (the default model's training
//                    format), the asked one at the depth, the others anywhere
// The grid depth places the asked needle (vt: the chain's first line, the hops
// after it); other needles go at seeded random depths.
//
// Two wordings: `ruler` (RULER's templates, the ones published scores use) and
// `compact` (no instruction, "The magic number for KEY is VALUE.", one-word keys,
// 5-digit values, short questions) so every task fits a 256-token prompt — the
// built-in default model's trained length.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ropescale/eval/eval_target.h"

namespace ropescale {

enum class TaskKind { NiahSingle, NiahMultikey, NiahMultivalue, NiahMultiquery, VariableTracking, KeyValue };

struct TaskInfo {
  TaskKind kind;
  const char* name;     // "niah_single", …
  const char* summary;  // one line, for --help and reports
};
const std::vector<TaskInfo>& task_infos();
const TaskInfo& task_info(TaskKind k);
std::optional<TaskKind> parse_task(std::string_view name);
// "niah_single, niah_multikey, …": every task name.
std::string task_names();

enum class TaskWording { Ruler, Compact };
std::optional<TaskWording> parse_task_wording(std::string_view name);

struct TaskOptions {
  std::vector<TaskKind> tasks;
  std::vector<int64_t> lengths;  // prompt lengths in tokens
  std::vector<double> depths;    // 0 … 1
  int trials = 2;
  uint64_t seed = 1;
  std::string haystack;          // filler text; empty = RULER's "noise" (the passkey sentences)
  int kv_records = 4;            // kv: records in the haystack (2 … 20)
  TaskWording wording = TaskWording::Ruler;
};

struct TaskSample : RetrievalPrompt {  // answers: each reference's tokens after the prompt
  TaskKind kind = TaskKind::NiahSingle;
  int64_t length = 0;  // the grid's length; ids.size() ≤ length
  double depth = 0;
  int trial = 0;
  std::vector<std::string> references;  // every one must occur in the output
  std::vector<int64_t> needle_at;       // token index of each needle, the asked one first
  std::vector<int64_t> needle_tokens;   // and its length
  int64_t haystack_begin = 0, haystack_end = 0;  // the haystack with its needles: ids[begin, end)
};

// The samples of every task × length × depth × trial. Throws
// std::invalid_argument when a length cannot hold a task's fixed parts.
std::vector<TaskSample> build_task_samples(const Tokenizer& tok, const TaskOptions& options);

// RULER's string_match_all for one sample: the share of `references` found in `prediction`.
double string_match_all(const std::string& prediction, const std::vector<std::string>& references);

struct TaskTrial {
  std::string method;
  TaskKind kind = TaskKind::NiahSingle;
  int64_t length = 0;
  double depth = 0;
  int trial = 0;
  std::vector<std::string> references;
  std::string generated;
  double score = 0;       // string_match_all, 0 … 1
  double needle_nll = 0;  // nats per answer token, mean over the references
};

// Every method on every sample (method-major).
std::vector<TaskTrial> evaluate_tasks(const EvalTarget& target, const std::vector<RopeSetting>& methods,
                                      const std::vector<TaskSample>& samples, const EvalProgress& progress = {});

struct TaskCell {
  std::string method;
  TaskKind kind = TaskKind::NiahSingle;
  int64_t length = 0;
  double depth = 0;       // NaN in a total over depths
  int trials = 0;
  int exact = 0;          // samples with every reference found
  double score = 0;       // mean string_match_all
  double needle_nll = 0;  // mean
};
// By (method, task, length, depth) in first-seen order; with `over_depths`, by
// (method, task, length), depth NaN.
std::vector<TaskCell> task_cells(const std::vector<TaskTrial>& trials, bool over_depths = false);

}  // namespace ropescale
