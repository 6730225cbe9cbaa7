#include "tandem/models/packed_matmul.h"

#include <cstring>
#include <type_traits>

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace tandem {
namespace {

inline float half_to_float(const uint8_t* p) {
  return static_cast<float>(c10::Half(static_cast<uint16_t>(p[0] | (p[1] << 8)), c10::Half::from_bits()));
}

// One output value: the dot product of row `w` (n_blocks quantized blocks) with x. Per block the
// 32 weights are expanded to floats, then an elementwise product is summed; the compiler
// vectorises both loops for each target in target_clones and picks the best at run time.
__attribute__((target_clones("avx512f", "avx2", "default")))
float dot_q4_1(const uint8_t* w, const float* x, int64_t n_blocks) {
  float total = 0.f;
  for (int64_t b = 0; b < n_blocks; ++b, w += 20, x += 32) {
    const float d = half_to_float(w), m = half_to_float(w + 2);
    const uint8_t* qs = w + 4;
    float q[32];
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<float>(qs[j] & 0x0F);
      q[j + 16] = static_cast<float>(qs[j] >> 4);
    }
    float s = 0.f, sx = 0.f;
#pragma omp simd reduction(+ : s, sx)
    for (int j = 0; j < 32; ++j) {
      s += q[j] * x[j];
      sx += x[j];
    }
    total += d * s + m * sx;
  }
  return total;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
float dot_q4_0(const uint8_t* w, const float* x, int64_t n_blocks) {
  float total = 0.f;
  for (int64_t b = 0; b < n_blocks; ++b, w += 18, x += 32) {
    const float d = half_to_float(w);
    const uint8_t* qs = w + 2;
    float q[32];
    for (int j = 0; j < 16; ++j) {
      q[j] = static_cast<float>(static_cast<int>(qs[j] & 0x0F) - 8);
      q[j + 16] = static_cast<float>(static_cast<int>(qs[j] >> 4) - 8);
    }
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < 32; ++j) s += q[j] * x[j];
    total += d * s;
  }
  return total;
}

__attribute__((target_clones("avx512f", "avx2", "default")))
float dot_q8_0(const uint8_t* w, const float* x, int64_t n_blocks) {
  float total = 0.f;
  for (int64_t b = 0; b < n_blocks; ++b, w += 34, x += 32) {
    const float d = half_to_float(w);
    const auto* qs = reinterpret_cast<const int8_t*>(w + 2);
    float s = 0.f;
#pragma omp simd reduction(+ : s)
    for (int j = 0; j < 32; ++j) s += static_cast<float>(qs[j]) * x[j];
    total += d * s;
  }
  return total;
}

// AVX-512 versions, chosen at run time when the CPU has AVX-512F/BW: 32 weights per block are
// widened to two 16-lane float vectors and multiplied into a vector accumulator.
__attribute__((target("avx512f,avx512bw"))) float dot_q4_1_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  __m512 acc = _mm512_setzero_ps();
  const __m128i low = _mm_set1_epi8(0x0F);
  for (int64_t b = 0; b < n_blocks; ++b, w += 20, x += 32) {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 4));
    const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, low)));
    const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), low)));
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    const __m512 s = _mm512_fmadd_ps(q1, x1, _mm512_mul_ps(q0, x0));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(w)), s, acc);
    acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(w + 2)), _mm512_add_ps(x0, x1), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f,avx512bw"))) float dot_q4_0_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  __m512 acc = _mm512_setzero_ps();
  const __m128i low = _mm_set1_epi8(0x0F);
  const __m512 eight = _mm512_set1_ps(8.f);
  for (int64_t b = 0; b < n_blocks; ++b, w += 18, x += 32) {
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
    const __m512 q0 = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(qs, low))), eight);
    const __m512 q1 = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qs, 4), low))), eight);
    const __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(x)));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(w)), s, acc);
  }
  return _mm512_reduce_add_ps(acc);
}

__attribute__((target("avx512f,avx512bw"))) float dot_q8_0_avx512(const uint8_t* w, const float* x, int64_t n_blocks) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t b = 0; b < n_blocks; ++b, w += 34, x += 32) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 18));
    const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(a));
    const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c));
    const __m512 s = _mm512_fmadd_ps(q1, _mm512_loadu_ps(x + 16), _mm512_mul_ps(q0, _mm512_loadu_ps(x)));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(half_to_float(w)), s, acc);
  }
  return _mm512_reduce_add_ps(acc);
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
    for (int i = 0; i < WR; ++i) expand(w + i * row_bytes + b * Expand::kBytes, w0[i], w1[i]);
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
__attribute__((target("avx512f,avx512bw,f16c,fma"))) inline float f16_at(const uint8_t* p) {
  return _cvtsh_ss(static_cast<uint16_t>(p[0] | (p[1] << 8)));
}

struct ExpandQ4_1 {  // w = d * q + m
  static constexpr int64_t kBytes = 20;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* w, __m512& w0, __m512& w1) const {
    const __m512 d = _mm512_set1_ps(f16_at(w)), m = _mm512_set1_ps(f16_at(w + 2));
    q4_codes(w + 4, w0, w1);
    w0 = _mm512_fmadd_ps(w0, d, m);
    w1 = _mm512_fmadd_ps(w1, d, m);
  }
};

struct ExpandQ4_0 {  // w = d * (q - 8)
  static constexpr int64_t kBytes = 18;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* w, __m512& w0, __m512& w1) const {
    const float df = f16_at(w);
    const __m512 d = _mm512_set1_ps(df), off = _mm512_set1_ps(-8.f * df);
    q4_codes(w + 2, w0, w1);
    w0 = _mm512_fmadd_ps(w0, d, off);
    w1 = _mm512_fmadd_ps(w1, d, off);
  }
};

struct ExpandQ8_0 {
  static constexpr int64_t kBytes = 34;
  __attribute__((target("avx512f,avx512bw,f16c,fma"))) void operator()(const uint8_t* w, __m512& w0, __m512& w1) const {
    const __m512 d = _mm512_set1_ps(f16_at(w));
    w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2)))), d);
    w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 18)))), d);
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
    default: return nullptr;
  }
}

using DotFn = float (*)(const uint8_t*, const float*, int64_t);

DotFn dot_for(gguf::GgmlType t, bool portable = false) {
  static const bool has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const bool avx512 = has_avx512 && !portable;
  switch (t) {
    case gguf::GgmlType::Q4_0: return avx512 ? dot_q4_0_avx512 : dot_q4_0;
    case gguf::GgmlType::Q4_1: return avx512 ? dot_q4_1_avx512 : dot_q4_1;
    case gguf::GgmlType::Q8_0: return avx512 ? dot_q8_0_avx512 : dot_q8_0;
    default: return nullptr;
  }
}

}  // namespace

bool packed_supported(gguf::GgmlType type) { return dot_for(type) != nullptr; }

at::Tensor packed_matmul(const at::Tensor& x_in, const PackedWeight& w, bool portable) {
  DotFn dot = dot_for(w.type, portable);
  TORCH_CHECK(dot, "packed_matmul: unsupported type ", gguf::type_name(static_cast<uint32_t>(w.type)));
  auto x = x_in.to(torch::kFloat).contiguous();
  TORCH_CHECK(x.dim() == 2 && x.size(1) == w.cols, "packed_matmul: x must be [M, ", w.cols, "]");
  const int64_t M = x.size(0), n_blocks = w.cols / 32, row_bytes = w.raw.size(1);
  auto y = torch::empty({M, w.rows}, torch::kFloat);
  const uint8_t* base = w.raw.data_ptr<uint8_t>();
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // One activation row (decoding one sequence): the single-row dot kernels stream the weights
  // fastest. Several rows: the tiled kernels expand each block once for all of them.
  if (RowsFn rows = (portable || M < 2) ? nullptr : rows_for(w.type)) {
    at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) { rows(base, row_bytes, xp, M, w.cols, yp, w.rows, r0, r1); });
    return y;
  }
  at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t m = 0; m < M; ++m) yp[m * w.rows + r] = dot(base + r * row_bytes, xp + m * w.cols, n_blocks);
  });
  return y;
}

}  // namespace tandem
