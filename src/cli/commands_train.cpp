// train: a new Llama model from text (+ synthetic retrieval documents);
// finetune: continue training a model at an extended length with a scaling in place.
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "commands.h"
#include "runtime_flags.h"
#include "output.h"
#include "progress.h"
#include "ropescale/config/error.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/session.h"
#include "ropescale/train/trainer.h"

namespace ropescale::cli {

namespace {

struct TrainCliOptions {
  std::string model, tokenizer, out, log, rope_scaling, init;
  std::vector<std::string> texts;
  int64_t ctx = 256, steps = 1000, eval_every = 100, checkpoint_every = 0, log_every = 10;
  int batch = 8, threads = 0, valid = 16;
  int dim = 128, layers = 4, heads = 4, kv_heads = 2, hidden = 352;
  double lr = 3e-3, min_lr = 3e-4, weight_decay = 0.1, clip = 1.0, passkey = 0.25, key_value = 0.25, repeat = 0.0,
         copy_gap = 0.5, recall = 0.0;
  int64_t warmup = 100;
  uint64_t seed = 1;
  bool resume = false;
  int64_t stop_after = 0;
};

void run_training(const TrainCliOptions& o, bool finetune) {
  // Every training sequence allocates and frees the same activation buffers
  // (MBs each): keep freed memory in the heap rather than returning it to the
  // kernel and faulting fresh zeroed pages back in for the next sequence.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (o.texts.empty()) throw_unreadable("--text", "give at least one training text file");
  TrainOptions t;
  t.ctx = o.ctx, t.steps = o.steps, t.batch = o.batch, t.threads = o.threads, t.seed = o.seed;
  t.schedule.lr = o.lr, t.schedule.min_lr = o.min_lr, t.schedule.warmup = o.warmup;
  t.weight_decay = o.weight_decay, t.clip = o.clip, t.eval_every = o.eval_every, t.valid_sequences = o.valid;
  t.checkpoint_every = o.checkpoint_every, t.stop_after = o.stop_after, t.out = o.out, t.resume = o.resume;
  if (!o.rope_scaling.empty()) t.rope_scaling = parse_rope_override(o.rope_scaling);
  t.mix = {o.passkey, o.key_value, o.repeat, o.copy_gap, o.recall};
  if (!(o.copy_gap >= 0 && o.copy_gap <= 1)) throw_unreadable("--copy-gap", "must be a share, 0 … 1");
  if (o.passkey < 0 || o.key_value < 0 || o.repeat < 0 || o.recall < 0 || o.passkey + o.key_value + o.repeat + o.recall > 1)
    throw_unreadable("--passkey/--key-value/--repeat/--recall", "shares must be >= 0 and sum to at most 1");
  if (!(o.lr > 0) || !(o.min_lr >= 0) || o.min_lr > o.lr) throw_unreadable("--lr/--min-lr", "need lr > 0 and 0 <= min-lr <= lr");

  LlamaModel model;
  Llama2cTokenizer vocab = Llama2cTokenizer::byte_level();
  nlohmann::json recipe;
  if (finetune) {
    model = load_model(o.resume ? o.out : o.model);
    vocab = vocabulary_for_model(model, o.model, o.tokenizer);
    recipe["finetuned_from"] = o.model;
    if (o.rope_scaling.empty()) throw_unreadable("--rope-scaling", "finetune needs the scaling to train with");
  } else if (o.resume) {
    model = load_model(o.out);
    vocab = load_gguf_tokenizer(o.out);
  } else if (!o.init.empty()) {
    // A curriculum stage: the weights of an earlier run, trained on at --ctx from here.
    model = load_model(o.init);
    vocab = load_gguf_tokenizer(o.init);
    if (rope_spec_for_model(model).type != RopeType::Default)
      throw_unreadable(o.init, "--init takes a model trained without rope scaling (use finetune to continue a scaled one)");
    model.hp.trained_context = static_cast<int>(o.ctx);
    model.position.max_position_embeddings = o.ctx;
    model.position.original_max_position_embeddings.reset();
    recipe["initialized_from"] = std::filesystem::path(o.init).filename().string();
  } else {
    LlamaHParams hp;
    hp.dim = o.dim, hp.hidden_dim = o.hidden, hp.n_layers = o.layers, hp.n_heads = o.heads, hp.n_kv_heads = o.kv_heads;
    hp.vocab_size = vocab.vocab_size(), hp.trained_context = static_cast<int>(o.ctx);
    try {
      model = new_llama_model(hp, o.seed);
    } catch (const std::invalid_argument& e) {
      throw_unreadable("--dim/--heads/--kv-heads", e.what());
    }
    recipe["tokenizer"] = "byte-level (259: <unk> <s> </s> + 256 bytes)";
  }
  (void)rope_setting_for_model(model, t.rope_scaling, "");  // a bad setting fails before any work
  std::vector<std::string> names;
  std::vector<std::string> texts;
  for (const auto& p : o.texts) texts.push_back(read_file_text(p)), names.push_back(std::filesystem::path(p).filename().string());
  recipe["data"] = names;
  recipe["command"] = command_line();
  const TrainingCorpus corpus = build_corpus(vocab, texts, 0.02);
  const auto& hp = model.hp;
  int64_t params = 0;
  for (const auto& t : weight_tensors(model)) params += int64_t(t.values->size());
  std::fprintf(stderr,
               "ropescale: %s %s: %d layers, dim %d, %d heads / %d kv (head_dim %d), hidden %d, vocab %d — %.2f M parameters\n"
               "           %zu training tokens, %zu held out; %lld steps × %d sequences × %lld tokens%s%s\n",
               finetune ? "fine-tuning" : "training", o.out.c_str(), hp.n_layers, hp.dim, hp.n_heads, hp.n_kv_heads,
               hp.head_dim, hp.hidden_dim, hp.vocab_size, double(params) / 1e6, corpus.train.size(), corpus.valid.size(),
               (long long)o.steps, o.batch, (long long)o.ctx, o.rope_scaling.empty() ? "" : ", rope ",
               o.rope_scaling.c_str());
  std::ofstream csv;
  if (!o.log.empty()) {
    csv.open(o.log, o.resume ? std::ios::app : std::ios::trunc);
    if (!csv) throw_unreadable(o.log, "cannot open the training log for writing");
    if (!o.resume) csv << "step,lr,loss,grad_norm,valid_loss,tokens_per_second,elapsed_s\n";
  }
  const auto last = train_llama(model, vocab, corpus, t, recipe, [&](const TrainLogRow& r) {
    if (csv.is_open())
      csv << fmt::format("{},{:.6g},{:.6f},{:.4f},{},{:.1f},{:.1f}\n", r.step, r.lr, r.loss, r.grad_norm,
                         r.valid_loss >= 0 ? fmt::format("{:.6f}", r.valid_loss) : "", r.tokens_per_second, r.elapsed)
          << std::flush;
    if (r.step % o.log_every == 0 || r.valid_loss >= 0 || r.step == o.steps)
      std::fprintf(stderr, "step %6lld/%lld  loss %.4f%s  lr %.2e  |g| %.3f  %.0f tok/s  elapsed %s  ETA %s\n",
                   (long long)r.step, (long long)o.steps, r.loss,
                   r.valid_loss >= 0 ? fmt::format("  valid {:.4f}", r.valid_loss).c_str() : "", r.lr, r.grad_norm,
                   r.tokens_per_second, format_duration(r.elapsed).c_str(), format_duration(r.eta).c_str());
  });
  std::printf("%s: step %lld, loss %.4f, valid %.4f, %.0f tokens/s\n", o.out.c_str(), (long long)last.step, last.loss,
              last.valid_loss, last.tokens_per_second);
}

void add_loop_options(CLI::App* c, TrainCliOptions& o) {
  c->add_option("--text", o.texts, "Training text file(s); the last 2% of each is held out for validation")->required();
  c->add_option("--out", o.out, "Checkpoint to write (GGUF; the optimizer state goes to OUT.adam)")->required();
  c->add_option("--ctx", o.ctx, "Tokens per training sequence")->capture_default_str()->check(CLI::Range(int64_t{8}, int64_t{1} << 20));
  c->add_option("--steps", o.steps, "Optimizer steps")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--batch", o.batch, "Sequences per step (gradient accumulation)")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--lr", o.lr, "Peak learning rate")->capture_default_str();
  c->add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine")->capture_default_str();
  c->add_option("--warmup", o.warmup, "Warm-up steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str();
  c->add_option("--clip", o.clip, "Global gradient-norm clip (0 = none)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o.seed, "Seed (initialization and data order)")->capture_default_str();
  c->add_option("--threads", o.threads, "Threads (0 = all cores)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--passkey", o.passkey, "Share of synthetic passkey documents")->capture_default_str();
  c->add_option("--key-value", o.key_value, "Share of synthetic key-value recall documents")->capture_default_str();
  c->add_option("--repeat", o.repeat, "Share of synthetic copy documents (distinct characters, then copies of them)")
      ->capture_default_str();
  c->add_option("--copy-gap", o.copy_gap, "Share of copy documents with a window of text before each copy")
      ->capture_default_str();
  c->add_option("--recall", o.recall, "Share of synthetic recall documents (name: code records, then recalled at random)")
      ->capture_default_str();
  c->add_option("--eval-every", o.eval_every, "Validation loss every N steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--valid", o.valid, "Validation sequences")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--checkpoint-every", o.checkpoint_every, "Write the checkpoint every N steps (0 = at the end)")->capture_default_str();
  c->add_option("--log", o.log, "Training curve as CSV");
  c->add_option("--log-every", o.log_every, "Progress line every N steps")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_flag("--resume", o.resume, "Continue from --out and its optimizer state");
  c->add_option("--stop-after", o.stop_after, "Stop after N steps of this run (checkpointed; continue with --resume)")
      ->check(CLI::NonNegativeNumber);
}

}  // namespace

void add_train_commands(CLI::App& app, int& exit_code) {
  {
    auto o = std::make_shared<TrainCliOptions>();
    auto* c = app.add_subcommand("train", "Train a new Llama model (byte-level tokenizer) on text plus synthetic retrieval documents");
    add_loop_options(c, *o);
    c->add_option("--dim", o->dim, "Model width")->capture_default_str();
    c->add_option("--layers", o->layers, "Layers")->capture_default_str();
    c->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
    c->add_option("--kv-heads", o->kv_heads, "KV heads (GQA)")->capture_default_str();
    c->add_option("--hidden", o->hidden, "SwiGLU width")->capture_default_str();
    c->add_option("--init", o->init,
                  "Start from this checkpoint's weights (an earlier curriculum stage; its shape replaces --dim…--hidden)")
        ->check(CLI::ExistingFile);
    c->callback([o, &exit_code] { run_training(*o, false), exit_code = 0; });
  }
  {
    auto o = std::make_shared<TrainCliOptions>();
    o->steps = 100, o->lr = 3e-4, o->min_lr = 3e-5, o->warmup = 10, o->batch = 2;
    auto* c = app.add_subcommand("finetune", "Continue training a model at an extended length with a rope scaling in place");
    c->add_option("--model", o->model, "Model to start from (GGUF, llama2.c, HF directory)")->required();
    c->add_option("--tokenizer", o->tokenizer, "Tokenizer (default: the model's own or beside it)");
    c->add_option("--rope-scaling", o->rope_scaling, "The scaling to train with, as vLLM JSON (recorded in the new checkpoint)")->transform(rope_scaling_argument())->required();
    add_loop_options(c, *o);
    c->callback([o, &exit_code] { run_training(*o, true), exit_code = 0; });
  }
}

}  // namespace ropescale::cli
