#include "tandem/models/decode_step_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

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

bool one_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& allowed) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || q.size(2) != 1 || !decode_sized(q, 16 * q.size(1))) return false;
  if (k.scalar_type() != torch::kFloat || v.scalar_type() != torch::kFloat || !k.device().is_cpu() || !v.device().is_cpu())
    return false;
  if (k.stride(3) != 1 || v.stride(3) != 1 || k.size(3) != q.size(3) || v.size(3) != q.size(3)) return false;
  if (k.size(0) != q.size(0) || k.size(1) == 0 || q.size(1) % k.size(1) != 0 || v.sizes() != k.sizes()) return false;
  if ((torch::GradMode::is_enabled() && (k.requires_grad() || v.requires_grad()))) return false;
  return !allowed.defined() || (allowed.scalar_type() == torch::kBool && allowed.dim() == 4 && allowed.size(0) == q.size(0) &&
                                allowed.size(1) == 1 && allowed.size(2) == 1 && allowed.size(3) == k.size(2));
}

torch::Tensor attend_one_query(const torch::Tensor& q_in, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& allowed_in, double scale) {
  TORCH_CHECK(one_query_attention(q_in, k, v, allowed_in), "attend_one_query: operands it does not serve");
  const auto q = q_in.contiguous();
  const auto allowed = allowed_in.defined() ? allowed_in.contiguous() : allowed_in;
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), Hkv = k.size(1), S = k.size(2), group = H / Hkv;
  auto out = torch::empty({B, H, 1, D}, q.options());
  const float sc = static_cast<float>(scale);
  // (sequence, head) pairs split across the intra-op threads; each pair's work is independent.
  at::parallel_for(0, B * H, 4, [&](int64_t p0, int64_t p1) {
    std::vector<float> p(static_cast<size_t>(S));
    for (int64_t bh = p0; bh < p1; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const bool* vis = allowed.defined() ? allowed.data_ptr<bool>() + b * S : nullptr;
      const float* qh = q.data_ptr<float>() + (b * H + h) * D;
      const float* kh = k.data_ptr<float>() + b * k.stride(0) + (h / group) * k.stride(1);
      const float* vh = v.data_ptr<float>() + b * v.stride(0) + (h / group) * v.stride(1);
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s < S; ++s) {
        if (vis && !vis[s]) {
          p[static_cast<size_t>(s)] = -std::numeric_limits<float>::infinity();
          continue;
        }
        const float* ks = kh + s * k.stride(2);
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t i = 0; i < D; ++i) dot += qh[i] * ks[i];
        p[static_cast<size_t>(s)] = dot * sc;
        mx = std::max(mx, p[static_cast<size_t>(s)]);
      }
      float* o = out.data_ptr<float>() + (b * H + h) * D;
      std::fill(o, o + D, 0.f);
      float total = 0.f;
      for (int64_t s = 0; s < S; ++s) {
        const float e = std::exp(p[static_cast<size_t>(s)] - mx);  // exp(-inf) = 0 for the hidden
        if (e == 0.f) continue;
        total += e;
        const float* vs = vh + s * v.stride(2);
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) o[i] += e * vs[i];
      }
      const float inv = 1.f / total;  // nothing visible: 0 * inf = NaN, as SDPA
      for (int64_t i = 0; i < D; ++i) o[i] *= inv;
    }
  });
  return out;
}

}  // namespace tandem::decoder
