// Eight 32-bit lanes of integer weight codes: widening code bytes, shifts, masks and the
// conversion to float. This is the one part of the portable kernels that Eigen's arrays do not
// vectorise (they have no byte widening or bitwise operations on integers; plain loops doing it
// measured 7.3 ns per Q4_1 block against 1.8 ns for these instructions, AVX2, one core), so it is
// written per instruction set: AVX2 here, and plain C++ (one lane at a time) for every other
// build. Everything downstream of the float conversion is Eigen (portable_kernels_impl.h).
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace tandem::lanes {

#if defined(__AVX2__)

struct Codes8 {
  __m256i v;
};
inline Codes8 widen_u8(const uint8_t* p) {  // 8 bytes, zero-extended
  return {_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))};
}
inline Codes8 widen_s8(const uint8_t* p) {  // 8 bytes, sign-extended
  return {_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))};
}
inline Codes8 shr(Codes8 a, int n) { return {_mm256_srl_epi32(a.v, _mm_cvtsi32_si128(n))}; }
inline Codes8 shl(Codes8 a, int n) { return {_mm256_sll_epi32(a.v, _mm_cvtsi32_si128(n))}; }
inline Codes8 mask(Codes8 a, int32_t m) { return {_mm256_and_si256(a.v, _mm256_set1_epi32(m))}; }
inline Codes8 operator|(Codes8 a, Codes8 b) { return {_mm256_or_si256(a.v, b.v)}; }
/// Lane j: bit (first + j) of `bits`, times 16 (Q5_0's fifth bit).
inline Codes8 bit4_of(uint32_t bits, int first) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i b = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int32_t>(bits >> first)), idx);
  return {_mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(1)), 4)};
}
/// out[j] = scale * code[j] + offset (one rounding: fused multiply-add).
inline void dequantize(Codes8 a, float scale, float offset, float* out) {
  _mm256_storeu_ps(out, _mm256_fmadd_ps(_mm256_cvtepi32_ps(a.v), _mm256_set1_ps(scale), _mm256_set1_ps(offset)));
}

#else

struct Codes8 {
  int32_t v[8];
};
inline Codes8 widen_u8(const uint8_t* p) {
  Codes8 r;
  for (int j = 0; j < 8; ++j) r.v[j] = p[j];
  return r;
}
inline Codes8 widen_s8(const uint8_t* p) {
  Codes8 r;
  for (int j = 0; j < 8; ++j) r.v[j] = static_cast<int8_t>(p[j]);
  return r;
}
inline Codes8 shr(Codes8 a, int n) {
  for (auto& x : a.v) x = static_cast<int32_t>(static_cast<uint32_t>(x) >> n);
  return a;
}
inline Codes8 shl(Codes8 a, int n) {
  for (auto& x : a.v) x = static_cast<int32_t>(static_cast<uint32_t>(x) << n);
  return a;
}
inline Codes8 mask(Codes8 a, int32_t m) {
  for (auto& x : a.v) x &= m;
  return a;
}
inline Codes8 operator|(Codes8 a, Codes8 b) {
  for (int j = 0; j < 8; ++j) a.v[j] |= b.v[j];
  return a;
}
inline Codes8 bit4_of(uint32_t bits, int first) {
  Codes8 r;
  for (int j = 0; j < 8; ++j) r.v[j] = static_cast<int32_t>(((bits >> (first + j)) & 1u) << 4);
  return r;
}
inline void dequantize(Codes8 a, float scale, float offset, float* out) {
  for (int j = 0; j < 8; ++j) out[j] = scale * static_cast<float>(a.v[j]) + offset;
}

#endif

}  // namespace tandem::lanes
