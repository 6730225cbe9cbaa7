// The stages around a tokenizer model, as HF `tokenizers` defines them in tokenizer.json:
// normalizer (text -> text), pre-tokenizer (text -> pieces), decoder (tokens -> text). Each stage
// type is built by name from its JSON object; every option of it is honoured or refused with an
// error naming the file and the option (an option that changes no id, such as ByteLevel's
// trim_offsets, which only moves offsets tandem does not report, is accepted and documented).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tandem::text {

/// One pre-token. `at_input_start` marks the piece that begins at byte 0 of the encoded text
/// (HF's `offsets_original().0 == 0`, which Metaspace's prepend_scheme "first" asks about).
struct Piece {
  std::string text;
  bool at_input_start = false;
};

struct Normalizer {
  std::vector<std::function<std::string(const std::string&)>> steps;
  std::string apply(std::string s) const {
    for (const auto& f : steps) s = f(s);
    return s;
  }
};

struct PreTokenizer {
  std::vector<std::function<void(std::vector<Piece>&)>> steps;
  bool byte_level = false;  ///< a ByteLevel step maps bytes to printable code points
  std::vector<Piece> apply(std::vector<Piece> pieces) const {
    for (const auto& f : steps) f(pieces);
    return pieces;
  }
};

/// Decoders work on the token strings of one run between added tokens, as HF's decode does.
struct TokenDecoder {
  std::vector<std::function<void(std::vector<std::string>&)>> steps;
  bool any = false;  ///< without a decoder HF joins tokens with single spaces
  std::string apply(std::vector<std::string> tokens) const;
};

/// `where` names the JSON path for messages ("normalizer", "pre_tokenizer.pretokenizers[0]").
Normalizer make_normalizer(const nlohmann::json& j, const std::string& file);
PreTokenizer make_pre_tokenizer(const nlohmann::json& j, const std::string& file);
TokenDecoder make_token_decoder(const nlohmann::json& j, const std::string& file);

/// GPT-2's reversible byte <-> printable code point table (the ByteLevel mapping).
uint32_t byte_to_char(uint8_t b);
/// The byte a mapped code point stands for, or -1 when `cp` is not in the table.
int char_to_byte(uint32_t cp);

/// The regex of a byte-level BPE family as its tokenizer.json writes it (GGUF files name the
/// family in tokenizer.ggml.pre). Empty when `pre` is unknown.
std::string byte_level_family_pattern(const std::string& pre);

}  // namespace tandem::text
