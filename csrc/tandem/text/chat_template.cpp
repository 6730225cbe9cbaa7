#include "tandem/text/chat_template.h"

#include <algorithm>

namespace tandem {
TANDEM_DEFINE_REGISTRY(text::ChatTemplate);
}

namespace tandem::text {

namespace {

// ChatML (SmolLM2, Qwen2): <|im_start|>role\ncontent<|im_end|>\n per turn.
class ChatML : public ChatTemplate {
 public:
  ChatML() = default;
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    for (const auto& m : ms) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    return out + "<|im_start|>assistant\n";
  }
  std::string end_of_turn() const override { return "<|im_end|>"; }
};

// Gemma: user/model turns; no system role, so a system text opens the first user turn.
class Gemma : public ChatTemplate {
 public:
  Gemma() = default;
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out, pending_system;
    for (const auto& m : ms) {
      if (m.role == "system") {
        pending_system += m.content + "\n\n";
        continue;
      }
      const std::string role = m.role == "assistant" ? "model" : "user";
      out += "<start_of_turn>" + role + "\n" + pending_system + m.content + "<end_of_turn>\n";
      pending_system.clear();
    }
    return out + "<start_of_turn>model\n";
  }
  std::string end_of_turn() const override { return "<end_of_turn>"; }
};

// Llama-2 chat: [INST] (<<SYS>> on the first turn) user [/INST] assistant.
class Llama2 : public ChatTemplate {
 public:
  Llama2() = default;
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out, system;
    for (const auto& m : ms) {
      if (m.role == "system") {
        system = m.content;
      } else if (m.role == "user") {
        const std::string sys = (!system.empty() && out.empty()) ? "<<SYS>>\n" + system + "\n<</SYS>>\n\n" : "";
        out += "[INST] " + sys + m.content + " [/INST]";
      } else {
        out += " " + m.content + " </s><s>";
      }
    }
    return out;
  }
  std::string end_of_turn() const override { return "</s>"; }
};

// Base (non-chat) models: turns as plain labelled paragraphs.
class Plain : public ChatTemplate {
 public:
  Plain() = default;
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    for (const auto& m : ms) {
      if (m.role == "assistant")
        out += m.content + "\n\n";
      else
        out += m.content + "\n";
    }
    return out;
  }
  std::string end_of_turn() const override { return "\n\n"; }
};

TANDEM_REGISTER(text::ChatTemplate, "chatml", ChatML);
TANDEM_REGISTER(text::ChatTemplate, "gemma", Gemma);
TANDEM_REGISTER(text::ChatTemplate, "llama2", Llama2);
TANDEM_REGISTER(text::ChatTemplate, "plain", Plain);

}  // namespace

std::shared_ptr<ChatTemplate> make_chat_template(const std::string& name, const Tokenizer& tok) {
  std::string n = name;
  if (n == "auto") {
    if (tok.token_to_id("<|im_start|>") >= 0)
      n = "chatml";
    else if (tok.token_to_id("<start_of_turn>") >= 0)
      n = "gemma";
    else if (tok.token_to_id("[INST]") >= 0)
      n = "llama2";
    else
      n = "plain";
  }
  return std::shared_ptr<ChatTemplate>(create_named<ChatTemplate>(n));
}

std::vector<std::string> chat_template_names() {
  auto names = Registry<ChatTemplate>::instance().names();
  names.insert(names.begin(), "auto");
  return names;
}

void check_chat_template_name(const Config& c, const std::string& key, const std::string& name) {
  const auto names = chat_template_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return;
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  c.fail(key, "one of " + list);
}

}  // namespace tandem::text
