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
  /// Token ids a model expects for `text`: encode() between the ids the tokenizer file says
  /// surround every text (HF's add_special_tokens=True: BOS for Llama, nothing for Qwen2).
  std::vector<int64_t> encode_for_model(const std::string& text) const {
    std::vector<int64_t> ids = prefix_ids;
    const auto body = encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    ids.insert(ids.end(), suffix_ids.begin(), suffix_ids.end());
    return ids;
  }
  bool add_bos() const { return !prefix_ids.empty(); }
  int64_t bos_id = -1, eos_id = -1, pad_id = -1;
  std::vector<int64_t> prefix_ids, suffix_ids;  ///< added around every text by encode_for_model
  std::string chat_template;                    ///< the Jinja template the file carries, if any
};

}  // namespace tandem::text

namespace tandem {
TANDEM_DECLARE_REGISTRY(text::Tokenizer);
}

namespace tandem::text {

/// Loads `path`: a tokenizer.json, a SentencePiece tokenizer.model, an HF model directory
/// holding either (tokenizer.json preferred, as transformers does), or a .gguf file.
/// Unknown model or pre-tokenizer types are errors naming the file and the expected types.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace tandem::text
