// The `lm_multiple_choice` recipe's options and its question sources (the `data:` kind).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/models/model_paths.h"
#include "tandem/data/jsonl.h"

namespace tandem {

struct ChoiceQuestion {
  std::string id, context, question;
  std::vector<std::string> options;
  int64_t answer = 0;
};

/// A source of multiple-choice questions, picked by `data.type`.
class ChoiceDataset {
 public:
  static constexpr const char* kRegistryKind = "experiments.choice_dataset";
  using Factory = std::unique_ptr<ChoiceDataset>(const Config&);
  virtual ~ChoiceDataset() = default;
  virtual std::vector<ChoiceQuestion> load() = 0;
};
TANDEM_DECLARE_REGISTRY(ChoiceDataset);

}  // namespace tandem

namespace tandem {

struct QuestionFileOptions {
  std::string path;
  int64_t limit = 0;
  bool skip_bad_lines = false;
  template <class V>
  void visit(V& v) {
    v.field("path", path, "the question file (relative to $TANDEM_DATA)");
    v.field("limit", limit, "the first N questions", Limit{});
    v.field("skip_bad_lines", skip_bad_lines, "skip (and count) malformed records instead of failing");
  }
  JsonlOptions jsonl() const {
    JsonlOptions o;
    o.limit = static_cast<size_t>(limit);
    o.skip_bad_lines = skip_bad_lines;
    return o;
  }
};

struct SciQChoiceOptions {
  QuestionFileOptions file{"sciq/test.jsonl"};
  bool with_support = false;
  template <class V>
  void visit(V& v) {
    v.merge(file);
    v.field("with_support", with_support, "put the support paragraph before the question (open book)");
  }
  TANDEM_OPTIONS(SciQChoiceOptions)
};

struct MmluProChoiceOptions {
  QuestionFileOptions file{"mmlu_pro/test.jsonl"};
  template <class V>
  void visit(V& v) {
    v.merge(file);
  }
  TANDEM_OPTIONS(MmluProChoiceOptions)
};

struct ChoiceEvalOptions {
  int64_t batch_size = 8;
  std::string prompt = "{context}Question: {question}\nAnswer:";
  int64_t max_prompt_tokens = 1024, max_option_tokens = 64;
  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size, "questions scored together (each option is a row)", Positive{});
    v.field("prompt", prompt, "the prompt; {context} and {question} are filled in");
    // A long `support` or question must not reach the model whole: it would ask for memory
    // in proportion to its length squared.
    v.field("max_prompt_tokens", max_prompt_tokens, "longer prompts keep their last tokens (the question, \"Answer:\")",
            Positive{});
    v.field("max_option_tokens", max_option_tokens, "an option longer than this is an error", Positive{});
  }
};

struct LmMultipleChoiceOptions {
  ModelRef model;
  ChoiceEvalOptions eval;
  template <class V>
  void visit(V& v) {
    v.section("model", model, "the LM that scores each option");
    v.template component<ChoiceDataset>("data", "the multiple-choice questions");
    v.section("eval", eval, "scoring");
  }
  TANDEM_OPTIONS(LmMultipleChoiceOptions)
};

}  // namespace tandem
