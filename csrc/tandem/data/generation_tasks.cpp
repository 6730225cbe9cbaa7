#include "tandem/data/generation_tasks.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/core/runtime.h"
#include "tandem/data/coqa.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/mmlu_pro.h"
#include "tandem/data/sciq.h"
#include "tandem/data/summarization.h"
#include "tandem/core/hash.h"
#include "tandem/eval/coqa_metric.h"
#include "tandem/eval/rouge.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(GenerationTask);

const char* split_name(Split s) { return s == Split::kTrain ? "train" : s == Split::kDev ? "dev" : "test"; }

GenerationTask::GenerationTask(const TaskOptions& o)
    : n_train_(static_cast<size_t>(o.train)),
      n_dev_(static_cast<size_t>(o.dev)),
      n_test_(static_cast<size_t>(o.test)),
      max_new_tokens_(o.max_new_tokens),
      max_context_words_(o.max_context_words),
      skip_bad_lines_(o.skip_bad_lines) {}

std::string GenerationTask::cut(const std::string& text) const {
  // Keeps line breaks (paragraphs help small models) while counting words.
  std::string out;
  int64_t words = 0;
  bool in_word = false;
  for (char ch : text) {
    const bool space = ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
    if (!space && !in_word && ++words > max_context_words_) break;
    in_word = !space;
    out += ch;
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
  return out;
}

std::map<std::string, double> rouge_metrics(const std::vector<std::string>& references, const std::string& prediction) {
  std::map<std::string, double> best{{"rouge1", 0}, {"rouge2", 0}, {"rougeL", 0}, {"rougeLsum", 0}};
  for (const auto& ref : references) {
    const RougeSet r = rouge_all(ref, prediction);
    best["rouge1"] = std::max(best["rouge1"], 100 * r.rouge1.fmeasure);
    best["rouge2"] = std::max(best["rouge2"], 100 * r.rouge2.fmeasure);
    best["rougeL"] = std::max(best["rougeL"], 100 * r.rougeL.fmeasure);
    best["rougeLsum"] = std::max(best["rougeLsum"], 100 * r.rougeLsum.fmeasure);
  }
  return best;
}

namespace {

// Orders a pool by a fixed hash of the id and keeps the examples whose hash falls in `which`
// (a residue mod `parts`): the same split on every machine and every run.
std::vector<GenExample> hash_split(std::vector<GenExample> all, uint64_t parts, std::vector<uint64_t> which, size_t n) {
  std::vector<std::pair<uint64_t, GenExample>> keyed;
  for (auto& ex : all) {
    const uint64_t h = fnv1a(ex.group.empty() ? ex.id : ex.group, 0x7a17);
    if (std::find(which.begin(), which.end(), h % parts) != which.end()) keyed.emplace_back(fnv1a(ex.id, 0x7a18), std::move(ex));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<GenExample> out;
  for (auto& kv : keyed) {
    if (out.size() >= n) break;
    out.push_back(std::move(kv.second));
  }
  return out;
}

std::vector<GenExample> first_n(std::vector<GenExample> all, size_t n) {
  if (all.size() > n) all.resize(n);
  return all;
}

// The options of a summarisation task: the common keys plus its pool and test files.

// Summarisation: train/dev from a pool file (1 in 5 to dev), test from a disjoint file.
class SummarizationTask : public GenerationTask {
 public:
  explicit SummarizationTask(const SummaryTaskOptions& o)
      : GenerationTask(o.common),
        train_(o.train_path.empty() ? "" : resolve_data_path(o.train_path)),
        pool_(resolve_data_path(o.path)),
        test_(resolve_data_path(o.test_path)) {}

  std::vector<GenExample> load(Split split) const override {
    if (split == Split::kTest) return first_n(read(test_), count(split));
    // The final test file must stay unseen: an id it holds never enters train or dev, even if
    // another file repeats it (34 of xsum/test_extra.jsonl's ids also occur in xsum/test.jsonl).
    std::set<std::string> test_ids;
    for (const auto& ex : read(test_)) test_ids.insert(ex.id);
    const bool own_train_file = !train_.empty();
    std::vector<GenExample> pool;
    for (auto& ex : read(own_train_file && split == Split::kTrain ? train_ : pool_))
      if (!test_ids.count(ex.id)) pool.push_back(std::move(ex));
    if (own_train_file) return hash_split(std::move(pool), 1, {0}, count(split));  // the whole file, in hash order
    return hash_split(std::move(pool), 5, split == Split::kDev ? std::vector<uint64_t>{0} : std::vector<uint64_t>{1, 2, 3, 4},
                      count(split));
  }
  std::string user_text(const GenExample& ex) const override { return instruction() + "\n\n" + cut(ex.context); }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    return rouge_metrics(ex.references, prediction);
  }
  std::string primary_metric() const override { return "rougeL"; }

 protected:
  virtual std::vector<SummaryRecord> read_file(const std::string& path, const JsonlOptions& o) const = 0;
  std::vector<GenExample> read(const std::string& path) const {
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    std::vector<GenExample> out;
    for (auto& r : read_file(path, o)) {
      GenExample ex;
      ex.id = std::move(r.id);
      ex.context = std::move(r.document);
      ex.target = std::move(r.summary);
      ex.references = {ex.target};
      out.push_back(std::move(ex));
    }
    return out;
  }
  std::string train_, pool_, test_;
};

// XSum: one-sentence BBC summaries.
class XSum : public SummarizationTask {
 public:
  using Options = XSumOptions;
  explicit XSum(const Config& c) : SummarizationTask(Options::from_config(c)) {}
  std::string instruction() const override { return "Summarize the following BBC article in one sentence."; }
  std::string display_name() const override { return "XSum"; }

 protected:
  std::vector<SummaryRecord> read_file(const std::string& path, const JsonlOptions& o) const override {
    return read_xsum(path, o);
  }
};

// CNN/DailyMail: highlights as a few sentences (each file's reference field read as it comes:
// validation raw, test PTB-tokenized, train with its periods restored).
class CnnDailyMail : public SummarizationTask {
 public:
  using Options = CnnDailyMailOptions;
  explicit CnnDailyMail(const Config& c) : SummarizationTask(Options::from_config(c)) {}
  std::string instruction() const override {
    return "Write the highlights of the following news article as three or four short sentences, one per line.";
  }
  std::string display_name() const override { return "CNN-DM"; }

 protected:
  std::vector<SummaryRecord> read_file(const std::string& path, const JsonlOptions& o) const override {
    return read_cnn_dailymail(path, o);
  }
};

// SciQ: a science question with a support paragraph; the answer is generated (ROUGE-L, exact
// match) and the four options are kept for log-likelihood accuracy. One file, split 1/4 test,
// 1/4 dev, 1/2 train by a hash of the id.
class SciQTask : public GenerationTask {
 public:
  using Options = SciQTaskOptions;
  explicit SciQTask(const Config& c) : SciQTask(Options::from_config(c)) {}
  explicit SciQTask(const Options& o) : GenerationTask(o.common), path_(resolve_data_path(o.path)) {}

  std::vector<GenExample> load(Split split) const override {
    std::vector<GenExample> all;
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    for (auto& r : read_sciq(path_, o)) {
      GenExample ex;
      ex.id = r.id;
      ex.question = r.question;
      ex.context = r.support;
      ex.target = r.correct_answer;
      ex.references = {ex.target};
      ex.options = {ex.target, r.distractors[0], r.distractors[1], r.distractors[2]};
      // Option order from the id's hash, so the gold answer is not always first.
      const size_t rot = fnv1a(ex.id, 0x5c1) % 4;
      std::rotate(ex.options.begin(), ex.options.begin() + rot, ex.options.end());
      ex.answer_index = static_cast<int64_t>((4 - rot) % 4);
      all.push_back(std::move(ex));
    }
    const std::vector<uint64_t> which = split == Split::kTest ? std::vector<uint64_t>{0}
                                        : split == Split::kDev ? std::vector<uint64_t>{1}
                                                               : std::vector<uint64_t>{2, 3};
    return hash_split(std::move(all), 4, which, count(split));
  }
  std::string instruction() const override { return "Answer the science question with a short phrase."; }
  std::string user_text(const GenExample& ex) const override {
    std::string t = instruction() + "\n\n";
    if (!ex.context.empty()) t += "Background: " + cut(ex.context) + "\n\n";
    return t + "Question: " + ex.question;
  }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    auto m = rouge_metrics(ex.references, prediction);
    m["exact_match"] = 100 * coqa_exact(ex.target, prediction);
    return m;
  }
  std::string primary_metric() const override { return "rougeL"; }
  std::string display_name() const override { return "SciQ"; }

 private:
  std::string path_;
};

// CoQA: one example per turn; earlier turns' gold answers form the history. Train from `path`;
// dev and the final test from `test_path`'s stories, split half/half by a hash of the story id,
// so no story straddles the two. Evaluation keeps `eval_turns_per_story` hash-chosen turns per
// story and orders by story, so a story's questions sit together (one batch shares its story).
class CoQA : public GenerationTask {
 public:
  using Options = CoQAOptions;
  explicit CoQA(const Config& c) : CoQA(Options::from_config(c)) {}
  explicit CoQA(const Options& o)
      : GenerationTask(o.common), path_(resolve_data_path(o.path)), test_path_(resolve_data_path(o.test_path)),
        history_turns_(o.history_turns), eval_turns_(o.eval_turns_per_story) {}

  std::vector<GenExample> load(Split split) const override {
    if (split == Split::kTrain) return hash_split(read(path_), 1, {0}, count(split));
    const uint64_t want = split == Split::kTest ? 0 : 1;
    std::vector<std::tuple<uint64_t, uint64_t, GenExample>> keyed;  // (story hash, turn hash, example)
    for (auto& ex : read(test_path_)) {
      const uint64_t sh = fnv1a(ex.group, 0x7a17);
      if (sh % 2 == want) keyed.emplace_back(sh, fnv1a(ex.id, 0x7a18), std::move(ex));
    }
    std::stable_sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
      return std::get<0>(a) != std::get<0>(b) ? std::get<0>(a) < std::get<0>(b) : std::get<1>(a) < std::get<1>(b);
    });
    std::vector<GenExample> out;
    std::map<std::string, int64_t> taken;  // story -> turns kept
    for (auto& [sh, th, ex] : keyed) {
      if (out.size() >= count(split)) break;
      if (eval_turns_ > 0 && taken[ex.group] >= eval_turns_) continue;
      ++taken[ex.group];
      out.push_back(std::move(ex));
    }
    return out;
  }
  std::string instruction() const override { return "Answer the question about the story in a few words."; }
  std::string user_text(const GenExample& ex) const override {
    std::string t = instruction() + "\n\nStory: " + cut(ex.context) + "\n\n";
    const size_t start = ex.history.size() > static_cast<size_t>(history_turns_) ? ex.history.size() - history_turns_ : 0;
    for (size_t i = start; i < ex.history.size(); ++i) t += "Q: " + ex.history[i].first + "\nA: " + ex.history[i].second + "\n";
    return t + "Q: " + ex.question;
  }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    const CoqaScore s = coqa_turn_score(ex.references, prediction);
    return {{"f1", 100 * s.f1}, {"exact_match", 100 * s.em}};
  }
  std::string primary_metric() const override { return "f1"; }
  std::string display_name() const override { return "CoQA"; }

 private:
  std::vector<GenExample> read(const std::string& path) const {
    std::vector<GenExample> out;
    for (const auto& story : read_coqa(path, skip_bad_lines_)) {
      std::vector<std::pair<std::string, std::string>> history;
      for (size_t t = 0; t < story.turns.size(); ++t) {
        const auto& turn = story.turns[t];
        GenExample ex;
        ex.id = story.id + "_" + std::to_string(t + 1);
        ex.group = story.id;
        ex.context = story.story;
        ex.history = history;
        ex.question = turn.question;
        ex.target = turn.answer;
        ex.references = {ex.target};
        ex.references.insert(ex.references.end(), turn.other_answers.begin(), turn.other_answers.end());
        history.emplace_back(ex.question, ex.target);
        out.push_back(std::move(ex));
      }
    }
    return out;
  }
  std::string path_, test_path_;
  int64_t history_turns_, eval_turns_;
};

// MMLU-Pro as letter answering, for training domain experts (Symbolic-MoE's tandem-made
// experts). The prompt is the Symbolic-MoE question format ("<question> The options are: (A) ..
// (B) .." + the answer instruction) and the target "Answer: <letter>", so an adapter trained here
// answers exactly the prompts the MoE experts see. `categories` picks the domain; questions also
// in `exclude_paths` (the Symbolic-MoE validation/test files) are left out by their stem text.
class MmluProLetters : public GenerationTask {
 public:
  using Options = MmluProLettersOptions;
  explicit MmluProLetters(const Config& c) : MmluProLetters(Options::from_config(c)) {}
  explicit MmluProLetters(const Options& o)
      : GenerationTask(o.common), path_(resolve_data_path(o.path)), categories_(o.categories.begin(), o.categories.end()) {
    for (const auto& p : o.exclude_paths) exclude_paths_.push_back(resolve_data_path(p));
  }
  std::vector<GenExample> load(Split split) const override {
    std::set<std::string> excluded;
    for (const auto& p : exclude_paths_)
      read_jsonl(p, [&](const nlohmann::json& r, size_t) {
        if (r.contains("stem") && r["stem"].is_string()) excluded.insert(key(r["stem"].get<std::string>()));
        else if (r.contains("question") && r["question"].is_string()) excluded.insert(key(r["question"].get<std::string>()));
      });
    std::vector<GenExample> all;
    JsonlOptions o;
    o.skip_bad_lines = skip_bad_lines_;
    for (auto& r : read_mmlu_pro(path_, o)) {
      if (!categories_.empty() && !categories_.count(r.category)) continue;
      if (excluded.count(key(r.question))) continue;
      GenExample ex;
      ex.id = r.id;
      ex.question = r.question + " The options are:";
      for (size_t i = 0; i < r.options.size(); ++i) {
        ex.options.push_back(r.options[i]);
        ex.question += std::string(" (") + static_cast<char>('A' + i) + ") " + ex.options.back();
      }
      ex.question += ".";
      ex.answer_index = r.answer_index;
      ex.target = std::string("Answer: ") + static_cast<char>('A' + ex.answer_index);
      ex.references = {ex.target};
      all.push_back(std::move(ex));
    }
    const std::vector<uint64_t> which = split == Split::kTest ? std::vector<uint64_t>{0}
                                        : split == Split::kDev ? std::vector<uint64_t>{1}
                                                               : std::vector<uint64_t>{2, 3, 4, 5, 6, 7, 8, 9};
    return hash_split(std::move(all), 10, which, count(split));
  }
  std::string instruction() const override { return "Answer with the letter of the correct option."; }
  // Same text as moe::question_prompt for a Symbolic-MoE instance.
  std::string user_text(const GenExample& ex) const override { return ex.question + "\n" + instruction(); }
  std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const override {
    const auto p = prediction.find_first_of("ABCDEFGHIJ", prediction.find(':') == std::string::npos ? 0 : prediction.find(':'));
    const bool right = p != std::string::npos && prediction[p] - 'A' == ex.answer_index;
    return {{"accuracy", right ? 100.0 : 0.0}};
  }
  std::string primary_metric() const override { return "accuracy"; }
  std::string display_name() const override { return "MMLU-Pro letters"; }

 private:
  static std::string key(const std::string& q) {  // a question's identity: its first 160 letters/digits
    std::string k;
    for (char ch : q) {
      if (std::isalnum(static_cast<unsigned char>(ch))) k += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (k.size() >= 160) break;
    }
    return k;
  }
  std::string path_;
  std::set<std::string> categories_;
  std::vector<std::string> exclude_paths_;
};

TANDEM_REGISTER(GenerationTask, "mmlu_pro_letters", MmluProLetters);
TANDEM_REGISTER(GenerationTask, "xsum", XSum);
TANDEM_REGISTER(GenerationTask, "cnn_dailymail", CnnDailyMail);
TANDEM_REGISTER(GenerationTask, "sciq", SciQTask);
TANDEM_REGISTER(GenerationTask, "coqa", CoQA);

}  // namespace

}  // namespace tandem
