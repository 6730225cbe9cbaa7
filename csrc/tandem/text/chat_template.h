// Chat templates in C++: the prompt text a chat-tuned model expects for a list of turns, and
// the marker that ends an assistant turn (appended to training targets so a tuned model stops).
// Registered by family ("llama3", "llama2", "mistral", "chatml", "gemma", "phi3", "plain").
// "auto" reads the Jinja template the checkpoint carries (tokenizer_config.json, chat_template.jinja
// or GGUF tokenizer.chat_template), recognises its family by its markers as llama.cpp does, and
// takes the family's parameters from it (ChatML's default system turn, Llama 3.1's dated header).
// A template of no known family is an error that names the override key. The rendered text starts
// after BOS: the tokenizer adds BOS as an id (encode_for_model), never twice.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/core/registry.h"
#include "tandem/text/tokenizer.h"

namespace tandem::text {

struct ChatMessage {
  std::string role;  ///< "system", "user" or "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  static constexpr const char* kRegistryKind = "text.chat_template";
  using Factory = std::unique_ptr<ChatTemplate>();
  virtual ~ChatTemplate() = default;
  /// The prompt for `messages`, ending where the assistant's reply begins.
  virtual std::string render(const std::vector<ChatMessage>& messages) const = 0;
  /// Text that closes an assistant turn ("<|im_end|>" for ChatML); may be empty.
  virtual std::string end_of_turn() const = 0;
  /// Takes the family's parameters from the checkpoint's Jinja source and tokenizer (default
  /// system text, BOS/EOS strings written between turns).
  virtual void adopt(const std::string& jinja, const Tokenizer& tok) {}
};

}  // namespace tandem::text

namespace tandem {
TANDEM_DECLARE_REGISTRY(text::ChatTemplate);
}

namespace tandem::text {

/// The family a Jinja chat template belongs to ("llama3", "chatml", ...), or "" when unknown.
std::string detect_chat_family(const std::string& jinja);

/// The template named `name`; for "auto", the family of `tok`'s own chat template (an unknown
/// one is an error naming `chat_template:` as the override), or for a tokenizer without one the
/// family whose markers it knows (plain otherwise).
/// An unknown name is a std::invalid_argument listing the known ones; config-driven callers
/// check the name against chat_template_names() first, so their error names the file and key.
std::shared_ptr<ChatTemplate> make_chat_template(const std::string& name, const Tokenizer& tok);
/// The registered template names plus "auto".
std::vector<std::string> chat_template_names();
/// Refuses `name` at `c`'s `key` (file, line) unless it is a registered template or "auto".
void check_chat_template_name(const Config& c, const std::string& key, const std::string& name);

}  // namespace tandem::text
