// One loaded language model: the network, its tokenizer, its chat template and the token ids that
// end a reply, built in one place (load_language_model) for every system. A checkpoint with
// weights but no tokenizer files loads (as AutoModelForCausalLM does) and runs on ids; asking it
// to tokenize is then an error naming the directory.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/models/causal_lm.h"
#include "tandem/text/chat_template.h"
#include "tandem/text/tokenizer.h"

namespace tandem {

class LanguageModel {
 public:
  LanguageModel(std::string path, std::shared_ptr<CausalLM> model, std::shared_ptr<text::Tokenizer> tokenizer,
                std::shared_ptr<text::ChatTemplate> chat, std::vector<int64_t> stop_ids);

  CausalLM& model() const { return *model_; }
  const std::shared_ptr<CausalLM>& model_ptr() const { return model_; }
  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  /// The tokenizer; throws naming the path when the checkpoint has none.
  const text::Tokenizer& tokenizer() const;
  const std::shared_ptr<text::Tokenizer>& tokenizer_ptr() const;
  const text::ChatTemplate& chat() const;
  const std::shared_ptr<text::ChatTemplate>& chat_ptr() const;
  /// Ids that end a reply: EOS, the template's end-of-turn token, generation_config.json's eos ids.
  const std::vector<int64_t>& stop_ids() const { return stop_ids_; }
  const std::string& path() const { return path_; }
  /// The chat prompt for `messages` as model ids (BOS from the tokenizer, then the rendered turns).
  std::vector<int64_t> encode_chat(const std::vector<text::ChatMessage>& messages) const;

 private:
  std::string path_;
  std::shared_ptr<CausalLM> model_;
  std::shared_ptr<text::Tokenizer> tokenizer_;
  std::shared_ptr<text::ChatTemplate> chat_;
  std::vector<int64_t> stop_ids_;
};

/// Loads the model at `path` (HF directory or .gguf), its tokenizer when the checkpoint has one,
/// the chat template `chat_template` ("auto": the checkpoint's own) and the stop ids.
std::shared_ptr<LanguageModel> load_language_model(const std::string& path, const c10::Device& device, c10::ScalarType dtype,
                                                   const std::string& chat_template = "auto");

}  // namespace tandem
