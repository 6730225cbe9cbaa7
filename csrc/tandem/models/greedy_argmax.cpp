#include "tandem/models/greedy_argmax.h"

#include <cstdint>
#include <limits>

#include <immintrin.h>

#include <ATen/Parallel.h>

#include "tandem/core/runtime.h"

namespace tandem {

namespace {

bool cpu_has_avx512f() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

// The first index of the largest of x[0..n), n >= 16; -1 if the row holds a NaN (the caller
// then asks torch, whose NaN rule is the one to keep). Each lane keeps its own largest value
// and the first index where it met it (a strictly-greater compare never moves a lane to a later
// equal value); the row's answer is then the smallest index among the lanes holding the maximum.
__attribute__((target("avx512f"))) int64_t row_argmax(const float* x, int64_t n) {
  __m512 best = _mm512_loadu_ps(x);
  __m512i at = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i idx = at;
  const __m512i step = _mm512_set1_epi32(16);
  __mmask16 nan = _mm512_cmp_ps_mask(best, best, _CMP_UNORD_Q);
  int64_t i = 16;
  for (; i + 16 <= n; i += 16) {
    idx = _mm512_add_epi32(idx, step);
    const __m512 v = _mm512_loadu_ps(x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    at = _mm512_mask_mov_epi32(at, gt, idx);
  }
  if (i < n) {  // the tail: lanes past the row's end never win
    const __mmask16 live = static_cast<__mmask16>((1u << (n - i)) - 1);
    idx = _mm512_add_epi32(idx, step);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    nan |= _mm512_mask_cmp_ps_mask(live, v, v, _CMP_UNORD_Q);
    const __mmask16 gt = _mm512_mask_cmp_ps_mask(live, v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    at = _mm512_mask_mov_epi32(at, gt, idx);
  }
  if (nan) return -1;
  const float top = _mm512_reduce_max_ps(best);
  const __mmask16 holders = _mm512_cmp_ps_mask(best, _mm512_set1_ps(top), _CMP_EQ_OQ);
  return _mm512_mask_reduce_min_epi32(holders, at);
}

}  // namespace

torch::Tensor greedy_argmax(const torch::Tensor& logits) {
  const int64_t V = logits.dim() > 0 ? logits.size(-1) : 0;
  if (!logits.device().is_cpu() || logits.scalar_type() != torch::kFloat || V < 16 ||
      V > std::numeric_limits<int32_t>::max() || !cpu_has_avx512f() || cpu_kernels() != CpuKernels::kAuto)
    return logits.argmax(-1);
  const auto rows = logits.reshape({-1, V}).contiguous();
  const int64_t R = rows.size(0);
  auto out = torch::empty({R}, torch::kLong);
  const float* x = rows.data_ptr<float>();
  int64_t* o = out.data_ptr<int64_t>();
  at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) o[r] = row_argmax(x + r * V, V);
  });
  for (int64_t r = 0; r < R; ++r)
    if (o[r] < 0) o[r] = rows[r].argmax().item<int64_t>();
  auto shape = logits.sizes().vec();
  shape.pop_back();
  return out.view(shape);
}

}  // namespace tandem
