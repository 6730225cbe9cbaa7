#include "tandem/models/bf16_matmul.h"

#include <immintrin.h>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

namespace tandem {
namespace {

// One 32-value slice (fewer where `mask` says) of WR weight rows and MT activation rows into the
// accumulators: each slice of x is loaded once and feeds WR dot products.
template <int WR, int MT>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) inline void slice(const uint16_t* w, int64_t K, const uint16_t* x,
                                                                          int64_t ldx, int64_t at, __mmask32 mask,
                                                                          __m512 (&acc)[WR][MT]) {
  __m512bh wv[WR];
  for (int i = 0; i < WR; ++i) wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(mask, w + i * K + at);
  for (int m = 0; m < MT; ++m) {
    const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + m * ldx + at);
    for (int i = 0; i < WR; ++i) acc[i][m] = _mm512_dpbf16_ps(acc[i][m], wv[i], xv);
  }
}

// WR weight rows times MT activation rows over K values: whole slices, then a masked one.
template <int WR, int MT>
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void tile(const uint16_t* w, int64_t K, const uint16_t* x,
                                                                  int64_t ldx, float* out, int64_t ldo) {
  __m512 acc[WR][MT];
  for (int i = 0; i < WR; ++i)
    for (int m = 0; m < MT; ++m) acc[i][m] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) slice<WR, MT>(w, K, x, ldx, k, ~__mmask32(0), acc);
  if (k < K) slice<WR, MT>(w, K, x, ldx, k, static_cast<__mmask32>((1ull << (K - k)) - 1), acc);
  for (int i = 0; i < WR; ++i)
    for (int m = 0; m < MT; ++m) out[m * ldo + i] = _mm512_reduce_add_ps(acc[i][m]);
}

// Rows [r0, r1) of W for all M activation rows: 4 weight rows x up to 4 activation rows per tile
// (16 accumulators, 4 weight and 1 activation vector in the 32 registers).
template <int MT>
void rows_mt(const uint16_t* w, int64_t K, const uint16_t* x, int64_t ldx, float* y, int64_t ldy, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) tile<4, MT>(w + r * K, K, x, ldx, y + r, ldy);
  for (; r < r1; ++r) tile<1, MT>(w + r * K, K, x, ldx, y + r, ldy);
}

void rows(const uint16_t* w, int64_t K, const uint16_t* x, int64_t M, float* y, int64_t N, int64_t r0, int64_t r1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) rows_mt<4>(w, K, x + m * K, K, y + m * N, N, r0, r1);
  switch (M - m) {
    case 3: rows_mt<3>(w, K, x + m * K, K, y + m * N, N, r0, r1); break;
    case 2: rows_mt<2>(w, K, x + m * K, K, y + m * N, N, r0, r1); break;
    case 1: rows_mt<1>(w, K, x + m * K, K, y + m * N, N, r0, r1); break;
    default: break;
  }
}

}  // namespace

bool bf16_kernels_available() {
#if defined(__x86_64__)
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512bf16");
  return ok;
#else
  return false;
#endif
}

at::Tensor bf16_matmul(const at::Tensor& x_in, const at::Tensor& w, const at::Tensor& b) {
  RECORD_FUNCTION("tandem::bf16_matmul", c10::ArrayRef<const c10::IValue>{});
  TORCH_CHECK(bf16_kernels_available(), "bf16_matmul: this CPU has no AVX512-BF16");
  TORCH_CHECK(w.scalar_type() == at::kBFloat16 && w.dim() == 2 && w.is_contiguous(), "bf16_matmul: w must be contiguous bfloat16 [N, K]");
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(x_in.size(-1) == K, "bf16_matmul: x has ", x_in.size(-1), " columns, w has ", K);
  auto x = x_in.to(at::kBFloat16).reshape({-1, K}).contiguous();
  const int64_t M = x.size(0);
  auto y = torch::empty({M, N}, torch::kFloat);
  const auto* wp = reinterpret_cast<const uint16_t*>(w.data_ptr<at::BFloat16>());
  const auto* xp = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, N, 64, [&](int64_t r0, int64_t r1) { rows(wp, K, xp, M, yp, N, r0, r1); });
  if (b.defined()) y.add_(b.to(torch::kFloat));
  auto shape = x_in.sizes().vec();
  shape.back() = N;
  return y.to(at::kBFloat16).view(shape);
}

}  // namespace tandem
