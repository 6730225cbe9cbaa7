// Fixed, portable hashing: the same value on every machine and run, so splits, cache keys and
// run ids derived from it are reproducible.
#pragma once

#include <cstdint>
#include <string_view>

namespace tandem {

/// 64-bit FNV-1a of `s`, started from the offset basis xor `seed`.
inline uint64_t fnv1a(std::string_view s, uint64_t seed = 0) {
  uint64_t h = 14695981039346656037ULL ^ seed;  // FNV-1a 64-bit offset basis
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;  // FNV-1a 64-bit prime
  }
  return h;
}

}  // namespace tandem
