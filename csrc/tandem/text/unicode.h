// UTF-8 and the Unicode classes that tokenizer pre-tokenizers match (\p{L}, \p{N}, \s).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem::text {

/// Decodes UTF-8 into code points; invalid bytes become U+FFFD (one per bad byte).
std::vector<uint32_t> utf8_decode(const std::string& s);
void utf8_append(std::string& out, uint32_t cp);
std::string utf8_encode(const std::vector<uint32_t>& cps, size_t begin, size_t end);

bool is_letter(uint32_t cp);
bool is_number(uint32_t cp);
bool is_whitespace(uint32_t cp);

}  // namespace tandem::text

namespace tandem::text {

bool is_mark_nonspacing(uint32_t cp);
bool is_control_or_format(uint32_t cp);
bool is_punctuation(uint32_t cp);
bool is_space_separator(uint32_t cp);
/// NFD decomposition with nonspacing marks removed (BERT's strip_accents), appended to `out`.
void append_stripped(uint32_t cp, std::vector<uint32_t>& out);
/// Full Unicode lowercase mapping, appended to `out`.
void append_lower(uint32_t cp, std::vector<uint32_t>& out);

}  // namespace tandem::text
