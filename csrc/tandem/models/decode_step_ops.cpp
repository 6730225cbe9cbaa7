#include "tandem/models/decode_step_ops.h"

#include <cmath>

namespace tandem::decoder {

bool decode_sized(const torch::Tensor& x, int64_t max_rows) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() >= 1 && x.size(-1) > 0 &&
         x.numel() / x.size(-1) <= max_rows && !(torch::GradMode::is_enabled() && x.requires_grad());
}

torch::Tensor rms_norm_rows(const torch::Tensor& x_in, const torch::Tensor& w_in, double eps) {
  const auto x = x_in.contiguous();
  const auto w = w_in.to(torch::kFloat).contiguous();
  const int64_t n = x.size(-1), rows = x.numel() / n;
  TORCH_CHECK(w.numel() == n, "rms_norm_rows: weight of ", w.numel(), " for rows of ", n);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r, xp += n, yp += n) {
    double ss = 0;  // a double sum: at least as accurate as torch's float32 reduction
    for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xp[i]) * xp[i];
    const float mean = static_cast<float>(ss / static_cast<double>(n));
    const float inv = 1.f / std::sqrt(mean + static_cast<float>(eps));
    for (int64_t i = 0; i < n; ++i) yp[i] = (xp[i] * inv) * wp[i];
  }
  return y;
}

torch::Tensor rotary_rows(const torch::Tensor& x, const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
  TORCH_CHECK(x.dim() == 4 && cos_in.dim() == 4, "rotary_rows: x [B, H, T, D] and tables [B, 1, T, rd]");
  const auto c = cos_in.to(torch::kFloat).contiguous(), s = sin_in.to(torch::kFloat).contiguous();
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), rd = c.size(-1), half = rd / 2;
  TORCH_CHECK(c.size(2) == T && rd <= D && rd % 2 == 0 && (c.size(0) == B || c.size(0) == 1),
              "rotary_rows: tables ", c.sizes(), " do not fit x ", x.sizes());
  auto y = torch::empty({B, H, T, D}, x.options());
  const auto xa = x.accessor<float, 4>();
  float* yp = y.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t tb = c.size(0) == 1 ? 0 : b;
        const float* cr = c.data_ptr<float>() + (tb * T + t) * rd;
        const float* sr = s.data_ptr<float>() + (tb * T + t) * rd;
        const auto xr = xa[b][h][t];
        float* yr = yp + ((b * H + h) * T + t) * D;
        // rotate_half(x) = (-x2, x1): the product by sin of (-x2) is exactly minus x2's
        for (int64_t i = 0; i < half; ++i) yr[i] = xr[i] * cr[i] + (-xr[i + half]) * sr[i];
        for (int64_t i = half; i < rd; ++i) yr[i] = xr[i] * cr[i] + xr[i - half] * sr[i];
        for (int64_t i = rd; i < D; ++i) yr[i] = xr[i];
      }
  return y;
}

}  // namespace tandem::decoder
