#include "ropescale/train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "ropescale/config/error.h"
#include "ropescale/kernels/thread_pool.h"
#include "ropescale/config/llama2c_header.h"
#include "ropescale/config/mapped_file.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/session.h"
#include "ropescale/train/llama_backward.h"

namespace ropescale {

namespace {

using json = nlohmann::json;
constexpr char kStateMagic[8] = {'R', 'S', 'A', 'D', 'A', 'M', '0', '1'};

void save_state(const std::string& path, AdamW& opt, int64_t step) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw_unreadable(path, "cannot open the optimizer state for writing");
  f.write(kStateMagic, 8);
  const int64_t header[2] = {step, opt.steps};
  f.write(reinterpret_cast<const char*>(header), sizeof header);
  for (auto* set : {&opt.m, &opt.v})
    for (const auto& t : weight_tensors(*set)) {
      const uint64_t n = t.values->size();
      f.write(reinterpret_cast<const char*>(&n), 8);
      f.write(reinterpret_cast<const char*>(t.values->data()), std::streamsize(n * sizeof(float)));
    }
  if (!f) throw_unreadable(path, "write failed");
}

int64_t load_state(const std::string& path, AdamW& opt) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_unreadable(path, "cannot open the optimizer state to resume from");
  char magic[8];
  int64_t header[2];
  if (!f.read(magic, 8) || std::memcmp(magic, kStateMagic, 8) != 0) throw_unreadable(path, "not a ropescale optimizer state");
  if (!f.read(reinterpret_cast<char*>(header), sizeof header) || header[0] < 0)
    throw_unreadable(path, "truncated optimizer state");
  for (auto* set : {&opt.m, &opt.v})
    for (const auto& t : weight_tensors(*set)) {
      uint64_t n = 0;
      if (!f.read(reinterpret_cast<char*>(&n), 8) || n != t.values->size())
        throw_unreadable(path, "optimizer state does not match the model's tensor shapes (" + t.name + ")");
      if (!f.read(reinterpret_cast<char*>(t.values->data()), std::streamsize(n * sizeof(float))))
        throw_unreadable(path, "truncated optimizer state");
    }
  opt.steps = header[1];
  return header[0];
}

void write_checkpoint(const LlamaModel& model, const Llama2cTokenizer& vocab, const TrainOptions& o, const json& recipe,
                      int64_t step, AdamW& opt, const json& log) {
  json training = recipe;
  training["steps_done"] = step;
  training["steps"] = o.steps;
  training["ctx"] = o.ctx;
  training["batch"] = o.batch;
  training["lr"] = o.schedule.lr;
  training["min_lr"] = o.schedule.min_lr;
  training["warmup"] = o.schedule.warmup;
  training["weight_decay"] = o.weight_decay;
  training["clip"] = o.clip;
  training["seed"] = o.seed;
  training["synthetic"] = {{"passkey", o.mix.passkey}, {"key_value", o.mix.key_value}, {"repeat", o.mix.repeat}, {"copy_gap", o.mix.copy_gap}, {"recall", o.mix.recall}};
  if (!o.rope_scaling.is_null()) training["rope_scaling"] = o.rope_scaling;
  training["last"] = log;
  const auto bytes = serialize_gguf_model(model, vocab, WeightType::F32, o.rope_scaling, training);
  const std::string tmp = o.out + ".tmp";
  write_file(tmp, bytes, "the checkpoint of " + o.out);
  std::filesystem::rename(tmp, o.out);  // a crash never leaves half a checkpoint
  save_state(o.out + ".adam", opt, step);
}

}  // namespace

LlamaModel new_llama_model(const LlamaHParams& hp_in, uint64_t seed) {
  LlamaHParams hp = hp_in;
  if (hp.dim <= 0 || hp.n_heads <= 0 || hp.dim % hp.n_heads || hp.n_kv_heads <= 0 || hp.n_heads % hp.n_kv_heads ||
      hp.n_layers <= 0 || hp.hidden_dim <= 0 || hp.vocab_size <= 3 || hp.trained_context <= 1)
    throw std::invalid_argument("new model: dim must divide into heads, heads into kv_heads, and every size be positive");
  hp.head_dim = hp.dim / hp.n_heads;
  if (hp.head_dim % 2) throw std::invalid_argument("new model: head_dim " + std::to_string(hp.head_dim) + " must be even");
  hp.layout = PairLayout::Interleaved;
  Llama2cHeader h;
  h.dim = hp.dim, h.hidden_dim = hp.hidden_dim, h.n_layers = hp.n_layers, h.n_heads = hp.n_heads;
  h.n_kv_heads = hp.n_kv_heads, h.vocab_size = hp.vocab_size, h.seq_len = hp.trained_context;
  LlamaModel m;
  m.path = "ropescale-trained";
  m.position = model_config_from_llama2c(h, m.path);
  m.position.name = "ropescale-trained";
  m.hp = hp;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const float residual = 1.0f / std::sqrt(2.0f * float(hp.n_layers));
  auto fill = [&](size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng) * scale;
    return v;
  };
  const size_t qd = size_t(hp.n_heads) * hp.head_dim, kvd = size_t(hp.n_kv_heads) * hp.head_dim;
  m.token_embedding = fill(size_t(hp.vocab_size) * hp.dim);
  for (int l = 0; l < hp.n_layers; ++l) {
    LlamaLayerWeights w;
    w.attn_norm.assign(hp.dim, 1.0f);
    w.ffn_norm.assign(hp.dim, 1.0f);
    w.wq = fill(qd * hp.dim), w.wk = fill(kvd * hp.dim), w.wv = fill(kvd * hp.dim), w.wo = fill(hp.dim * qd, residual);
    w.w1 = fill(size_t(hp.hidden_dim) * hp.dim), w.w3 = fill(size_t(hp.hidden_dim) * hp.dim);
    w.w2 = fill(size_t(hp.dim) * hp.hidden_dim, residual);
    m.layers.push_back(std::move(w));
  }
  m.final_norm.assign(hp.dim, 1.0f);
  return m;
}

double validation_loss(const LlamaModel& model, const RopeSpec& rope, const Tokenizer& tok, const TrainingCorpus& corpus,
                       int64_t ctx, int count, uint64_t seed, int threads) {
  const auto& stream = corpus.valid.size() > size_t(ctx) + 1 ? corpus.valid : corpus.train;
  std::vector<std::vector<int>> seqs;
  for (int i = 0; i < count; ++i) {
    const auto kind = i % 4 == 1 ? SequenceKind::Passkey : i % 4 == 3 ? SequenceKind::KeyValue : SequenceKind::Text;
    std::vector<int> seq;
    if (kind == SequenceKind::Text) {
      const size_t span = stream.size() - size_t(ctx) - 1;
      const size_t at = span * size_t(i) / size_t(std::max(1, count));
      seq.assign(stream.begin() + long(at), stream.begin() + long(at) + ctx + 1);
    } else {
      seq = synthetic_document(tok, stream, ctx + 1, kind, seed * 1000003ull + uint64_t(i));
      if (seq.empty()) continue;  // the context is too short for synthetic documents
    }
    seqs.push_back(std::move(seq));
  }
  // One sequence per task (single-threaded each) when there are enough of them.
  const int n = static_cast<int>(seqs.size());
  const bool per_sequence = n >= ThreadPool::global().threads_for(threads);
  std::vector<double> losses(n);
  ThreadPool::global().parallel_for(n, per_sequence ? threads : 1, [&](int i) {
    losses[i] = llama_loss_and_gradients(model, rope, seqs[i], nullptr, 1.0f, per_sequence ? 1 : threads);
  });
  double sum = 0;
  for (double l : losses) sum += l;
  return n ? sum / n : 0.0;
}

TrainLogRow train_llama(LlamaModel& model, const Llama2cTokenizer& vocab, const TrainingCorpus& corpus,
                        const TrainOptions& o, const json& recipe, const std::function<void(const TrainLogRow&)>& on_log) {
  if (o.ctx < 2 || o.steps < 1 || o.batch < 1) throw std::invalid_argument("train: ctx >= 2, steps >= 1 and batch >= 1");
  if (corpus.train.size() < size_t(o.ctx) + 2) throw std::invalid_argument("train: the training text is shorter than one sequence");
  if (o.out.empty()) throw std::invalid_argument("train: no output path");
  const RopeSpec rope = rope_setting_for_model(model, o.rope_scaling, "").spec;
  Schedule schedule = o.schedule;
  schedule.total = o.steps;
  AdamW opt(model);
  opt.weight_decay = o.weight_decay;
  int64_t step = 0;
  if (o.resume) step = load_state(o.out + ".adam", opt);
  LlamaModel grad = zero_gradients(model);
  // Data parallel: with T threads and a batch of at least T, T runners each
  // take sequences b ≡ w (mod T) single-threaded into their own gradient, then
  // the gradients are summed in runner order — whole sequences per core
  // instead of small matrix products split in two. Deterministic for a given
  // T; T = 1 is the sequential loop.
  const int runners = std::min(ThreadPool::global().threads_for(o.threads), o.batch);
  std::vector<LlamaModel> runner_grads(runners > 1 ? runners : 0, runners > 1 ? zero_gradients(model) : LlamaModel{});
  const auto grad_tensors = weight_tensors(grad);
  json history = json::array();
  TrainLogRow row;
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  int64_t tokens = 0;
  const int64_t first = step;
  for (; step < o.steps; ++step) {
    for (const auto& t : grad_tensors) std::fill(t.values->begin(), t.values->end(), 0.0f);
    std::vector<double> losses(o.batch);
    const auto run_sequence = [&](int b, LlamaModel& into, int threads) {
      const auto seq = training_sequence(vocab, corpus.train, o.ctx + 1, o.mix, o.seed, step, b);
      losses[b] = llama_loss_and_gradients(model, rope, seq, &into, 1.0f / float(o.batch), threads);
    };
    if (runners <= 1) {
      for (int b = 0; b < o.batch; ++b) run_sequence(b, grad, o.threads);
    } else {
      ThreadPool::global().parallel_for(runners, runners, [&](int w) {
        for (const auto& t : weight_tensors(runner_grads[w])) std::fill(t.values->begin(), t.values->end(), 0.0f);
        for (int b = w; b < o.batch; b += runners) run_sequence(b, runner_grads[w], 1);
      });
      for (auto& g : runner_grads) {
        const auto from = weight_tensors(g);
        for (size_t i = 0; i < from.size(); ++i) {
          float* dst = grad_tensors[i].values->data();
          const float* src = from[i].values->data();
          for (size_t j = 0; j < from[i].values->size(); ++j) dst[j] += src[j];
        }
      }
    }
    double loss = 0;
    for (double l : losses) loss += l / o.batch;
    tokens += int64_t(o.batch) * o.ctx;
    const double norm = clip_gradients(grad, o.clip);
    const double lr = schedule.at(step);
    opt.step(model, grad, lr);
    const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
    row = {step + 1, lr, loss, norm, -1.0, double(tokens) / std::max(elapsed, 1e-9), elapsed,
           elapsed / double(step + 1 - first) * double(o.steps - step - 1)};
    const bool last = step + 1 == o.steps || (o.stop_after > 0 && step + 1 - first == o.stop_after);
    if ((o.eval_every > 0 && (step + 1) % o.eval_every == 0) || last)
      row.valid_loss = validation_loss(model, rope, vocab, corpus, o.ctx, o.valid_sequences, o.seed, o.threads);
    if (on_log) on_log(row);
    if (last || (o.checkpoint_every > 0 && (step + 1) % o.checkpoint_every == 0))
      write_checkpoint(model, vocab, o, recipe, step + 1, opt,
                       {{"step", row.step}, {"loss", row.loss}, {"valid_loss", row.valid_loss}, {"lr", row.lr}});
    if (last) break;
  }
  return row;
}

}  // namespace ropescale
