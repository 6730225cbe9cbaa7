#include "tandem/models/packed_matmul.h"

#include <cstring>

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
  at::parallel_for(0, w.rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t m = 0; m < M; ++m) yp[m * w.rows + r] = dot(base + r * row_bytes, xp + m * w.cols, n_blocks);
  });
  return y;
}

}  // namespace tandem
