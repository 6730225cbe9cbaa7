// Tokenizers: text <-> token ids, identical to HF `tokenizers` for the supported models.
// Loaded from HF tokenizer.json or from the vocabulary stored in a GGUF file; each tokenizer
// model registers a reader under "<format>/<model type>" (json/BPE, gguf/llama, ...).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tandem/core/registry.h"

namespace tandem::gguf {
class GgufFile;
}

namespace tandem::text {

/// What a tokenizer is read from: a parsed tokenizer.json or an open GGUF file (one is set).
struct TokenizerSource {
  std::string path;                     ///< for messages
  const nlohmann::json* json = nullptr;  ///< tokenizer.json
  const gguf::GgufFile* gguf = nullptr;  ///< GGUF metadata
};

class Tokenizer {
 public:
  static constexpr const char* kRegistryKind = "text.tokenizer";
  using Factory = std::unique_ptr<Tokenizer>(const TokenizerSource&);
  virtual ~Tokenizer() = default;
  /// Token ids of `text`; added/special tokens written in the text are recognised.
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = false) const = 0;
  virtual int64_t vocab_size() const = 0;
  /// Id of a token string, or -1.
  virtual int64_t token_to_id(const std::string& token) const = 0;
  virtual std::string id_to_token(int64_t id) const = 0;
  /// Token ids a model expects for `text`: encode() with BOS first when the model wants one.
  std::vector<int64_t> encode_for_model(const std::string& text) const {
    std::vector<int64_t> ids = encode(text);
    if (add_bos && bos_id >= 0) ids.insert(ids.begin(), bos_id);
    return ids;
  }
  int64_t bos_id = -1, eos_id = -1, pad_id = -1;
  bool add_bos = false;  ///< the model was trained with BOS before every text
};

}  // namespace tandem::text

namespace tandem {
TANDEM_DECLARE_REGISTRY(text::Tokenizer);
}

namespace tandem::text {

/// Loads `path`: a tokenizer.json, an HF model directory holding one, or a .gguf file.
/// Unknown model or pre-tokenizer types are errors naming the file and the expected types.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace tandem::text
