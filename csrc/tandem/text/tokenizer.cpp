// load_tokenizer: finds the tokenizer's file, reads its model type, and lets the reader
// registered for "<format>/<type>" build it.
#include "tandem/text/tokenizer.h"

#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/core/files.h"
#include "tandem/core/formats/gguf.h"

namespace fs = std::filesystem;

namespace tandem {
TANDEM_DEFINE_REGISTRY(text::Tokenizer);
}

namespace tandem::text {
namespace {

std::unique_ptr<Tokenizer> build(const std::string& name, const TokenizerSource& src, const std::string& setting) {
  if (!Registry<Tokenizer>::instance().contains(name))
    throw std::runtime_error(src.path + ": " + setting + " is not supported (readers: " +
                             Registry<Tokenizer>::instance().known() + ")");
  return create_named<Tokenizer>(name, src);
}

std::shared_ptr<Tokenizer> from_tokenizer_json(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  // Every structural surprise (a string where an id belongs, a missing list) becomes one error
  // naming the file, not a JSON library exception from deep inside.
  try {
    const auto& model = j.value("model", nlohmann::json::object());
    const std::string type = model.value("type", std::string());
    return build("json/" + type, TokenizerSource{path, &j, nullptr}, "tokenizer model type \"" + type + "\"");
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": malformed tokenizer.json (" + std::string(e.what()) + ")");
  }
}

std::shared_ptr<Tokenizer> from_gguf(const std::string& path) {
  gguf::GgufFile f(path);
  const std::string model = f.get_string("tokenizer.ggml.model");
  return build("gguf/" + model, TokenizerSource{path, nullptr, &f}, "GGUF tokenizer model \"" + model + "\"");
}

}  // namespace

std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (fs::is_directory(path)) {
    const auto tj = fs::path(path) / "tokenizer.json", tm = fs::path(path) / "tokenizer.model";
    if (fs::exists(tj)) return from_tokenizer_json(tj.string());
    if (fs::exists(tm)) return build("model/sentencepiece", TokenizerSource{tm.string(), nullptr, nullptr}, "tokenizer.model");
    throw std::runtime_error(path + ": no tokenizer.json or tokenizer.model in this model directory");
  }
  if (!fs::exists(path)) throw std::runtime_error(path + ": no such tokenizer file");
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".gguf") return from_gguf(path);
  if (ext == ".json") return from_tokenizer_json(path);
  // tokenizer.model, Mistral's tokenizer.model.v3, ...: SentencePiece protobufs.
  return build("model/sentencepiece", TokenizerSource{path, nullptr, nullptr}, "SentencePiece model");
}

}  // namespace tandem::text
