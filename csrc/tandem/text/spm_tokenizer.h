// SentencePiece-style tokenizers read from GGUF vocabularies ("llama" tokenizer model).
#pragma once

#include <memory>

#include "tandem/text/tokenizer.h"

namespace tandem::gguf {
class GgufFile;
}

namespace tandem::text {

/// Builds the tokenizer stored in a GGUF file whose tokenizer.ggml.model is "llama".
std::shared_ptr<Tokenizer> spm_from_gguf(const gguf::GgufFile& f);

}  // namespace tandem::text
