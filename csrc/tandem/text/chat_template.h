// Chat templates in C++: the prompt text a chat-tuned model expects for a list of turns, and
// the marker that ends an assistant turn (appended to training targets so a tuned model stops).
// Registered by name ("chatml", "gemma", "llama2", "plain"); "auto" picks by the tokenizer's
// special tokens, so a user's checkpoint gets its family's format without a config change.
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
};

}  // namespace tandem::text

namespace tandem {
TANDEM_DECLARE_REGISTRY(text::ChatTemplate);
}

namespace tandem::text {

/// The template named `name`, or for "auto" the one whose markers `tok` knows (plain otherwise).
/// An unknown name is a std::invalid_argument listing the known ones; config-driven callers
/// check the name against chat_template_names() first, so their error names the file and key.
std::shared_ptr<ChatTemplate> make_chat_template(const std::string& name, const Tokenizer& tok);
/// The registered template names plus "auto".
std::vector<std::string> chat_template_names();
/// Refuses `name` at `c`'s `key` (file, line) unless it is a registered template or "auto".
void check_chat_template_name(const Config& c, const std::string& key, const std::string& name);

}  // namespace tandem::text
