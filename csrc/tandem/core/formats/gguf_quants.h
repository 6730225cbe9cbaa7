// GGML tensor types and their dequantization to float32, following the block layouts of
// ggml (and the operation order of the gguf Python package, so results are bit-identical).
// Plain C++ with no torch include: this file compiles in a second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tandem::gguf {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};

struct TypeTraits {
  const char* name;
  int64_t block_size;   ///< values per block
  int64_t block_bytes;  ///< bytes per block
  bool supported;       ///< tandem can dequantize it
};

/// Traits of `type`, or nullptr for a type id ggml does not define (or tandem does not know).
const TypeTraits* type_traits(uint32_t type);
std::string type_name(uint32_t type);

/// Dequantizes `numel` values of `type` from `src` into `dst` (float32). `numel` must be a
/// multiple of the type's block size (callers check). Integer types are converted exactly.
void dequantize(GgmlType type, const uint8_t* src, int64_t numel, float* dst);

/// Dequantizes rows [row_begin, row_end) of a 2-D tensor with `row_len` values per row
/// (lets callers parallelise over rows).
void dequantize_rows(GgmlType type, const uint8_t* src, int64_t row_len, int64_t row_begin, int64_t row_end,
                     float* dst);

}  // namespace tandem::gguf
