#include "tandem/models/packed_matmul.h"

#include <cmath>
#include <cstring>
#include <vector>
#include <type_traits>

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include "tandem/core/runtime.h"
#include "tandem/models/block_codes.h"
#include "tandem/models/portable_kernels.h"
#include "tandem/models/prefetch.h"

namespace tandem {
namespace {

using blocks::scale_min_k4;

// A block's float16 scale in one instruction (F16C; blocks::half_to_float is the portable
// conversion, ~20 scalar operations where the file is not built for F16C, as this one is not:
// two of them per Q4_1 block cost the single-row kernel more than its vector work).
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

// Single-row products for the 4- and 8-bit legacy types on AVX-512 (the tiled kernels below
// serve every other case): 32 weights per block are widened to two 16-lane float vectors and
// multiplied into vector accumulators. Two blocks per iteration into separate accumulators (and
// Q4_1's offset terms into their own): one accumulator chained two FMAs per block, so the loop
// waited on FMA latency (the AVX2 build of the portable kernels, four chains, ran it faster).
template <typename Block>
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline float dot_blocks_avx512(const uint8_t* w, const float* x, int64_t n_blocks,
                                                                          int64_t block_bytes, Block block) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t b = 0;
  for (; b + 2 <= n_blocks; b += 2, w += 2 * block_bytes, x += 64) {
    block(w, x, acc[0], acc[1]);
    block(w + block_bytes, x + 32, acc[2], acc[3]);
  }
  if (b < n_blocks) block(w, x, acc[0], acc[1]);
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

__attribute__((target("avx512f,avx512bw,f16c,fma"))) float dot_q4_1_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  return dot_blocks_avx512(w, x, n_blocks, 20, [](const uint8_t* p, const float* xb, __m512& scaled, __m512& offsets)
                               __attribute__((target("avx512f,avx512bw,f16c,fma"))) {
    const __m128i low = _mm_set1_epi8(0x0F);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 4));
    const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, low)));
    const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), low)));
    const __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
    const __m512 s = _mm512_fmadd_ps(q1, x1, _mm512_mul_ps(q0, x0));
    scaled = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p)), s, scaled);
    offsets = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p + 2)), _mm512_add_ps(x0, x1), offsets);
  });
}

__attribute__((target("avx512f,avx512bw,f16c,fma"))) float dot_q4_0_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  return dot_blocks_avx512(w, x, n_blocks, 18, [](const uint8_t* p, const float* xb, __m512& scaled, __m512&)
                               __attribute__((target("avx512f,avx512bw,f16c,fma"))) {
    const __m128i low = _mm_set1_epi8(0x0F);
    const __m512 eight = _mm512_set1_ps(8.f);
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m512 q0 = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, low))), eight);
    const __m512 q1 = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), low))), eight);
    const __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(xb)));
    scaled = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p)), s, scaled);
  });
}

__attribute__((target("avx512f,avx512bw,f16c,fma"))) float dot_q8_0_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  return dot_blocks_avx512(w, x, n_blocks, 34, [](const uint8_t* p, const float* xb, __m512& scaled, __m512&)
                               __attribute__((target("avx512f,avx512bw,f16c,fma"))) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 2));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 18));
    const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(a));
    const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c));
    const __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(xb + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(xb)));
    scaled = _mm512_fmadd_ps(_mm512_set1_ps(f16_at(p)), s, scaled);
  });
}

// Several activation rows at once (batched decoding): each block is dequantized once into two
// 16-lane vectors of weights (w = d*q + m, one rounding as in a fused dequantize) and then
// multiplied into MT row accumulators. Expanding the 4-bit block costs more than the two FMAs per
// row, so sharing it across rows is what lets a batch of 8 cost little more than one row.
template <int WR, int MT, typename Expand>
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline void rows_avx512(const uint8_t* w, int64_t row_bytes,
                                                                             const float* x, int64_t ldx,
                                                                             int64_t n_blocks, float* y, int64_t ldy,
                                                                             Expand expand) {
  // WR weight rows x MT activation rows per pass: each activation vector loaded feeds WR FMAs.
  __m512 acc[WR][MT];
  for (int i = 0; i < WR; ++i)
    for (int m = 0; m < MT; ++m) acc[i][m] = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b) {
    __m512 w0[WR], w1[WR];
    for (int i = 0; i < WR; ++i) expand(w + i * row_bytes, b, w0[i], w1[i]);
    const float* xb = x + b * 32;
    for (int m = 0; m < MT; ++m) {
      const __m512 x0 = _mm512_loadu_ps(xb + m * ldx), x1 = _mm512_loadu_ps(xb + m * ldx + 16);
      for (int i = 0; i < WR; ++i) {
        acc[i][m] = _mm512_fmadd_ps(w0[i], x0, acc[i][m]);
        acc[i][m] = _mm512_fmadd_ps(w1[i], x1, acc[i][m]);
      }
    }
  }
  for (int i = 0; i < WR; ++i)
    for (int m = 0; m < MT; ++m) y[m * ldy + i] = _mm512_reduce_add_ps(acc[i][m]);
}

// A Q4 block's 32 four-bit codes as two 16-lane float vectors (low nibbles, then high), and its
// leading float16 scale; Q4_1 and Q4_0 differ only in what they add.
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline void q4_codes(const uint8_t* qs, __m512& lo, __m512& hi) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i low = _mm_set1_epi8(0x0F);
  lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, low)));
  hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), low)));
}

// Expanders: the 32 weights of 32-weight block `b` of a row, as two 16-lane vectors.
struct ExpandQ4_1 {  // w = d * q + m
  static constexpr int64_t kBytes = 20;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* w = row + b * kBytes;
    const __m512 d = _mm512_set1_ps(f16_at(w)), m = _mm512_set1_ps(f16_at(w + 2));
    q4_codes(w + 4, w0, w1);
    w0 = _mm512_fmadd_ps(w0, d, m);
    w1 = _mm512_fmadd_ps(w1, d, m);
  }
};

struct ExpandQ4_0 {  // w = d * (q - 8)
  static constexpr int64_t kBytes = 18;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* w = row + b * kBytes;
    const float df = f16_at(w);
    const __m512 d = _mm512_set1_ps(df), off = _mm512_set1_ps(-8.f * df);
    q4_codes(w + 2, w0, w1);
    w0 = _mm512_fmadd_ps(w0, d, off);
    w1 = _mm512_fmadd_ps(w1, d, off);
  }
};

struct ExpandQ8_0 {
  static constexpr int64_t kBytes = 34;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* w = row + b * kBytes;
    const __m512 d = _mm512_set1_ps(f16_at(w));
    w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2)))), d);
    w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 18)))), d);
  }
};

struct ExpandQ5_0 {  // w = d * (q - 16), q's fifth bits packed in 32 bits
  static constexpr int64_t kBytes = 22;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* w = row + b * kBytes;
    uint32_t qh;
    std::memcpy(&qh, w + 2, 4);
    const float df = f16_at(w);
    q4_codes(w + 6, w0, w1);
    const __m512 sixteen = _mm512_set1_ps(16.f);
    w0 = _mm512_mask_add_ps(w0, static_cast<__mmask16>(qh & 0xFFFF), w0, sixteen);
    w1 = _mm512_mask_add_ps(w1, static_cast<__mmask16>(qh >> 16), w1, sixteen);
    const __m512 d = _mm512_set1_ps(df), off = _mm512_set1_ps(-16.f * df);
    w0 = _mm512_fmadd_ps(w0, d, off);
    w1 = _mm512_fmadd_ps(w1, d, off);
  }
};

// 16 bytes of codes -> 16 floats.
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline __m512 bytes_to_ps(__m128i v) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v));
}

struct ExpandQ4_K {  // w = (d * sc) * q - (dmin * m), per 32-weight sub-block
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* blk = row + (b >> 3) * 144;
    const int j = static_cast<int>(b & 7);
    uint8_t sc, mn;
    scale_min_k4(j, blk + 4, sc, mn);
    const __m512 d = _mm512_set1_ps(f16_at(blk) * sc), m = _mm512_set1_ps(-(f16_at(blk + 2) * mn));
    const uint8_t* q = blk + 16 + (j >> 1) * 32;
    const __m128i low = _mm_set1_epi8(0x0F);
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16));
    if (j & 1) a = _mm_srli_epi16(a, 4), c = _mm_srli_epi16(c, 4);
    w0 = _mm512_fmadd_ps(bytes_to_ps(_mm_and_si128(a, low)), d, m);
    w1 = _mm512_fmadd_ps(bytes_to_ps(_mm_and_si128(c, low)), d, m);
  }
};

struct ExpandQ6_K {  // w = (d * sc) * (q - 32), a scale per 16 weights
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* row, int64_t b, __m512& w0, __m512& w1) const {
    const uint8_t* blk = row + (b >> 3) * 210;
    const int sub = static_cast<int>(b & 7), h = sub >> 2, j = sub & 3;
    const uint8_t* ql = blk + 64 * h + (j & 1) * 32;
    const uint8_t* qh = blk + 128 + 32 * h;
    const auto* sc = reinterpret_cast<const int8_t*>(blk + 192) + 8 * h + 2 * j;
    const float d = f16_at(blk + 208);
    const __m128i low = _mm_set1_epi8(0x0F), three = _mm_set1_epi8(3), hs = _mm_cvtsi32_si128(2 * j);
    const __m512 off = _mm512_set1_ps(32.f);
    __m512* out[2] = {&w0, &w1};
    for (int half = 0; half < 2; ++half) {
      __m128i l = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ql + 16 * half));
      if (j >= 2) l = _mm_srli_epi16(l, 4);
      const __m128i hi = _mm_and_si128(_mm_srl_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qh + 16 * half)), hs), three);
      const __m128i q = _mm_or_si128(_mm_and_si128(l, low), _mm_slli_epi16(hi, 4));
      *out[half] = _mm512_mul_ps(_mm512_sub_ps(bytes_to_ps(q), off), _mm512_set1_ps(d * static_cast<float>(sc[half])));
    }
  }
};

// y[m, r] for rows r0..r1 and all M activation rows, in tiles of up to 8 activation rows.
template <typename Expand>
__attribute__((target("avx512f,avx512bw,f16c,fma"))) void matmul_rows_avx512(const uint8_t* base, int64_t row_bytes,
                                                                             const float* x, int64_t M, int64_t cols,
                                                                             float* y, int64_t ldy, int64_t r0,
                                                                             int64_t r1) {
  const Expand e;
  const int64_t nb = cols / 32;
  // Two weight rows at a time (one for an odd last row), times tiles of up to 8 activation rows:
  // 2 x 8 accumulators, 4 expanded weight vectors and 2 activation vectors fit the 32 registers.
  auto tile = [&](auto wr, int64_t r) {
    constexpr int WR = decltype(wr)::value;
    const uint8_t* w = base + r * row_bytes;
    int64_t m = 0;
    for (; m + 8 <= M; m += 8) rows_avx512<WR, 8>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e);
    switch (M - m) {
      case 7: rows_avx512<WR, 7>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 6: rows_avx512<WR, 6>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 5: rows_avx512<WR, 5>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 4: rows_avx512<WR, 4>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 3: rows_avx512<WR, 3>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 2: rows_avx512<WR, 2>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      case 1: rows_avx512<WR, 1>(w, row_bytes, x + m * cols, cols, nb, y + m * ldy + r, ldy, e); break;
      default: break;
    }
  };
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) tile(std::integral_constant<int, 2>{}, r);
  if (r < r1) tile(std::integral_constant<int, 1>{}, r);
}

using RowsFn = void (*)(const uint8_t*, int64_t, const float*, int64_t, int64_t, float*, int64_t, int64_t, int64_t);

RowsFn rows_for(gguf::GgmlType t) {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
  if (!ok) return nullptr;
  switch (t) {
    case gguf::GgmlType::Q4_0: return matmul_rows_avx512<ExpandQ4_0>;
    case gguf::GgmlType::Q4_1: return matmul_rows_avx512<ExpandQ4_1>;
    case gguf::GgmlType::Q8_0: return matmul_rows_avx512<ExpandQ8_0>;
    case gguf::GgmlType::Q5_0: return matmul_rows_avx512<ExpandQ5_0>;
    case gguf::GgmlType::Q4_K: return matmul_rows_avx512<ExpandQ4_K>;
    case gguf::GgmlType::Q6_K: return matmul_rows_avx512<ExpandQ6_K>;
    default: return nullptr;
  }
}

using DotFn = float (*)(const uint8_t*, const float*, int64_t);

// Rows [r0, r1) by a single-row kernel. A decode step streams each weight once, and one core
// alone keeps too few cache misses in flight to reach the memory's rate (prefetch.h); so the
// lines a few rows ahead are asked for while this row's are multiplied (SmolLM2's exact decode
// 86-90 -> 98-110 tok/s with it, the same minutes, on a day this machine ran slow).
void dot_rows(DotFn dot, const uint8_t* base, int64_t row_bytes, const float* x, int64_t n_blocks, float* y, int64_t r0,
              int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    prefetch_ahead(base + r * row_bytes, row_bytes);
    y[r] = dot(base + r * row_bytes, x, n_blocks);
  }
}

// The single-row AVX-512 kernel for `t`, or nullptr (no such CPU, or a type the tiled kernels serve).
DotFn avx512_dot_for(gguf::GgmlType t) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (!has_avx512) return nullptr;
  switch (t) {
    case gguf::GgmlType::Q4_0: return dot_q4_0_avx512;
    case gguf::GgmlType::Q4_1: return dot_q4_1_avx512;
    case gguf::GgmlType::Q8_0: return dot_q8_0_avx512;
    default: return nullptr;
  }
}

// ---- 8-bit activations (decode_kernels: int8_activations) ----
// Each activation row is quantized per 32 values to int8 (quantize_q8, int8_tiles.h), as
// llama.cpp's q8 blocks; a weight block then costs one integer dot product and one scale.

// The reference arithmetic of the 8-bit path, for any block layout: per half of 16 weights, an
// integer dot product of codes and activation codes, then the half's scale and offset terms.
template <gguf::GgmlType T>
float dot_int8_scalar(const uint8_t* row, const Q8Activations& x, int64_t n_blocks) {
  float total = 0.f;
  blocks::CodeBlock c;
  for (int64_t b = 0; b < n_blocks; ++b) {
    blocks::code_block<T>(row, b, c);
    const int8_t* xq = x.q.data() + b * 32;
    for (int h = 0; h < 2; ++h) {
      int32_t isum = 0;
      for (int l = 16 * h; l < 16 * h + 16; ++l) isum += static_cast<int32_t>(c.codes[l]) * xq[l];
      total += c.scale[h] * x.d[static_cast<size_t>(b)] * static_cast<float>(isum) + c.offset[h] * x.s16[static_cast<size_t>(2 * b + h)];
    }
  }
  return total;
}

using Int8DotFn = float (*)(const uint8_t*, const Q8Activations&, int64_t);

// The scalar reference arithmetic: what a CPU without AVX512-VNNI (or cpu_kernels: portable) runs.
Int8DotFn int8_dot_for(gguf::GgmlType t) {
  switch (t) {
    case gguf::GgmlType::Q4_0: return dot_int8_scalar<gguf::GgmlType::Q4_0>;
    case gguf::GgmlType::Q4_1: return dot_int8_scalar<gguf::GgmlType::Q4_1>;
    case gguf::GgmlType::Q8_0: return dot_int8_scalar<gguf::GgmlType::Q8_0>;
    case gguf::GgmlType::Q5_0: return dot_int8_scalar<gguf::GgmlType::Q5_0>;
    case gguf::GgmlType::Q4_K: return dot_int8_scalar<gguf::GgmlType::Q4_K>;
    case gguf::GgmlType::Q6_K: return dot_int8_scalar<gguf::GgmlType::Q6_K>;
    default: return nullptr;
  }
}

at::Tensor int8_matmul(const at::Tensor& x, const PackedWeight& w, bool tiled) {
  const int64_t M = x.size(0), n_blocks = w.cols / 32, row_bytes = w.raw.size(1);
  // Reused per thread: a decode step makes ~120 of these products, each a few microseconds.
  thread_local std::vector<Q8Activations> xq;
  if (static_cast<int64_t>(xq.size()) < M) xq.resize(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) quantize_q8(x.data_ptr<float>() + m * w.cols, n_blocks, xq[static_cast<size_t>(m)]);
  auto y = torch::empty({M, w.rows}, torch::kFloat);
  float* yp = y.data_ptr<float>();
  if (tiled) {  // the re-laid weights (int8_tiles.h)
    int8_tiles_matmul(w.int8_tiles->get(w), xq.data(), M, yp, w.rows);
    return y;
  }
  const Int8DotFn dot = int8_dot_for(w.type);
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t m = 0; m < M; ++m) yp[m * w.rows + r] = dot(base + r * row_bytes, xq[static_cast<size_t>(m)], n_blocks);
  });
  return y;
}

// x as contiguous float32, without a dispatch when it already is (a decode step's activations).
at::Tensor as_float_rows(const at::Tensor& x) {
  return x.scalar_type() == torch::kFloat && x.is_contiguous() ? x : x.to(torch::kFloat).contiguous();
}

}  // namespace

bool packed_supported(gguf::GgmlType type) { return portable::rows_for(type) != nullptr; }

at::Tensor packed_matmul_int8(const at::Tensor& x_in, const PackedWeight& w, bool portable) {
  RECORD_FUNCTION("tandem::packed_matmul", c10::ArrayRef<const c10::IValue>{});
  portable = portable || cpu_kernels() == CpuKernels::kPortable;  // a direct call honours the setting too
  TORCH_CHECK(int8_dot_for(w.type), "packed_matmul_int8: no 8-bit-activation kernel for ", gguf::type_name(static_cast<uint32_t>(w.type)));
  const auto x = as_float_rows(x_in);
  TORCH_CHECK(x.dim() == 2 && x.size(1) == w.cols, "packed_matmul_int8: x must be [M, ", w.cols, "]");
  // The re-laid weights (int8_tiles.h) at any batch: made on first use, they keep GGUF's bytes
  // per weight and cost fewer instructions per weight than a row-by-row product.
  const bool tiled = !portable && int8_tiles_supported(w.type);
  return int8_matmul(x, w, tiled);
}

at::Tensor packed_matmul(const at::Tensor& x_in, const PackedWeight& w, bool portable) {
  portable = portable || cpu_kernels() == CpuKernels::kPortable;
  if (decode_kernels() == DecodeKernels::kInt8Activations && int8_dot_for(w.type)) return packed_matmul_int8(x_in, w, portable);
  RECORD_FUNCTION("tandem::packed_matmul", c10::ArrayRef<const c10::IValue>{});
  TORCH_CHECK(packed_supported(w.type), "packed_matmul: unsupported type ", gguf::type_name(static_cast<uint32_t>(w.type)));
  const auto x = as_float_rows(x_in);
  TORCH_CHECK(x.dim() == 2 && x.size(1) == w.cols, "packed_matmul: x must be [M, ", w.cols, "]");
  TORCH_CHECK(w.cols % gguf::type_traits(static_cast<uint32_t>(w.type))->block_size == 0, "packed_matmul: rows of ", w.cols,
              " weights are not whole blocks of ", gguf::type_name(static_cast<uint32_t>(w.type)));
  const int64_t M = x.size(0), n_blocks = w.cols / 32, row_bytes = w.raw.size(1);
  auto y = torch::empty({M, w.rows}, torch::kFloat);
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // One activation row (decoding one sequence) of a legacy type: the single-row dot kernels
  // stream the weights fastest. Otherwise the tiled kernels expand each block once for all rows:
  // AVX-512 where the CPU has it, else (or when asked: cpu_kernels: portable) the Eigen build.
  if (DotFn dot = (portable || M > 1) ? nullptr : avx512_dot_for(w.type)) {
    at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) { dot_rows(dot, base, row_bytes, xp, n_blocks, yp, r0, r1); });
    return y;
  }
  RowsFn rows = portable ? nullptr : rows_for(w.type);
  portable::RowsFn fallback = portable::rows_for(w.type);
  at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) {
    if (rows) rows(base, row_bytes, xp, M, w.cols, yp, w.rows, r0, r1);
    else fallback(base, row_bytes, xp, M, w.cols, yp, w.rows, r0, r1);
  });
  return y;
}

bool packed_reads_q8(const PackedWeight& w) {
  return decode_kernels() == DecodeKernels::kInt8Activations && int8_dot_for(w.type) != nullptr;
}

void packed_row_range(const PackedWeight& w, const float* x, const Q8Activations& xq, float* y, int64_t r0, int64_t r1) {
  const bool portable = cpu_kernels() == CpuKernels::kPortable;
  const int64_t n_blocks = w.cols / 32, row_bytes = w.raw.size(1);
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  if (packed_reads_q8(w)) {  // as packed_matmul_int8: the tiles where the CPU runs them
    if (!portable && int8_tiles_supported(w.type)) {
      TORCH_CHECK(r0 % 16 == 0 && (r1 % 16 == 0 || r1 == w.rows), "packed_row_range: rows ", r0, "..", r1,
                  " do not start and end on the tiles' groups of 16");
      int8_tiles_groups(w.int8_tiles->get(w), xq, y, r0 / 16, (r1 + 15) / 16);
      return;
    }
    const Int8DotFn dot = int8_dot_for(w.type);
    for (int64_t r = r0; r < r1; ++r) y[r] = dot(base + r * row_bytes, xq, n_blocks);
    return;
  }
  TORCH_CHECK(packed_supported(w.type), "packed_row_range: unsupported type ", gguf::type_name(static_cast<uint32_t>(w.type)));
  if (DotFn dot = portable ? nullptr : avx512_dot_for(w.type)) return dot_rows(dot, base, row_bytes, x, n_blocks, y, r0, r1);
  if (RowsFn rows = portable ? nullptr : rows_for(w.type)) return rows(base, row_bytes, x, 1, w.cols, y, w.rows, r0, r1);
  portable::rows_for(w.type)(base, row_bytes, x, 1, w.cols, y, w.rows, r0, r1);
}

}  // namespace tandem
