// The 8-bit-activation product (decode_kernels: int8_activations) on weights re-laid for it.
//
// In GGUF's own layout a row's block costs one integer dot product plus a float scale per
// activation row, so at batch 8 every block is unpacked and scaled 8 times over and the integer
// unit, four times the float FMA's multiply-adds per instruction, is mostly idle (measured: the
// row-by-row VNNI kernel was slower than the float one at batch 8). Here 16 weight rows are
// interleaved per 4-byte group (the operand order of VPDPBUSD), so one instruction multiplies a
// group of 4 codes of 16 rows by one broadcast group of an activation row: every lane is a
// different output row and no horizontal sums remain. A 32-weight block costs 8 such products
// per activation row, then one conversion and two multiply-adds (scale, offset) for 16 rows.
//
// Codes are kept as unsigned bytes (Q8_0's signed codes shifted by 128, the shift folded into
// the offset) or, for the 4-bit types, two codes per byte; scale and offset per row and block
// (per half of 16 weights for Q6_K): w = scale * code + offset, exactly the dequantized value.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/core/Tensor.h>

#include "tandem/core/formats/gguf_quants.h"

namespace tandem {

struct PackedWeight;

/// Activation rows quantized per 32 values as llama.cpp's q8 blocks: d = max|x| / 127,
/// q = round(x / d) (ties to even); s = d * sum(q) per block and s16 per half of 16 (for the
/// weights' offset terms).
struct Q8Activations {
  std::vector<int8_t> q;
  std::vector<float> d, s, s16;
};
void quantize_q8(const float* x, int64_t n_blocks, Q8Activations& r);

struct Int8Tiles {
  int64_t rows = 0, groups = 0, blocks = 0;  ///< groups of 16 rows, 32-weight blocks per row
  bool nibbles = false;  ///< two 4-bit codes per byte (Q4_0, Q4_1, Q4_K)
  bool halves = false;   ///< a scale and offset per half of 16 weights (Q6_K), else per block
  at::Tensor codes;      ///< uint8 [groups, blocks, 512 or 256 bytes]
  std::vector<float> scale, offset;  ///< [groups, blocks, (2,) 16]
};

/// Whether this CPU runs the tiled kernel (AVX512-VNNI) and `type` has a layout for it.
bool int8_tiles_supported(gguf::GgmlType type);

/// `w` re-laid (one pass over its blocks, both cores).
std::shared_ptr<const Int8Tiles> make_int8_tiles(const PackedWeight& w);

/// y [M, rows] (row stride ldy) = the quantized activation rows times the weight's rows.
void int8_tiles_matmul(const Int8Tiles& t, const std::vector<Q8Activations>& x, float* y, int64_t ldy);

/// A weight's tiles, made on first use and shared by every copy of the PackedWeight (a weight
/// decoded only through the exact path never pays for them: memory or time).
class LazyInt8Tiles {
 public:
  const Int8Tiles& get(const PackedWeight& w);

 private:
  std::once_flag once_;
  std::shared_ptr<const Int8Tiles> tiles_;
};

}  // namespace tandem
