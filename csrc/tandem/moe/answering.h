// How an expert (a causal LM, optionally with a persona system prompt or a trained SPA plugin)
// answers multiple-choice questions, in one of two modes:
//   letter: one forward pass per question; the next-token log-probabilities of the option
//           letters after "Answer:" (the paper's format; also the aggregator's prompt, which lists
//           the recruited experts' answers);
//   loglik: each option's text scored as the continuation of "<stem> ... Answer:", by its
//           log-likelihood per byte (the cloze scoring of lm-evaluation-harness's acc_norm),
//           which small models answer well above chance where letter following is at chance.
// Questions that share a prompt are run once: experts on one backbone that differ only by their
// plugin (adapter experts) share the backbone forward, and each row goes through its own plugin.
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
  std::string answer = "letter";  ///< letter | loglik (see above)
};

struct Answer {
  int64_t choice = -1;          ///< option index
  std::vector<double> logprobs;  ///< per option, normalised over the options
};

/// One question put to one expert.
struct Question {
  std::string system;              ///< the expert's persona ("" = none)
  std::string user_text;           ///< letter mode: what the expert is asked
  const McInstance* instance = nullptr;  ///< loglik mode: the stem and option texts
  int64_t n_options = 0;
  std::vector<int64_t> allowed;    ///< options the answer may take (empty = all; loglik mode)
  DeviceAdapter* adapter = nullptr;  ///< a plugin expert's trained plugin (letter mode)
};

/// The user text for `inst` ("<question>\nAnswer with the letter of the correct option.").
std::string question_prompt(const McInstance& inst);
/// The aggregator's user text: the question plus the experts' proposed letters.
std::string aggregation_prompt(const McInstance& inst, const std::vector<std::pair<std::string, int64_t>>& expert_choices);

/// Letter mode for `questions`, unique prompts in batches of `batch`. A question with an adapter
/// is answered from SideAdaptedLM's adapted logits (backbone + plugin) instead of the backbone's.
std::vector<Answer> answer_letters(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                   const std::vector<Question>& questions, int64_t batch);

/// Loglik mode for `questions` (each needs its instance's options; adapters are refused: the
/// plugins are trained on letters), `batch` scored sequences per forward.
std::vector<Answer> answer_loglik(CausalLM& model, const text::Tokenizer& tok, const text::ChatTemplate& tmpl,
                                  const std::vector<Question>& questions, int64_t batch);

/// The trained adapter of a finished SPA run (its config.yaml's experiment.adapter and
/// adapter.safetensors), built for `model`. Errors name the run directory.
std::shared_ptr<DeviceAdapter> load_trained_adapter(const std::string& run_dir, const CausalLM& model);

}  // namespace tandem::moe
