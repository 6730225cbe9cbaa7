// How one expert (a causal LM, optionally with a persona system prompt) answers multiple-choice
// questions: one forward pass per question, and the next-token log-probabilities of the option
// letters after "Answer:". The same scorer serves as the aggregator, whose prompt also lists the
// recruited experts' answers.
#pragma once

#include <string>
#include <vector>

#include "tandem/models/causal_lm.h"
#include "tandem/data/symbolic_moe.h"
#include "tandem/peft/adapter.h"
#include "tandem/text/chat_template.h"
#include "tandem/text/tokenizer.h"

namespace tandem::moe {

struct ExpertSpec {
  std::string name;    ///< unique expert name
  std::string model;   ///< resolved model path
  std::string system;  ///< optional persona prompt ("" = none)
  std::string adapter_run;  ///< a finished SPA run directory whose trained adapter this expert adds ("" = none)
};

struct Answer {
  int64_t choice = -1;          ///< option index
  std::vector<double> logprobs;  ///< per option letter, normalised over the options
};

/// The user text for `inst` ("<question>\nAnswer with the letter of the correct option.").
std::string question_prompt(const McInstance& inst);
/// The aggregator's user text: the question plus the experts' proposed letters.
std::string aggregation_prompt(const McInstance& inst, const std::vector<std::pair<std::string, int64_t>>& expert_choices);

/// Answers `user_texts` (one per instance, with `n_options`) in batches of `batch`; with an
/// `adapter`, from the adapted logits (backbone + trained plugin) instead of the backbone's.
std::vector<Answer> answer_letters(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                   const std::string& system, const std::vector<std::string>& user_texts,
                                   const std::vector<int64_t>& n_options, int64_t batch, DeviceAdapter* adapter = nullptr);

/// The trained adapter of a finished SPA run (its config.yaml's experiment.adapter and
/// adapter.safetensors), built for `model`. Errors name the run directory.
std::shared_ptr<DeviceAdapter> load_trained_adapter(const std::string& run_dir, const CausalLM& model);

}  // namespace tandem::moe
