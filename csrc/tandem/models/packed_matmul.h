// Matrix-vector products straight from GGUF's quantized blocks (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K): decoding a
// token reads every weight once, so reading 4.5-8.5 bits per weight instead of 32 is what makes
// small-batch decoding fast on CPU. The math is float32 on the exact dequantized values; only the
// order of summation differs from a float32 matmul (block layouts: block_codes.h).
#pragma once

#include <cstdint>
#include <memory>

#include <ATen/core/Tensor.h>

#include "tandem/core/formats/gguf_quants.h"
#include "tandem/models/int8_tiles.h"

namespace tandem {

struct PackedWeight {
  gguf::GgmlType type = gguf::GgmlType::F32;
  at::Tensor raw;  ///< uint8 [rows, row_bytes], rows in output order
  int64_t rows = 0, cols = 0;
  /// The rows re-laid for the tiled 8-bit-activation kernel, made on its first use (int8_tiles.h).
  std::shared_ptr<LazyInt8Tiles> int8_tiles = std::make_shared<LazyInt8Tiles>();
  bool defined() const { return raw.defined(); }
};

/// Largest number of activation rows that use the packed kernels (decoding a batch); above it
/// (prefill) BLAS on float32 weights. In the model, where float32 weights stream from memory, a
/// batch-8 decode step of SmolLM2-135M fell from 74 ms (BLAS) to ~40 ms (packed, tiles of 8);
/// 16 extends that by one more tile, an estimate (isolated, cache-hot BLAS ties at 8-16 rows).
constexpr int64_t kPackedMaxRows = 16;

/// Whether packed_matmul supports `type`.
bool packed_supported(gguf::GgmlType type);

/// y [M, rows] = x [M, cols] (float32, contiguous) times W^T, W given by its quantized blocks.
/// AVX-512 kernels where the CPU has them, else the portable Eigen kernels (portable_kernels.h);
/// `portable` (or cpu_kernels: portable) forces the portable ones. Under decode_kernels() ==
/// int8_activations, every supported type takes packed_matmul_int8.
at::Tensor packed_matmul(const at::Tensor& x, const PackedWeight& w, bool portable = false);

/// The same product with x quantized per 32 values to int8 (llama.cpp's arithmetic; integer dot
/// products with AVX512-VNNI where the CPU has it; `portable`: the scalar reference arithmetic).
at::Tensor packed_matmul_int8(const at::Tensor& x, const PackedWeight& w, bool portable = false);

/// Whether packed_row_range reads the weight's product from quantized activations (decode_kernels:
/// int8_activations and a type with an 8-bit kernel): then its caller passes x through quantize_q8.
bool packed_reads_q8(const PackedWeight& w);

/// Rows [r0, r1) of the product of ONE activation row x [cols] with `w`, into y[r0..r1), on the
/// calling thread: for a decode step that splits a product's rows among threads it holds itself
/// (step_team.h). Each row's value is the one packed_matmul (or packed_matmul_int8, reading `xq`)
/// gives for it under the current settings. Where the tiles serve (int8), r0 and r1 fall on their
/// groups of 16 rows (r1 may be w.rows).
void packed_row_range(const PackedWeight& w, const float* x, const Q8Activations& xq, float* y, int64_t r0, int64_t r1);

}  // namespace tandem
