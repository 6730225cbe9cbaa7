// Token ids read from a tokenizer file: whole numbers in [0, 2^24), so a damaged file ends in an
// error naming it, not in a vocabulary table sized from a garbage id.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tandem::text {

constexpr int64_t kMaxVocabulary = int64_t{1} << 24;

inline int64_t json_token_id(const nlohmann::json& v, const std::string& file, const std::string& what) {
  if (!v.is_number_integer())
    throw std::runtime_error(file + ": the id of '" + what + "' must be an integer, got " + v.dump());
  const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxVocabulary) ? kMaxVocabulary
                                                                                                           : v.get<int64_t>();
  if (id < 0 || id >= kMaxVocabulary)
    throw std::runtime_error(file + ": the id of '" + what + "' is " + v.dump() + ", outside [0, 2^24)");
  return id;
}

}  // namespace tandem::text
