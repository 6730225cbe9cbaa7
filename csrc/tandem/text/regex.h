// Regular expressions as HF `tokenizers` runs them: Oniguruma (the engine it links), UTF-8, the
// library's default syntax. Used by Split pre-tokenizers, Replace normalizers/decoders and the
// byte-level pattern, so every pattern in a tokenizer file means what it means to HF.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tandem::text {

class Regex {
 public:
  /// Compiles `pattern`; a pattern Oniguruma refuses is an error naming `source` and the pattern.
  Regex(const std::string& pattern, const std::string& source);
  /// A pattern matching `literal` exactly (HF's `{"String": ...}` patterns).
  static Regex literal(const std::string& literal, const std::string& source);
  /// Byte ranges [begin, end) of every match, left to right, as `tokenizers`' find_iter yields them
  /// (an empty match advances the search by one character).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;
  /// `text` with every match replaced by `with` (no group references, as HF's Replace).
  std::string replace_all(const std::string& text, const std::string& with) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::shared_ptr<const Compiled> re_;
};

}  // namespace tandem::text
