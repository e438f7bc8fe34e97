// The training loop behind `ropescale train` and `ropescale finetune`: batches
// of sequences (gradient accumulation), AdamW with warm-up + cosine, global
// gradient clipping, validation loss, GGUF checkpoints with the optimizer
// state beside them (FILE.gguf + FILE.gguf.adam), and resume.
// Deterministic for a given seed and thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "ropescale/model/llama_model.h"
#include "ropescale/model/tokenizer.h"
#include "ropescale/train/optimizer.h"
#include "ropescale/train/training_data.h"

namespace ropescale {

struct TrainOptions {
  int64_t ctx = 256;              // tokens per sequence (the context trained at)
  int64_t steps = 1000;
  int batch = 8;                  // sequences per step
  Schedule schedule;              // lr, min_lr, warmup (total = steps)
  double weight_decay = 0.1;
  double clip = 1.0;
  uint64_t seed = 1;
  int threads = 0;
  SyntheticMix mix;
  int64_t eval_every = 100;       // validation loss every N steps (and at the end)
  int valid_sequences = 16;
  int64_t checkpoint_every = 0;   // 0 = only at the end
  std::string out;                // checkpoint path (.gguf)
  nlohmann::json rope_scaling;    // the scaling to train with, as a rope dict (null = the model's own)
  bool resume = false;            // continue from out + ".adam"
  int64_t stop_after = 0;         // > 0: stop (with a checkpoint) after this many steps of this run
};

struct TrainLogRow {
  int64_t step = 0;               // steps completed
  double lr = 0, loss = 0, grad_norm = 0;
  double valid_loss = -1;         // < 0: not measured at this step
  double tokens_per_second = 0, elapsed = 0, eta = 0;
};

// A new model: normal(0, 0.02) weights (residual projections scaled by
// 1/√(2·layers)), unit norms, Meta (interleaved) pair order, plain RoPE θ = 10000.
LlamaModel new_llama_model(const LlamaHParams& hp, uint64_t seed);

// Trains `model` in place; writes checkpoints (GGUF with `vocab`, the rope
// setting trained with, and `recipe` + the loop's settings in ropescale.training).
// Returns the last log row. Throws std::invalid_argument / ConfigError.
TrainLogRow train_llama(LlamaModel& model, const Llama2cTokenizer& vocab, const TrainingCorpus& corpus,
                        const TrainOptions& options, const nlohmann::json& recipe,
                        const std::function<void(const TrainLogRow&)>& on_log = {});

// Mean loss of the validation set: `count` text windows of `valid` and as many
// synthetic documents, fixed by the seed.
double validation_loss(const LlamaModel& model, const RopeSpec& rope, const Tokenizer& tok, const TrainingCorpus& corpus,
                       int64_t ctx, int count, uint64_t seed, int threads);

}  // namespace ropescale
