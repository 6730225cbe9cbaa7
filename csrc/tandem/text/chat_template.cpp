#include "tandem/text/chat_template.h"

#include <algorithm>
#include <regex>
#include <stdexcept>

namespace tandem {
TANDEM_DEFINE_REGISTRY(text::ChatTemplate);
}

namespace tandem::text {

namespace {

std::string trim(const std::string& s) {  // Jinja's trim / Python's strip: ASCII whitespace
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Llama 3.x: header-delimited turns, content trimmed. Templates of 3.1+ always open with a system
// turn holding "Cutting Knowledge Date" and a date; tandem writes the template's own default
// date (26 Jul 2024) rather than today's, so prompts are reproducible.
class Llama3 : public ChatTemplate {
 public:
  void adopt(const std::string& jinja, const Tokenizer&) override { dated_ = has(jinja, "Cutting Knowledge Date"); }
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    size_t first = 0;
    if (dated_) {
      std::string system;
      if (!ms.empty() && ms[0].role == "system") system = trim(ms[0].content), first = 1;
      out += turn("system", "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n" + system, false);
    }
    for (size_t i = first; i < ms.size(); ++i) out += turn(ms[i].role, ms[i].content, true);
    return out + "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
  std::string end_of_turn() const override { return "<|eot_id|>"; }

 private:
  static std::string turn(const std::string& role, const std::string& content, bool trimmed) {
    return "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + (trimmed ? trim(content) : content) + "<|eot_id|>";
  }
  bool dated_ = false;
};

// ChatML (Qwen2/2.5/3, SmolLM2): <|im_start|>role\ncontent<|im_end|>\n per turn. Several
// templates insert a default system turn when the conversation has none; it is read from the
// template ("You are Qwen, created by Alibaba Cloud. ...", SmolLM's own).
class ChatML : public ChatTemplate {
 public:
  void adopt(const std::string& jinja, const Tokenizer&) override {
    // The literal between "<|im_start|>system" + newline (a real one, or \n written as an escape
    // inside a Jinja string) and "<|im_end|>", when it holds no Jinja expression, is the default
    // system text.
    static const std::regex re(R"(<\|im_start\|>system(?:\\n|\n)([^{}'"]*?)<\|im_end\|>)");
    std::smatch m;
    if (std::regex_search(jinja, m, re)) default_system_ = m[1].str();
  }
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    if (!default_system_.empty() && (ms.empty() || ms[0].role != "system"))
      out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
    for (const auto& m : ms) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    return out + "<|im_start|>assistant\n";
  }
  std::string end_of_turn() const override { return "<|im_end|>"; }

 private:
  std::string default_system_;
};

// Gemma 2/3: user/model turns, content trimmed; no system role, so a system text (followed by a
// blank line) opens the first user turn.
class Gemma : public ChatTemplate {
 public:
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out, prefix;
    size_t first = 0;
    if (!ms.empty() && ms[0].role == "system") prefix = ms[0].content + "\n\n", first = 1;
    for (size_t i = first; i < ms.size(); ++i) {
      const std::string role = ms[i].role == "assistant" ? "model" : ms[i].role;
      out += "<start_of_turn>" + role + "\n" + (i == first ? prefix : "") + trim(ms[i].content) + "<end_of_turn>\n";
    }
    return out + "<start_of_turn>model\n";
  }
  std::string end_of_turn() const override { return "<end_of_turn>"; }
};

// Llama 2 chat: every user turn is BOS [INST] (<<SYS>> on the first) text [/INST], every reply
// " text " EOS; the first BOS is the tokenizer's, the later ones are written.
class Llama2 : public ChatTemplate {
 public:
  void adopt(const std::string&, const Tokenizer& tok) override {
    if (tok.bos_id >= 0) bos_ = tok.id_to_token(tok.bos_id);
    if (tok.eos_id >= 0) eos_ = tok.id_to_token(tok.eos_id);
  }
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out, system;
    size_t first = 0;
    if (!ms.empty() && ms[0].role == "system") system = ms[0].content, first = 1;
    for (size_t i = first; i < ms.size(); ++i) {
      std::string content = ms[i].content;
      if (i == first && first == 1) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
      if (ms[i].role == "user") out += (i == first ? "" : bos_) + "[INST] " + trim(content) + " [/INST]";
      else out += " " + trim(content) + " " + eos_;
    }
    return out;
  }
  std::string end_of_turn() const override { return eos_; }

 private:
  std::string bos_ = "<s>", eos_ = "</s>";
};

// Mistral Instruct (v0.1-v0.2 format): [INST] text [/INST] reply EOS; Mistral has no system role,
// so a system text opens the first user turn followed by a blank line (as v0.3's template does).
class Mistral : public ChatTemplate {
 public:
  void adopt(const std::string&, const Tokenizer& tok) override {
    if (tok.eos_id >= 0) eos_ = tok.id_to_token(tok.eos_id);
  }
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out, prefix;
    size_t first = 0;
    if (!ms.empty() && ms[0].role == "system") prefix = ms[0].content + "\n\n", first = 1;
    for (size_t i = first; i < ms.size(); ++i) {
      if (ms[i].role == "user") out += "[INST] " + (i == first ? prefix : "") + ms[i].content + " [/INST]";
      else out += ms[i].content + eos_;
    }
    return out;
  }
  std::string end_of_turn() const override { return eos_; }

 private:
  std::string eos_ = "</s>";
};

// Phi-3/3.5/4-mini: <|role|>\ncontent<|end|>\n per turn (an empty system turn is left out).
class Phi3 : public ChatTemplate {
 public:
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    for (const auto& m : ms)
      if (!(m.role == "system" && m.content.empty())) out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
    return out + "<|assistant|>\n";
  }
  std::string end_of_turn() const override { return "<|end|>"; }
};

// Base (non-chat) models: turns as plain labelled paragraphs.
class Plain : public ChatTemplate {
 public:
  std::string render(const std::vector<ChatMessage>& ms) const override {
    std::string out;
    for (const auto& m : ms) out += m.role == "assistant" ? m.content + "\n\n" : m.content + "\n";
    return out;
  }
  std::string end_of_turn() const override { return "\n\n"; }
};

TANDEM_REGISTER(text::ChatTemplate, "llama3", Llama3);
TANDEM_REGISTER(text::ChatTemplate, "chatml", ChatML);
TANDEM_REGISTER(text::ChatTemplate, "gemma", Gemma);
TANDEM_REGISTER(text::ChatTemplate, "llama2", Llama2);
TANDEM_REGISTER(text::ChatTemplate, "mistral", Mistral);
TANDEM_REGISTER(text::ChatTemplate, "phi3", Phi3);
TANDEM_REGISTER(text::ChatTemplate, "plain", Plain);

}  // namespace

std::string detect_chat_family(const std::string& j) {
  // Ordered by how specific the markers are (as llama.cpp's llm_chat_detect_template).
  if (has(j, "<|start_header_id|>") && has(j, "<|eot_id|>")) return "llama3";
  if (has(j, "<|im_start|>")) return "chatml";
  if (has(j, "<start_of_turn>")) return "gemma";
  if (has(j, "<|assistant|>") && has(j, "<|end|>")) return "phi3";
  if (has(j, "[INST]") && has(j, "<<SYS>>")) return "llama2";
  if (has(j, "[INST]")) return "mistral";
  return "";
}

std::shared_ptr<ChatTemplate> make_chat_template(const std::string& name, const Tokenizer& tok) {
  std::string n = name;
  if (n == "auto") {
    if (!tok.chat_template.empty()) {
      n = detect_chat_family(tok.chat_template);
      if (n.empty())
        throw std::invalid_argument("the checkpoint's chat template is of no family tandem renders (" +
                                    Registry<ChatTemplate>::instance().known() +
                                    "); choose one with the config key chat_template: <family>");
    } else if (tok.token_to_id("<|start_header_id|>") >= 0) {
      n = "llama3";
    } else if (tok.token_to_id("<|im_start|>") >= 0) {
      n = "chatml";
    } else if (tok.token_to_id("<start_of_turn>") >= 0) {
      n = "gemma";
    } else if (tok.token_to_id("[INST]") >= 0) {
      n = "mistral";
    } else {
      n = "plain";
    }
  }
  std::shared_ptr<ChatTemplate> t(create_named<ChatTemplate>(n));
  t->adopt(tok.chat_template, tok);
  return t;
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
