// One 32-weight block of a GGUF row as plain integer codes and per-half scale/offset: w = scale * code +
// offset. The code that does not read the bytes with its own SIMD (the scalar reference of the
// 8-bit-activation path, the re-laying of weights into int8 tiles) reads blocks through this.
// The bit layouts of Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K stand here as the reference; the SIMD
// kernels (packed_matmul.cpp, the portable kernels' integer lanes) state them again in their
// instructions, for speed, and every one of them is tested against the dequantizer.
#pragma once

#include <cstdint>
#include <cstring>

#include <c10/util/Half.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "tandem/core/formats/gguf_quants.h"

namespace tandem::blocks {

inline float half_to_float(const uint8_t* p) {
#if defined(__F16C__)  // a build for F16C (the portable kernels' AVX2 build): one instruction
  return _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
#else
  return static_cast<float>(c10::Half(static_cast<uint16_t>(p[0] | (p[1] << 8)), c10::Half::from_bits()));
#endif
}

/// Q4_K's 6-bit scale and min of sub-block j (0-7) from its 12 packed bytes.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

/// Bytes of one stored block and, for the K-quants, 32-weight sub-blocks per stored block.
template <gguf::GgmlType T>
constexpr int64_t kBlockBytes = T == gguf::GgmlType::Q4_0 ? 18 : T == gguf::GgmlType::Q4_1 ? 20 : T == gguf::GgmlType::Q5_0 ? 22
                                : T == gguf::GgmlType::Q8_0 ? 34 : T == gguf::GgmlType::Q4_K ? 144 : 210;

struct CodeBlock {
  /// Weight order, as numbers (Q8_0's signed), held as floats (exact: at most 8 bits): the loops
  /// that fill them vectorise (widen, shift, mask, convert).
  float codes[32];
  float scale[2], offset[2];  ///< per half of 16 weights (they differ only for Q6_K)
};

/// 32-weight block `b` of the row starting at `row` (b counts 32-weight blocks for every type).
template <gguf::GgmlType T>
inline void code_block(const uint8_t* row, int64_t b, CodeBlock& c) {
  using gguf::GgmlType;
  if constexpr (T == GgmlType::Q4_0 || T == GgmlType::Q4_1) {
    const uint8_t* w = row + b * kBlockBytes<T>;
    // The bytes are copied to a local first: a uint8_t source may alias the codes (char types alias
    // everything), which keeps the compiler from vectorising; two plain loops then vectorise. The
// `omp simd` pragmas (built with -fopenmp-simd, no OpenMP runtime) ask for vector code where
// GCC would unroll these short loops into scalar byte operations.
    uint8_t qs[16];
    std::memcpy(qs, w + (T == GgmlType::Q4_0 ? 2 : 4), 16);
#pragma omp simd
    for (int j = 0; j < 16; ++j) c.codes[j] = qs[j] & 0x0F;
#pragma omp simd
    for (int j = 0; j < 16; ++j) c.codes[j + 16] = qs[j] >> 4;
    const float d = half_to_float(w);
    c.scale[0] = c.scale[1] = d;
    c.offset[0] = c.offset[1] = T == GgmlType::Q4_0 ? -8.f * d : half_to_float(w + 2);
  } else if constexpr (T == GgmlType::Q8_0) {
    const uint8_t* w = row + b * kBlockBytes<T>;
    int8_t qs[32];
    std::memcpy(qs, w + 2, 32);
#pragma omp simd
    for (int j = 0; j < 32; ++j) c.codes[j] = qs[j];
    c.scale[0] = c.scale[1] = half_to_float(w);
    c.offset[0] = c.offset[1] = 0.f;
  } else if constexpr (T == GgmlType::Q5_0) {
    const uint8_t* w = row + b * kBlockBytes<T>;
    uint32_t qh;
    std::memcpy(&qh, w + 2, 4);
    uint8_t qs[16];  // local copy: see Q4_0
    std::memcpy(qs, w + 6, 16);
    // The fifth bit of weight j is bit j of qh.
#pragma omp simd
    for (int j = 0; j < 16; ++j) c.codes[j] = (qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
#pragma omp simd
    for (int j = 0; j < 16; ++j) c.codes[j + 16] = (qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
    const float d = half_to_float(w);
    c.scale[0] = c.scale[1] = d;
    c.offset[0] = c.offset[1] = -16.f * d;
  } else if constexpr (T == GgmlType::Q4_K) {
    const uint8_t* blk = row + (b >> 3) * kBlockBytes<T>;
    const int j = static_cast<int>(b & 7);
    uint8_t sc, mn;
    scale_min_k4(j, blk + 4, sc, mn);
    uint8_t q[32];  // local copy: see Q4_0
    std::memcpy(q, blk + 16 + (j >> 1) * 32, 32);
    const int shift = (j & 1) * 4;
#pragma omp simd
    for (int l = 0; l < 32; ++l) c.codes[l] = (q[l] >> shift) & 0x0F;
    c.scale[0] = c.scale[1] = half_to_float(blk) * sc;
    c.offset[0] = c.offset[1] = -(half_to_float(blk + 2) * mn);
  } else {
    static_assert(T == GgmlType::Q6_K, "code_block: no layout for this type");
    const uint8_t* blk = row + (b >> 3) * kBlockBytes<T>;
    const int sub = static_cast<int>(b & 7), h = sub >> 2, j = sub & 3;
    uint8_t ql[32], qh[32];  // local copies: see Q4_0
    std::memcpy(ql, blk + 64 * h + (j & 1) * 32, 32);
    std::memcpy(qh, blk + 128 + 32 * h, 32);
    const int lshift = j >= 2 ? 4 : 0;
#pragma omp simd
    for (int l = 0; l < 32; ++l) c.codes[l] = ((ql[l] >> lshift) & 0xF) | (((qh[l] >> (2 * j)) & 3) << 4);
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192) + 8 * h + 2 * j;
    const float d = half_to_float(blk + 208);
    for (int k = 0; k < 2; ++k) c.scale[k] = d * static_cast<float>(sc[k]), c.offset[k] = -32.f * c.scale[k];
  }
}

}  // namespace tandem::blocks
