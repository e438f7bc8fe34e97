// Golden sets: an evaluation recorded once (its results and the exact inputs
// that produced them), re-run later — after a config change, in CI, in a weekly
// cron — and compared by gates. A gate fails when
//  - short-context perplexity (ctx ≤ trained) is worse by more than +1 %;
//  - long-context perplexity is worse by more than its tolerance (+5 %);
//  - a retrieval needle NLL (passkey, each task) rises by more than 0.1 nats/token;
//  - a retrieval accuracy (passkey exact rate, task score) drops by more than 10 points;
// or when a result the golden run had is missing. Everything compares the JSON
// contract (eval_json), so a golden file is readable without ropescale.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ropescale {

struct GoldenGates {
  double short_ppl_percent = 1.0;  // allowed rise of perplexity at ctx ≤ trained, %
  double long_ppl_percent = 5.0;   // allowed rise past the trained length, %
  double needle_nll = 0.1;         // allowed rise of a needle NLL, nats per answer token
  double accuracy_points = 10.0;   // allowed drop of an accuracy, percentage points
};

struct GateCheck {
  std::string kind;    // "short ppl", "long ppl", "passkey exact", "passkey needle NLL", "TASK score", "TASK needle NLL"
  std::string method;
  int64_t length = 0;  // ctx or prompt length
  double before = 0, after = 0;
  double change = 0;   // after − before, in the gate's unit (% for perplexity, points for accuracy, nats for NLL)
  double limit = 0;    // the allowed change (a rise for ppl/NLL, a drop for accuracy)
  std::string unit;    // "%", "points", "nats"
  bool pass = true;
  std::string why;     // set when failed: what moved, or what is missing
};

// Every gate of `golden` (an eval_json document) checked against `current`.
std::vector<GateCheck> compare_golden(const nlohmann::json& golden, const nlohmann::json& current, const GoldenGates& gates);

// The gates as JSON, and back (absent keys keep the defaults; throws std::invalid_argument on a wrong type or a negative value).
nlohmann::json gates_json(const GoldenGates& g);
GoldenGates gates_from_json(const nlohmann::json& j);

// A fixed-width table: kind, method, length, before, after, change, limit, PASS/FAIL; then the count.
std::string golden_table(const std::vector<GateCheck>& checks);

}  // namespace ropescale
