#include "tandem/models/greedy_argmax.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include <immintrin.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "tandem/core/runtime.h"

namespace tandem {

namespace {

bool cpu_has_avx512f() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

// The largest of x[0..n), n >= 16, and the first index holding it; nan: the range holds a NaN
// (the caller then asks torch, whose NaN rule is the one to keep). Each lane keeps its own
// largest value and the first index where it met it (a strictly-greater compare never moves a
// lane to a later equal value); the range's answer is the smallest index among the lanes
// holding the maximum.
struct Top {
  float value = 0;
  int64_t index = 0;
  bool nan = false;
};

__attribute__((target("avx512f"))) Top range_top(const float* x, int64_t n) {
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
  if (i < n) {  // the tail: lanes past the range's end never win
    const __mmask16 live = static_cast<__mmask16>((1u << (n - i)) - 1);
    idx = _mm512_add_epi32(idx, step);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    nan |= _mm512_mask_cmp_ps_mask(live, v, v, _CMP_UNORD_Q);
    const __mmask16 gt = _mm512_mask_cmp_ps_mask(live, v, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, gt, v);
    at = _mm512_mask_mov_epi32(at, gt, idx);
  }
  Top t;
  t.nan = nan != 0;
  if (t.nan) return t;
  t.value = _mm512_reduce_max_ps(best);
  const __mmask16 holders = _mm512_cmp_ps_mask(best, _mm512_set1_ps(t.value), _CMP_EQ_OQ);
  t.index = _mm512_mask_reduce_min_epi32(holders, at);
  return t;
}

// One row, split in `parts` ranges of whole 16s (the last takes the rest), each thread its
// own: the logits' product split the vocabulary between the threads the same way, so each reads
// the half its core wrote. Ranges in order, so the first of equal maxima is the earliest range's.
int64_t row_argmax(const float* x, int64_t n, int64_t parts) {
  const int64_t per = n / 16 / parts * 16;
  std::vector<Top> tops(static_cast<size_t>(parts));
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = p * per, e = p + 1 == parts ? n : b + per;
      tops[static_cast<size_t>(p)] = range_top(x + b, e - b);
      tops[static_cast<size_t>(p)].index += b;
    }
  });
  Top best = tops[0];
  for (const Top& t : tops) {
    if (t.nan) return -1;
    if (t.value > best.value) best = t;
  }
  return best.index;
}

}  // namespace

at::Tensor greedy_argmax(const at::Tensor& logits) {
  const int64_t V = logits.dim() > 0 ? logits.size(-1) : 0;
  if (!logits.device().is_cpu() || logits.scalar_type() != at::kFloat || V < 16 ||
      V > std::numeric_limits<int32_t>::max() || !cpu_has_avx512f() || cpu_kernels() != CpuKernels::kAuto)
    return logits.argmax(-1);
  const auto rows = logits.reshape({-1, V}).contiguous();
  const int64_t R = rows.size(0);
  auto out = at::empty({R}, at::kLong);
  const float* x = rows.data_ptr<float>();
  int64_t* o = out.data_ptr<int64_t>();
  // One row (a batch-1 step): split across the threads when it is long enough to pay for the
  // fork (Gemma 3's 262,144 logits: ~27 us on one core in cache); several rows: a row each.
  constexpr int64_t kSplitFrom = 1 << 16;
  if (R == 1) {
    o[0] = row_argmax(x, V, V >= kSplitFrom ? std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), V / 16)) : 1);
  } else {
    at::parallel_for(0, R, 1, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) o[r] = row_argmax(x + r * V, V, 1);
    });
  }
  for (int64_t r = 0; r < R; ++r)
    if (o[r] < 0) o[r] = rows[r].argmax().item<int64_t>();
  auto shape = logits.sizes().vec();
  shape.pop_back();
  return out.view(shape);
}

}  // namespace tandem
