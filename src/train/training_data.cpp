#include "ropescale/train/training_data.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

#include "ropescale/eval/passkey.h"

namespace ropescale {

namespace {

std::mt19937_64 rng_for(uint64_t seed, int64_t step, int index, uint64_t salt) {
  std::seed_seq seq{seed, uint64_t(step), uint64_t(index), salt};
  return std::mt19937_64(seq);
}

// `n` filler tokens: a window of the text stream, or the built-in passkey sentences.
std::vector<int> filler(const Tokenizer& tok, const std::vector<int>& stream, int64_t n, std::mt19937_64& rng) {
  std::vector<int> out;
  if (n <= 0) return out;
  if (stream.size() > size_t(n) + 1 && rng() % 2) {
    const size_t at = 1 + rng() % (stream.size() - size_t(n) - 1);
    return std::vector<int>(stream.begin() + long(at), stream.begin() + long(at) + n);
  }
  const auto& sentences = passkey_filler_sentences();
  for (size_t i = rng() % sentences.size(); int64_t(out.size()) < n; i = (i + 1) % sentences.size()) {
    const auto ids = tok.encode(sentences[i] + " ", false, false);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  out.resize(n);
  return out;
}

const char* const kNames[] = {"Anna", "Ben", "Clara", "David", "Emma", "Felix", "Grace", "Henry", "Iris", "Jack",
                              "Kate", "Leo", "Mia", "Noah", "Olive", "Paul", "Rosa", "Sam", "Tara", "Victor"};

// The indices of kNames in a random order (who gets a record, and in which order).
std::vector<int> shuffled_name_indices(std::mt19937_64& rng) {
  std::vector<int> order(std::size(kNames));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

}  // namespace

TrainingCorpus build_corpus(const Tokenizer& tok, const std::vector<std::string>& texts, double valid_fraction) {
  TrainingCorpus c;
  for (const auto& t : texts) {
    const auto ids = tok.encode(t, true, false);
    const size_t cut = ids.size() - size_t(double(ids.size()) * std::clamp(valid_fraction, 0.0, 0.5));
    c.train.insert(c.train.end(), ids.begin(), ids.begin() + long(cut));
    c.valid.insert(c.valid.end(), ids.begin() + long(cut), ids.end());
  }
  return c;
}

namespace {

std::vector<int> build_document(const Tokenizer& tok, const std::vector<int>& stream, int64_t length, SequenceKind kind,
                                uint64_t seed, double copy_gap, bool allow_intro) {
  std::mt19937_64 rng(seed);
  auto enc = [&](const std::string& s) { return tok.encode(s, false, false); };
  std::vector<int> head{tok.bos()}, body, tail;
  if (kind == SequenceKind::Passkey) {
    const std::string key = random_passkey(rng);
    if (rng() % 2 && allow_intro) head = tok.encode(std::string(passkey_intro()) + " ", true, false);
    const auto needle = enc(passkey_needle(key) + " ");
    tail = enc(std::string(" ") + passkey_question() + " " + key + ".");
    const int64_t room = length - int64_t(head.size() + needle.size() + tail.size());
    if (room < 0 && head.size() > 1) return build_document(tok, stream, length, kind, seed, copy_gap, false);  // no room for the intro
    if (room < 0) return {};  // too short for a passkey record
    const int64_t before = std::uniform_int_distribution<int64_t>(0, room)(rng);
    body = filler(tok, stream, before, rng);
    body.insert(body.end(), needle.begin(), needle.end());
    const auto after = filler(tok, stream, room - before, rng);
    body.insert(body.end(), after.begin(), after.end());
  } else if (kind == SequenceKind::Recall) {
    // "Anna: 48213. Ben: 90127. …" up to half the document, then "Recall: " and
    // the records again, drawn at random, to the end. No filler and a dozen
    // queries a document: an answer's first digits are named only by the name
    // before them (every record shares ": "), and its later digits only by the
    // digits before them, so the copy must match a context several tokens long.
    const std::vector<int> order = shuffled_name_indices(rng);
    std::vector<std::vector<int>> records;
    const int64_t half = (length - 1) / 2;
    for (int i : order) {
      auto r = enc(std::string(kNames[i]) + ": " + random_passkey(rng) + ". ");
      if (int64_t(body.size() + r.size()) > half) break;
      body.insert(body.end(), r.begin(), r.end());
      records.push_back(std::move(r));
    }
    if (records.size() < 2) return {};  // too short for a record and its query
    const auto recall = enc("Recall: ");
    body.insert(body.end(), recall.begin(), recall.end());
    while (int64_t(body.size()) < length - 1) {
      const auto& r = records[rng() % records.size()];
      body.insert(body.end(), r.begin(), r.end());
    }
    body.resize(size_t(length - 1));
  } else if (kind == SequenceKind::KeyValue) {
    const std::vector<int> order = shuffled_name_indices(rng);
    std::vector<std::pair<std::string, std::string>> records;
    std::vector<int> recs;
    auto query = [&](const std::pair<std::string, std::string>& r) {
      return enc("What is the code for " + r.first + "? The code for " + r.first + " is " + r.second + ". ");
    };
    const size_t query_budget = query({"Victor", "00000"}).size();
    int queries = 1 + int(rng() % 4);
    const size_t record_budget = enc("The code for Victor is 00000. ").size();
    while (queries > 1 && int64_t(head.size() + record_budget + query_budget * size_t(queries)) > length) --queries;
    for (int i : order) {
      const std::string key = random_passkey(rng);
      const auto r = enc(std::string("The code for ") + kNames[i] + " is " + key + ". ");
      if (int64_t(head.size() + recs.size() + r.size() + query_budget * size_t(queries)) > length) break;
      recs.insert(recs.end(), r.begin(), r.end());
      records.emplace_back(kNames[i], key);
    }
    if (records.empty()) return {};  // too short for a record and its query
    for (int q = 0; q < queries; ++q) {
      const auto ids = query(records[rng() % records.size()]);
      if (int64_t(head.size() + recs.size() + tail.size() + ids.size()) > length) break;
      tail.insert(tail.end(), ids.begin(), ids.end());
    }
    if (!tail.empty()) tail.pop_back();  // the document ends at the last answer's period
    const int64_t room = length - int64_t(head.size() + recs.size() + tail.size());
    body = filler(tok, stream, std::max<int64_t>(room, 0), rng);
    body.insert(body.end(), recs.begin(), recs.end());
  } else if (kind == SequenceKind::Repeat) {
    // "Keys: " and a string of 6–40 distinct letters and digits, then copies of
    // it to the end of the document: back to back, or (a `copy_gap` share of
    // documents) each after a window of text of up to most of the document and
    // " Again: ", so copies also reach as far back as retrieval must. Each
    // copied character is named by the one token before it (the characters are
    // distinct): the cleanest signal for the copy ("induction") circuit that
    // passkey and key–value retrieval are built from.
    static const std::string kSymbols = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    body = enc("Keys: ");
    const int64_t room = length - 1 - int64_t(body.size());
    const int64_t period = std::min<int64_t>(std::uniform_int_distribution<int64_t>(6, 40)(rng), room / 3);
    if (period < 2) return {};
    std::string symbols = kSymbols;
    std::shuffle(symbols.begin(), symbols.end(), rng);
    const auto pattern = enc(symbols.substr(0, size_t(period)));
    const bool gapped = std::uniform_real_distribution<double>(0, 1)(rng) < copy_gap;
    const int64_t longest_gap = std::max<int64_t>(8, room - 2 * period - 16);
    const auto space = enc(" "), again = enc(" Again: ");
    body.insert(body.end(), pattern.begin(), pattern.end());
    while (int64_t(body.size()) < length - 1) {
      if (gapped) {
        body.insert(body.end(), space.begin(), space.end());
        const auto gap = filler(tok, stream, std::uniform_int_distribution<int64_t>(8, longest_gap)(rng), rng);
        body.insert(body.end(), gap.begin(), gap.end());
        body.insert(body.end(), again.begin(), again.end());
      }
      body.insert(body.end(), pattern.begin(), pattern.end());
    }
    body.resize(size_t(length - 1));
  } else {
    throw std::invalid_argument("synthetic document: kind must be passkey, key-value, repeat or recall");
  }
  std::vector<int> doc = head;
  doc.insert(doc.end(), body.begin(), body.end());
  doc.insert(doc.end(), tail.begin(), tail.end());
  if (int64_t(doc.size()) > length) doc.erase(doc.begin() + 1, doc.begin() + 1 + (int64_t(doc.size()) - length));
  while (int64_t(doc.size()) < length) doc.insert(doc.begin() + 1, tok.bos());  // (only when filler ran short)
  return doc;
}

}  // namespace

std::vector<int> synthetic_document(const Tokenizer& tok, const std::vector<int>& stream, int64_t length,
                                    SequenceKind kind, uint64_t seed, double copy_gap) {
  return build_document(tok, stream, length, kind, seed, copy_gap, true);
}

std::vector<int> training_sequence(const Tokenizer& tok, const std::vector<int>& stream, int64_t length,
                                   const SyntheticMix& mix, uint64_t seed, int64_t step, int index, SequenceKind* kind) {
  auto rng = rng_for(seed, step, index, 0x5eed);
  const double u = std::uniform_real_distribution<double>(0, 1)(rng);
  const double to_repeat = mix.passkey + mix.key_value + mix.repeat;
  const SequenceKind k = u < mix.passkey                  ? SequenceKind::Passkey
                         : u < mix.passkey + mix.key_value ? SequenceKind::KeyValue
                         : u < to_repeat                   ? SequenceKind::Repeat
                         : u < to_repeat + mix.recall      ? SequenceKind::Recall
                                                           : SequenceKind::Text;
  if (kind) *kind = k;
  if (k != SequenceKind::Text) {
    auto doc = synthetic_document(tok, stream, length, k, rng(), mix.copy_gap);
    if (!doc.empty()) return doc;  // else the length is too short for one: text instead
    if (kind) *kind = SequenceKind::Text;
  }
  if (stream.size() < size_t(length)) throw std::invalid_argument("training text has fewer tokens than one sequence");
  const size_t at = rng() % (stream.size() - size_t(length) + 1);
  return std::vector<int>(stream.begin() + long(at), stream.begin() + long(at) + length);
}

}  // namespace ropescale
