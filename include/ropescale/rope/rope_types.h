// The registry of rope types: one row per scaling family holding everything
// ropescale knows about it — its names, its parameters (the schema the config
// reader parses by), whether it needs the original length or follows the
// current length, how far it reaches, what each engine can express, its
// validation and its frequency formula. Modelled on Hugging Face's
// ROPE_INIT_FUNCTIONS / ROPE_VALIDATION_FUNCTIONS, but typed and in one place.
//
// Every layer that needs to know something about a type reads its row:
// the config reader (schema, defaults), `check` (schema and flags), `export`
// (engine support), the GGUF / HF writers (encodings), the evaluation's
// `--methods` shorthands and report colours, `convert`'s notes.
//
// Adding a scaling type (ARCHITECTURE.md, "Where to add a method"):
//   1. include/ropescale/rope/rope_spec.h — the enum value and any new RopeSpec fields;
//   2. src/rope/rope_types.cpp — its row and its frequency formula;
//   3. src/rope/frequencies_test.cpp — hand-derived values.
// src/rope/rope_types_test.cpp walks every row through parse → validate →
// freqs → export → shorthand → GGUF round trip, so the new row is covered.
//
// Pure data and math: no files, JSON or CLI.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "ropescale/rope/rope_spec.h"

namespace ropescale {

struct RopeFrequencies;

// How a parameter's value is read and checked.
enum class ParamKind {
  Factor,         // number, finite, > 0 and ≤ kMaxFactor            → double
  Length,         // positive integer number of tokens                → int64_t
  Number,         // finite number > 0                                → double
  OptionalNumber, // number or absent (its meaning lives in the formula) → std::optional<double>
  Flag,           // true / false                                     → bool
  PairList,       // rotary_dim/2 finite numbers > 0                   → std::vector<double>
  Informational,  // accepted and carried, not used by the formula (YaRN `finetuned`)
};

// Where a parsed value lands in the RopeSpec.
using ParamField = std::variant<std::monostate, double RopeSpec::*, int64_t RopeSpec::*,
                                std::optional<double> RopeSpec::*, bool RopeSpec::*,
                                std::vector<double> RopeSpec::*>;

// A missing value: required (error), a default, or HF v5's derived factor.
enum class ParamDefault {
  None,          // no default: optional values stay unset
  Value,         // `default_value`
  LengthRatio,   // max_position_embeddings / original_max_position_embeddings (HF v5 yarn, longrope)
};

struct RopeParam {
  std::string_view key;          // the HF key (rope_scaling / rope_parameters)
  ParamKind kind;
  ParamField field;
  bool required_by_hf;           // HF's validator raises KeyError without it (`check` reports it)
  ParamDefault when_missing = ParamDefault::None;
  double default_value = 0;
  bool zero_means_default = false;  // HF reads `get(key) or default`: 0 and null become the default
};

// How faithfully an engine runs a type from the setting ropescale exports.
enum class EngineSupport {
  Exact,        // the same frequencies (possibly spelled differently, e.g. NTK as rope_theta)
  Approximate,  // the closest static stand-in; `export` says what differs
  None,         // the engine cannot express it at all
};

// How a GGUF file carries the type for llama.cpp.
enum class GgufEncoding {
  Plain,            // no scaling keys (default RoPE)
  ScalingKeys,      // rope.scaling.type = ggml_name, rope.scaling.factor, original length (+ YaRN betas)
  FreqBase,         // folded into rope.freq_base (NTK-aware)
  FreqsTensor,      // per-pair divisors as the rope_freqs.weight tensor (llama3, any static table)
  LongRopeFreqs,    // the long factors as rope_freqs.weight + rope.scaling.attn_factor (llama.cpp's llama
                    // architecture has no short/long switch: exact past the trained length only)
  NotExpressible,   // length-dependent: llama.cpp runs the file as plain RoPE
};

// What a `--methods` shorthand ("yarn:4") takes after the colon.
enum class ShorthandArg { None, Factor, OptionalFactor, File };

struct RopeTypeInfo {
  RopeType type;
  std::string_view name;                        // canonical: HF's rope_type where HF has one
  std::span<const std::string_view> aliases;    // also accepted on input ("su", "none", "ntk-aware" …)
  std::string_view shorthand;                   // its name in --methods ("none" for default)
  std::string_view summary;                     // one line for help texts and `inspect`
  bool hf_has_type;                             // transformers has this rope_type (ntk, dynamic_yarn are ropescale's)
  std::span<const RopeParam> params;            // besides rope_type, rope_theta, partial_rotary_factor
  bool needs_original_length;                   // original_max_position_embeddings is filled in when missing
  bool length_dependent;                        // frequencies follow the current sequence length
  bool reach_scales_with_factor;                // reaches factor × original length (else its trained length)
  std::optional<RopeType> length_following_variant;  // the dynamic twin of a static type (short-prompt pitfall)
  ShorthandArg shorthand_arg;
  bool in_default_comparison;                   // `eval` compares it when --methods is not given
  std::string_view colour;                      // report line colour
  EngineSupport hf, vllm, llama_cpp;
  GgufEncoding gguf;
  std::string_view ggml_name;                   // llama.cpp's rope.scaling.type for ScalingKeys
  // Type-specific structural checks; "" when usable, else a sentence naming field and value.
  std::string (*validate)(const RopeSpec&);
  // The formula: fills inv_freq (d/2), attention_factor, effective_theta/factor.
  void (*frequencies)(const RopeSpec&, std::optional<int64_t> seq_len, RopeFrequencies&);
};

// Every row, in the order help texts and default comparisons list them.
std::span<const RopeTypeInfo> rope_types();
// The row of a type (every RopeType has one).
const RopeTypeInfo& rope_type_info(RopeType t);
// By canonical name or alias; nullptr when unknown.
const RopeTypeInfo* find_rope_type(std::string_view name);
// "default, linear, ntk, …" — the canonical names, for messages.
std::string rope_type_names();
// The parameter row for `key` of a type, nullptr when the type has no such key.
const RopeParam* find_param(const RopeTypeInfo& info, std::string_view key);

// The context a setting reaches from a model trained at `trained` tokens:
// factor × trained for types that scale their reach, else `trained`.
int64_t rope_reach(const RopeSpec& spec, int64_t trained);

}  // namespace ropescale
