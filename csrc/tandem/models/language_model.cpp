#include "tandem/models/language_model.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tandem/core/files.h"

namespace fs = std::filesystem;

namespace tandem {

LanguageModel::LanguageModel(std::string path, std::shared_ptr<CausalLM> model, std::shared_ptr<text::Tokenizer> tokenizer,
                             std::shared_ptr<text::ChatTemplate> chat, std::vector<int64_t> stop_ids)
    : path_(std::move(path)), model_(std::move(model)), tokenizer_(std::move(tokenizer)), chat_(std::move(chat)),
      stop_ids_(std::move(stop_ids)) {}

const text::Tokenizer& LanguageModel::tokenizer() const { return *tokenizer_ptr(); }

const std::shared_ptr<text::Tokenizer>& LanguageModel::tokenizer_ptr() const {
  if (!tokenizer_)
    throw std::runtime_error(path_ + ": the checkpoint has no tokenizer files (tokenizer.json or tokenizer.model); "
                                     "the model runs on token ids, but text cannot be tokenized");
  return tokenizer_;
}

const text::ChatTemplate& LanguageModel::chat() const {
  tokenizer();  // a chat needs text
  return *chat_;
}

const std::shared_ptr<text::ChatTemplate>& LanguageModel::chat_ptr() const {
  tokenizer();
  return chat_;
}

std::vector<int64_t> LanguageModel::encode_chat(const std::vector<text::ChatMessage>& messages) const {
  return tokenizer().encode_for_model(chat().render(messages));
}

namespace {

bool has_tokenizer_files(const std::string& path) {
  if (!fs::is_directory(path)) return true;  // a .gguf carries its vocabulary
  return fs::exists(fs::path(path) / "tokenizer.json") || fs::exists(fs::path(path) / "tokenizer.model");
}

// generation_config.json's eos_token_id (one id or a list: Llama 3.x Instruct ends on <|eot_id|>).
std::vector<int64_t> generation_eos(const std::string& path) {
  const fs::path p = fs::path(path) / "generation_config.json";
  if (!fs::is_directory(path) || !fs::exists(p)) return {};
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(p.string()));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(p.string() + ": not valid JSON (" + e.what() + ")");
  }
  std::vector<int64_t> ids;
  const auto& e = j.value("eos_token_id", nlohmann::json());
  auto take = [&](const nlohmann::json& v) {
    if (!v.is_number_integer()) throw std::runtime_error(p.string() + ": eos_token_id must be an id or a list of ids, got " + e.dump());
    ids.push_back(v.get<int64_t>());
  };
  if (e.is_array())
    for (const auto& v : e) take(v);
  else if (!e.is_null())
    take(e);
  return ids;
}

}  // namespace

std::shared_ptr<LanguageModel> load_language_model(const std::string& path, const c10::Device& device, c10::ScalarType dtype,
                                                   const std::string& chat_template) {
  auto model = load_causal_lm(path, device, dtype);
  std::shared_ptr<text::Tokenizer> tok;
  std::shared_ptr<text::ChatTemplate> chat;
  std::vector<int64_t> stops;
  auto add = [&](int64_t id) {
    if (id >= 0 && std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
  };
  if (has_tokenizer_files(path)) {
    tok = text::load_tokenizer(path);
    // A tokenizer with ids past the embedding table would fail at the first such id, deep inside a
    // forward pass; say so at load. (A smaller tokenizer is normal: tables are often padded.)
    if (tok->vocab_size() > model->config().vocab_size)
      throw std::runtime_error(path + ": the tokenizer has " + std::to_string(tok->vocab_size()) + " tokens but the model's vocabulary (" +
                               model->config().source + ") has " + std::to_string(model->config().vocab_size));
    if (tok->chat_template.empty() && fs::exists(fs::path(path) / "chat_template.jinja"))
      tok->chat_template = read_file((fs::path(path) / "chat_template.jinja").string());
    chat = text::make_chat_template(chat_template, *tok);
    add(tok->eos_id);
    const std::string eot = chat->end_of_turn();
    if (!eot.empty()) add(tok->token_to_id(eot));
  }
  add(model->config().eos_token_id);
  for (int64_t id : generation_eos(path)) add(id);
  return std::make_shared<LanguageModel>(path, std::move(model), std::move(tok), std::move(chat), std::move(stops));
}

}  // namespace tandem
