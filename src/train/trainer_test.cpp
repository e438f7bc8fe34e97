#include "ropescale/train/trainer.h"

#include "ropescale/train/llama_backward.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "ropescale/kernels/thread_pool.h"

#include "ropescale/eval/passkey.h"
#include "ropescale/model/gguf_model.h"
#include "ropescale/model/session.h"
#include "test_support.h"

namespace ropescale {
namespace {

std::string kjv() {
  const auto path = test::shared_dir() / "data/kjv_genesis.txt";
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  // Without ../shared: a built-in paragraph, repeated (the smoke test still trains).
  if (text.empty())
    for (int i = 0; i < 400; ++i) text += "In the beginning God created the heaven and the earth. And the earth was without form. ";
  return text;
}

LlamaHParams small_shape(int ctx) {
  LlamaHParams hp;
  hp.dim = 32, hp.hidden_dim = 64, hp.n_layers = 2, hp.n_heads = 2, hp.n_kv_heads = 1, hp.vocab_size = 259;
  hp.trained_context = ctx;
  return hp;
}

TrainOptions small_options(const std::string& out) {
  TrainOptions o;
  o.ctx = 48, o.steps = 50, o.batch = 2, o.threads = 1, o.eval_every = 0, o.valid_sequences = 8;
  o.schedule = {3e-3, 3e-4, 5, 50};
  o.out = out;
  return o;
}

std::vector<float> flatten(LlamaModel& m) {
  std::vector<float> out;
  for (const auto& t : weight_tensors(m)) out.insert(out.end(), t.values->begin(), t.values->end());
  return out;
}

TEST(Trainer, FiftyStepSmokeRunLearnsAndWritesACheckpoint) {
  const auto vocab = Llama2cTokenizer::byte_level();
  const TrainingCorpus corpus = build_corpus(vocab, {kjv()});
  LlamaModel m = new_llama_model(small_shape(48), 7);
  const RopeSpec rope = rope_spec_for_model(m);
  const double before = validation_loss(m, rope, vocab, corpus, 48, 8, 1, 1);
  EXPECT_NEAR(before, std::log(259.0), 0.1);  // an untrained model is uniform over the bytes
  const std::string out = test::write_temp("smoke.gguf", "");
  std::vector<TrainLogRow> rows;
  const auto last = train_llama(m, vocab, corpus, small_options(out), {{"data", "kjv"}}, [&](const TrainLogRow& r) { rows.push_back(r); });
  ASSERT_EQ(rows.size(), 50u);
  EXPECT_EQ(last.step, 50);
  EXPECT_GT(last.tokens_per_second, 0);
  EXPECT_LT(last.valid_loss, before - 1.0) << "50 steps should learn byte frequencies at least";
  EXPECT_LT(rows.back().loss, rows.front().loss - 1.0);
  // The checkpoint loads as a model with its tokenizer and training record.
  const LlamaModel back = load_model(out);
  EXPECT_EQ(back.hp.trained_context, 48);
  EXPECT_EQ(back.hp.dim, 32);
  const auto tok = load_gguf_tokenizer(out);
  EXPECT_EQ(tok.vocab_size(), 259);
  EXPECT_EQ(tok.encode("Hi", false, false), (std::vector<int>{'H' + 3, 'i' + 3}));
  EXPECT_NEAR(validation_loss(back, rope_spec_for_model(back), vocab, corpus, 48, 8, 1, 1), last.valid_loss, 1e-4);
  EXPECT_TRUE(std::filesystem::exists(out + ".adam"));
}

TEST(Trainer, DeterministicAndResumable) {
  const auto vocab = Llama2cTokenizer::byte_level();
  const TrainingCorpus corpus = build_corpus(vocab, {kjv()});
  auto run = [&](const std::string& out, int64_t stop_after, bool resume) {
    LlamaModel m = resume ? load_model(out) : new_llama_model(small_shape(48), 3);
    TrainOptions o = small_options(out);
    o.steps = 20, o.stop_after = stop_after, o.resume = resume, o.schedule.warmup = 3;
    train_llama(m, vocab, corpus, o, {});
    return flatten(m);
  };
  const auto a = run(test::write_temp("a.gguf", ""), 0, false);
  const auto b = run(test::write_temp("b.gguf", ""), 0, false);
  EXPECT_EQ(a, b) << "same seed, same threads: bit-identical weights";
  const std::string c = test::write_temp("c.gguf", "");
  const auto half = run(c, 10, false);
  EXPECT_NE(half, a);
  const auto resumed = run(c, 0, true);
  EXPECT_EQ(resumed, a) << "10 steps + resume for 10 more = 20 steps in one go";
}

// Two threads train whole sequences of the batch side by side (each its own
// gradient, summed in runner order): deterministic run to run, and the same
// training as one thread up to float summation order.
TEST(Trainer, DataParallelBatchIsDeterministicAndMatchesOneThread) {
  const auto vocab = Llama2cTokenizer::byte_level();
  const TrainingCorpus corpus = build_corpus(vocab, {kjv()});
  auto run = [&](int threads, int batch) {
    LlamaModel m = new_llama_model(small_shape(48), 3);
    TrainOptions o = small_options(test::write_temp("dp.gguf", ""));
    o.steps = 6, o.batch = batch, o.threads = threads, o.schedule.warmup = 2;
    const auto row = train_llama(m, vocab, corpus, o, {});
    return std::make_pair(flatten(m), row);
  };
  for (int batch : {3, 4}) {
    const auto [one, one_row] = run(1, batch);
    const auto [two, two_row] = run(2, batch);
    const auto [again, again_row] = run(2, batch);
    EXPECT_EQ(two, again) << "same threads: bit-identical weights";
    ASSERT_EQ(one.size(), two.size());
    double worst = 0;
    for (size_t i = 0; i < one.size(); ++i) worst = std::max(worst, double(std::abs(one[i] - two[i])));
    EXPECT_LT(worst, 1e-4) << "batch " << batch;
    if (ThreadPool::global().size() >= 2) {
      EXPECT_GT(worst, 0.0) << "batch " << batch << ": two threads should have run the data-parallel path";
    }
    EXPECT_NEAR(one_row.loss, two_row.loss, 1e-5);
    EXPECT_NEAR(one_row.valid_loss, two_row.valid_loss, 1e-5);
  }
}

TEST(Trainer, ScheduleAndAdamWByHand) {
  const Schedule s{1.0, 0.1, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);   // warm-up: lr · (step + 1) / warmup
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);  // cosine starts at the peak
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);  // halfway: (lr + min_lr) / 2
  EXPECT_DOUBLE_EQ(s.at(110), 0.1);
  // Adam's first bias-corrected step moves every weight by lr · sign(g) (plus decay for matrices).
  LlamaModel m = new_llama_model(small_shape(16), 1);
  LlamaModel g = zero_gradients(m);
  g.token_embedding[0] = 0.5f, g.token_embedding[1] = -2.0f, g.final_norm[0] = 3.0f;
  const float e0 = m.token_embedding[0], e1 = m.token_embedding[1], e2 = m.token_embedding[2], n0 = m.final_norm[0];
  AdamW opt(m);
  opt.weight_decay = 0.5;
  opt.step(m, g, 0.01);
  EXPECT_NEAR(m.token_embedding[0], e0 * (1 - 0.01 * 0.5) - 0.01, 1e-7);
  EXPECT_NEAR(m.token_embedding[1], e1 * (1 - 0.01 * 0.5) + 0.01, 1e-7);
  EXPECT_NEAR(m.token_embedding[2], e2 * (1 - 0.01 * 0.5), 1e-7);  // zero gradient: decay only
  EXPECT_NEAR(m.final_norm[0], n0 - 0.01, 1e-7);                    // norms do not decay
  // Clipping to a global norm.
  EXPECT_NEAR(clip_gradients(g, 1.0), std::sqrt(0.25 + 4.0 + 9.0), 1e-6);
  EXPECT_NEAR(clip_gradients(g, 0.0), 1.0, 1e-6);
}

TEST(TrainingData, SyntheticDocumentsAreExactAndAnswerable) {
  const auto tok = Llama2cTokenizer::byte_level();
  const TrainingCorpus corpus = build_corpus(tok, {kjv()});
  for (uint64_t seed = 0; seed < 40; ++seed)
    for (auto kind : {SequenceKind::Passkey, SequenceKind::KeyValue, SequenceKind::Repeat, SequenceKind::Recall}) {
      const int64_t len = 120 + int64_t(seed) * 23;
      const double copy_gap = double(seed % 3) / 2;  // 0, 0.5, 1: never, sometimes, always text before a copy
      const auto doc = synthetic_document(tok, corpus.train, len, kind, seed, copy_gap);
      ASSERT_EQ(int64_t(doc.size()), len);
      EXPECT_EQ(doc[0], tok.bos());
      std::string text;
      for (size_t i = 1; i < doc.size(); ++i) text += tok.decode(doc[i - 1], doc[i]);
      if (kind == SequenceKind::Repeat) {
        // "Keys: " and distinct characters, then copies of them, back to back or each after text and " Again: ".
        ASSERT_EQ(text.substr(0, 6), "Keys: ") << text;
        const size_t again = text.find(" Again: ");
        if (copy_gap == 0) {
          EXPECT_EQ(again, std::string::npos) << text;
        }
        if (copy_gap == 1) {
          EXPECT_NE(again, std::string::npos) << text;
        }
        const std::string copies = again == std::string::npos ? text.substr(6) : text.substr(6, again - 6);
        const size_t end = again == std::string::npos ? copies.find(copies[0], 1) : copies.find_first_of(" ,.;:");
        ASSERT_NE(end, std::string::npos) << text;
        const std::string key = copies.substr(0, end);
        EXPECT_GE(key.size(), 6u) << text;
        EXPECT_LE(key.size(), 40u) << text;
        EXPECT_EQ(std::set<char>(key.begin(), key.end()).size(), key.size()) << text;
        if (again == std::string::npos) {
          for (size_t i = key.size(); i < copies.size(); ++i) ASSERT_EQ(copies[i], copies[i - key.size()]) << text;
        } else {
          for (size_t q = again; q != std::string::npos; q = text.find(" Again: ", q + 1)) {
            const std::string copy = text.substr(q + 8, key.size());
            EXPECT_EQ(copy, key.substr(0, copy.size())) << text;
          }
        }
      } else if (kind == SequenceKind::Recall) {
        // "Name: 12345. " records up to half the document, then "Recall: " and only those records again.
        const size_t recall = text.find("Recall: ");
        ASSERT_NE(recall, std::string::npos) << text;
        EXPECT_LE(int64_t(recall), len / 2) << text;
        std::map<std::string, std::string> code;
        for (size_t at = 0; at < recall; at = text.find(". ", at) + 2) {
          const size_t colon = text.find(": ", at);
          ASSERT_LT(colon, recall) << text;
          const std::string digits = text.substr(colon + 2, 5);
          EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << text;
          EXPECT_TRUE(code.emplace(text.substr(at, colon - at), digits).second) << "name twice: " << text;
        }
        EXPECT_GE(code.size(), 2u) << text;
        int queries = 0;
        for (size_t at = recall + 8; text.find(". ", at) != std::string::npos; at = text.find(". ", at) + 2, ++queries) {
          const size_t colon = text.find(": ", at);
          ASSERT_NE(code.count(text.substr(at, colon - at)), 0u) << text;
          EXPECT_EQ(text.substr(colon + 2, 5), code[text.substr(at, colon - at)]) << text;
        }
        EXPECT_GE(queries, 2) << text;
      } else if (kind == SequenceKind::Passkey && text.find("What is the pass key?") != std::string::npos) {
        const std::string key = text.substr(text.size() - 6, 5);
        EXPECT_NE(text.find("The pass key is " + key + ". Remember it."), std::string::npos) << text;
        EXPECT_EQ(text.substr(text.size() - 22), "The pass key is " + key + ".");
      } else {
        // Every query is answered with its record's key.
        size_t q = text.find("What is the code for ");
        ASSERT_NE(q, std::string::npos) << text;
        EXPECT_EQ(text.back(), '.');
        for (; q != std::string::npos; q = text.find("What is the code for ", q + 1)) {
          const std::string name = text.substr(q + 21, text.find('?', q) - q - 21);
          const size_t answer = text.find("The code for " + name + " is ", q);
          ASSERT_NE(answer, std::string::npos) << text;
          const std::string key = text.substr(answer + 17 + name.size(), 5);
          EXPECT_LT(text.find("The code for " + name + " is " + key + ". "), q) << text;
        }
      }
    }
  // Sequences are a function of (seed, step, index).
  const SyntheticMix mix;
  EXPECT_EQ(training_sequence(tok, corpus.train, 64, mix, 1, 5, 0), training_sequence(tok, corpus.train, 64, mix, 1, 5, 0));
  EXPECT_NE(training_sequence(tok, corpus.train, 64, mix, 1, 5, 0), training_sequence(tok, corpus.train, 64, mix, 1, 5, 1));
}

}  // namespace
}  // namespace ropescale
