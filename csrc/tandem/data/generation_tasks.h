// Generation tasks for adaptation experiments (SPA and later): XSum, CNN/DailyMail, CoQA and
// SciQ. Each task reads its real files under the data root, splits them into train / dev / test
// by a fixed hash of the example id, formats an instruction prompt, and scores predictions
// with its paper metric. Registered by name so `task: {type: xsum}` picks one.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"

namespace tandem {

struct GenExample {
  std::string id;
  std::string group;  ///< split unit when not the example itself (a CoQA story)
  std::string context;                                     ///< article, story or support text
  std::vector<std::pair<std::string, std::string>> history;  ///< earlier (question, answer) turns
  std::string question;                                    ///< empty for summarisation
  std::string target;                                      ///< text a tuned model should produce
  std::vector<std::string> references;                     ///< what predictions are scored against
  std::vector<std::string> options;                        ///< multiple-choice options (SciQ)
  int64_t answer_index = -1;
};

enum class Split { kTrain, kDev, kTest };
const char* split_name(Split s);

/// The keys every task takes; each task's Options merges these with its own defaults.
struct TaskOptions {
  int64_t train = 200, dev = 40, test = 50;
  int64_t max_new_tokens, max_context_words;
  bool skip_bad_lines = false;
  explicit TaskOptions(int64_t new_tokens = 64, int64_t context_words = 300)
      : max_new_tokens(new_tokens), max_context_words(context_words) {}
  template <class V>
  void visit(V& v) {
    v.field("train", train, "training examples (a fixed hash-chosen subset of the pool)", NonNegative{});
    v.field("dev", dev, "dev examples (model selection; disjoint from train)", NonNegative{});
    v.field("test", test, "test examples (the final test file, read once)", Positive{});
    v.field("max_new_tokens", max_new_tokens, "generation budget per answer", Positive{});
    v.field("max_context_words", max_context_words, "the document is cut to this many words", Positive{});
    v.field("skip_bad_lines", skip_bad_lines, "skip (and count) malformed records instead of failing");
  }
};

class GenerationTask {
 public:
  static constexpr const char* kRegistryKind = "data.generation_task";
  using Factory = std::unique_ptr<GenerationTask>(const Config&);
  virtual ~GenerationTask() = default;

  /// Examples of `split`, in a fixed order, at most the configured count for that split.
  /// Train and dev never overlap test; the final test files are read only for Split::kTest.
  virtual std::vector<GenExample> load(Split split) const = 0;
  /// The instruction opening every prompt ("Summarize the article in one sentence.").
  virtual std::string instruction() const = 0;
  /// The user turn for `ex` (context, history, question), context cut to max_context_words.
  virtual std::string user_text(const GenExample& ex) const = 0;
  /// Metrics of one prediction, each in [0, 100]; includes primary_metric().
  virtual std::map<std::string, double> score(const GenExample& ex, const std::string& prediction) const = 0;
  virtual std::string primary_metric() const = 0;
  /// Display name used as a table column ("XSum", "CNN-DM", "CoQA", "SciQ").
  virtual std::string display_name() const = 0;
  int64_t max_new_tokens() const { return max_new_tokens_; }

 protected:
  explicit GenerationTask(const TaskOptions& o);
  /// Keeps the first `max_context_words_` whitespace-separated words.
  std::string cut(const std::string& text) const;
  size_t count(Split s) const { return s == Split::kTrain ? n_train_ : s == Split::kDev ? n_dev_ : n_test_; }
  size_t n_train_, n_dev_, n_test_;
  int64_t max_new_tokens_, max_context_words_;
  bool skip_bad_lines_;
};

TANDEM_DECLARE_REGISTRY(GenerationTask);

/// ROUGE-1/2/L/Lsum F-measures x 100 of `prediction` against the best-matching reference.
std::map<std::string, double> rouge_metrics(const std::vector<std::string>& references, const std::string& prediction);


}  // namespace tandem

namespace tandem {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct SummaryTaskOptions {
  TaskOptions common;
  std::string train_path, path, test_path;
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("train_path", train_path, "the training file (relative to $TANDEM_DATA); \"\" = split `path` 4:1 into train and dev");
    v.field("path", path, "the dev file (model selection), or the pool train and dev share when train_path is \"\"");
    v.field("test_path", test_path, "the final test file (its ids never enter train or dev)");
  }
};

struct XSumOptions : SummaryTaskOptions {
  XSumOptions()
      : SummaryTaskOptions{TaskOptions(48, 300), "xsum/train.jsonl", "xsum/test.jsonl", "xsum/test_extra.jsonl"} {}
  TANDEM_OPTIONS(XSumOptions)
};

struct CnnDailyMailOptions : SummaryTaskOptions {
  CnnDailyMailOptions()
      : SummaryTaskOptions{TaskOptions(80, 300), "cnn_dailymail/train.jsonl", "cnn_dailymail/validation.jsonl",
                           "cnn_dailymail/test.jsonl"} {}
  TANDEM_OPTIONS(CnnDailyMailOptions)
};

struct SciQTaskOptions {
  TaskOptions common{16, 120};
  std::string path = "sciq/test.jsonl";
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("path", path, "the SciQ file, split 1/2 train, 1/4 dev, 1/4 test by id hash");
  }
  TANDEM_OPTIONS(SciQTaskOptions)
};

struct CoQAOptions {
  TaskOptions common{24, 250};
  std::string path = "coqa/train.jsonl", test_path = "coqa/dev.jsonl";
  int64_t history_turns = 3, eval_turns_per_story = 4;
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("path", path, "the training stories (official JSON or one story per line)");
    v.field("test_path", test_path, "stories split by a hash of the story id: half dev, half the final test");
    v.field("history_turns", history_turns, "earlier question/answer turns in the prompt", NonNegative{});
    v.field("eval_turns_per_story", eval_turns_per_story,
            "dev/test: this many hash-chosen turns per story, so a test of n questions spans n / k stories (0 = all)",
            NonNegative{});
  }
  TANDEM_OPTIONS(CoQAOptions)
};

struct MmluProLettersOptions {
  TaskOptions common{4, 400};
  std::string path = "mmlu_pro/test.jsonl";
  std::vector<std::string> categories, exclude_paths;
  template <class V>
  void visit(V& v) {
    v.merge(common);
    v.field("path", path, "the MMLU-Pro file");
    v.field("categories", categories, "subjects to keep ([] = all)");
    v.field("exclude_paths", exclude_paths, "files whose questions (stem or question) are left out");
  }
  TANDEM_OPTIONS(MmluProLettersOptions)
};

}  // namespace tandem
