// The 8-bit-activation product (decode_kernels: int8_activations) on weights re-laid for it.
//
// In GGUF's own layout a row's block costs one integer dot product, its horizontal sum and a
// float scale per activation row, and the unpacking of its codes is spread over 32 weights of one
// row: measured, the row-by-row VNNI kernels were no faster than the float ones for Q5_0, Q4_K
// and Q6_K, and at batch 8 slower. Here 16 weight rows are interleaved per 4-byte group (the
// operand order of VPDPBUSD), so one instruction multiplies a group of 4 codes of 16 rows by one
// broadcast group of an activation row: every lane is a different output row, no horizontal sums
// remain, and each unpacking step serves 16 rows. A 32-weight block costs 8 such products per
// activation row, then one conversion and two multiply-adds for 16 rows.
//
// The layout keeps GGUF's bits per weight (one row-block of tiles takes the bytes of one GGUF
// block; Q4_K: 148 bytes per 256 weights against 144), because at batch 1 a step streams every
// weight once from memory: a first layout with float scales and a byte per 5- or 6-bit code read
// up to 1.8x the bytes and was slower than the row kernels on Q5_0. So codes stay packed (two
// 4-bit codes per byte; a Q5_0 code's fifth bit in a bit mask, a Q6_K code's top two bits in a
// 2-bit plane) and scales stay in their stored form (float16 scales, the K-quants' 6- or 8-bit
// sub-block scales beside the super-block's float16 scale); the kernel converts them, exactly:
// w = scale * code + offset is the dequantized value bit for bit.
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

/// A weight re-laid in groups of 16 rows. A group holds `units` records of `unit_bytes` each: one
/// per 32-weight block (legacy types) or per 256-weight super-block (K-quants: the super-block's
/// float16 scales, then its 8 blocks). Records are written by fill_tiles and read by the kernel
/// in int8_tiles.cpp, which state the byte order of each type in one place (TileLayout).
struct Int8Tiles {
  gguf::GgmlType type = gguf::GgmlType::F32;
  int64_t rows = 0, groups = 0, blocks = 0;  ///< groups of 16 rows, 32-weight blocks per row
  int64_t units = 0, unit_bytes = 0;
  at::Tensor bytes;  ///< uint8 [groups, units, unit_bytes]
};

/// Whether this CPU runs the tiled kernel (AVX512-VNNI) and `type` has a layout for it.
bool int8_tiles_supported(gguf::GgmlType type);

/// `w` re-laid (one pass over its blocks, both cores).
std::shared_ptr<const Int8Tiles> make_int8_tiles(const PackedWeight& w);

/// y [M, rows] (row stride ldy) = the M quantized activation rows x[0..M) times the weight's rows.
void int8_tiles_matmul(const Int8Tiles& t, const Q8Activations* x, int64_t M, float* y, int64_t ldy);

/// y[16 g0 ..] = groups [g0, g1) of the weight's rows times ONE quantized activation row, on the
/// calling thread (no parallel region: a caller that splits the groups among its own threads).
void int8_tiles_groups(const Int8Tiles& t, const Q8Activations& x, float* y, int64_t g0, int64_t g1);

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
