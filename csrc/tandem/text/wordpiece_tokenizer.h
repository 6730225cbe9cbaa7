// WordPiece tokenizers (BERT family) read from tokenizer.json.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "tandem/text/tokenizer.h"

namespace tandem::text {

/// Builds a WordPiece tokenizer from a parsed tokenizer.json whose model.type is "WordPiece".
std::shared_ptr<Tokenizer> wordpiece_from_json(const nlohmann::json& j, const std::string& path);

}  // namespace tandem::text
