#include "tandem/models/decode_step_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <immintrin.h>

#include <ATen/Parallel.h>

#include "tandem/core/runtime.h"
#include "tandem/models/kv_cache.h"

namespace tandem::decoder {

bool decode_sized(const torch::Tensor& x, int64_t max_rows) {
  return x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.dim() >= 1 && x.size(-1) > 0 &&
         x.numel() / x.size(-1) <= max_rows && !(torch::GradMode::is_enabled() && x.requires_grad());
}

void rms_norm_row(const float* x, const float* w, int64_t n, float eps, float* y) {
  double ss = 0;  // a double sum: at least as accurate as torch's float32 reduction
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  const float inv = 1.f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = (x[i] * inv) * w[i];
}

torch::Tensor rms_norm_rows(const torch::Tensor& x_in, const torch::Tensor& w_in, double eps) {
  const auto x = x_in.contiguous();
  const auto w = w_in.to(torch::kFloat).contiguous();
  const int64_t n = x.size(-1), rows = x.numel() / n;
  TORCH_CHECK(w.numel() == n, "rms_norm_rows: weight of ", w.numel(), " for rows of ", n);
  auto y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(xp + r * n, w.data_ptr<float>(), n, static_cast<float>(eps), yp + r * n);
  return y;
}

void rotary_head(float* x, const float* c, const float* s, int64_t rd) {
  const int64_t half = rd / 2;
  // rotate_half(x) = (-x2, x1): the product by sin of (-x2) is exactly minus x2's. Each value is
  // two products and a sum, rounded as the torch composition rounds them (no FMA: this file is
  // built without contraction).
  for (int64_t i = 0; i < half; ++i) {
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] + (-b) * s[i];
    x[i + half] = b * c[i + half] + a * s[i + half];
  }
}

torch::Tensor rotary_rows(const torch::Tensor& x, const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
  TORCH_CHECK(x.dim() == 4 && cos_in.dim() == 4, "rotary_rows: x [B, H, T, D] and tables [B, 1, T, rd]");
  const auto c = cos_in.to(torch::kFloat).contiguous(), s = sin_in.to(torch::kFloat).contiguous();
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3), rd = c.size(-1);
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
        for (int64_t i = 0; i < D; ++i) yr[i] = xr[i];
        rotary_head(yr, cr, sr, rd);
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

namespace {

// e^x for x <= 0 (scores minus their maximum), 16 lanes: x = n ln2 + r with |r| <= ln2 / 2
// (ln2 in two parts, so n ln2 is exact enough), e^r by a degree-7 polynomial (Cephes' expf
// coefficients, ~1 ulp), then times 2^n. Below -87.3 it returns ~1e-38 instead of
// underflowing to 0: negligible beside the maximum's 1. Hidden keys are zeroed by the caller.
__attribute__((target("avx512f"))) inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

// One head's attention in 16-lane vectors (D a multiple of 16): the same three passes as the
// plain loop below (scores and their maximum; exponentials and their sum; the weighted values),
// with the exponentials vectorised. The plain loop spent most of its time in scalar exp.
__attribute__((target("avx512f,fma"))) void attend_head_avx512(const float* q, const float* k, int64_t ks, const float* v,
                                                                int64_t vs, const bool* vis, int64_t S, int64_t D, float sc,
                                                                float* p, float* o) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  float mx = neg_inf;
  for (int64_t s = 0; s < S; ++s) {
    if (vis && !vis[s]) {
      p[s] = neg_inf;
      continue;
    }
    const float* kr = k + s * ks;
    __m512 acc = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(kr));
    for (int64_t i = 16; i < D; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(kr + i), acc);
    p[s] = _mm512_reduce_add_ps(acc) * sc;
    mx = std::max(mx, p[s]);
  }
  __m512 total = _mm512_setzero_ps();
  const __m512 m = _mm512_set1_ps(mx);
  for (int64_t s = 0; s < S; s += 16) {
    const auto live = static_cast<__mmask16>(S - s >= 16 ? 0xFFFF : (1u << (S - s)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(live, p + s);
    // hidden keys (-inf) and lanes past S: exactly 0
    const __mmask16 shown = _mm512_mask_cmp_ps_mask(live, x, _mm512_set1_ps(neg_inf), _CMP_NEQ_OQ);
    const __m512 e = _mm512_maskz_mov_ps(shown, exp_nonpositive(_mm512_sub_ps(x, m)));
    _mm512_mask_storeu_ps(p + s, live, e);
    total = _mm512_add_ps(total, e);
  }
  std::fill(o, o + D, 0.f);
  for (int64_t s = 0; s < S; ++s) {
    if (p[s] == 0.f) continue;
    const __m512 e = _mm512_set1_ps(p[s]);
    const float* vr = v + s * vs;
    for (int64_t i = 0; i < D; i += 16) _mm512_storeu_ps(o + i, _mm512_fmadd_ps(e, _mm512_loadu_ps(vr + i), _mm512_loadu_ps(o + i)));
  }
  const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(total));  // nothing visible: 0 * inf = NaN, as SDPA
  for (int64_t i = 0; i < D; i += 16) _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_loadu_ps(o + i), inv));
}

bool avx512_attention(int64_t D) {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return cpu && D % 16 == 0 && cpu_kernels() == CpuKernels::kAuto;  // portable: as a CPU without AVX-512
}

// (sequence, head) pairs [p0, p1) of attend_rows, on the calling thread; `p`: S + 16 floats.
void attend_pairs(const float* q, int64_t H, int64_t D, KvView k, KvView v, int64_t Hkv, int64_t S, const bool* visible, float scale,
                  float* out, int64_t p0, int64_t p1, float* p) {
  const int64_t group = H / Hkv;
  const bool vector = avx512_attention(D);
  for (int64_t bh = p0; bh < p1; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const bool* vis = visible ? visible + b * S : nullptr;
    const float* qh = q + (b * H + h) * D;
    const float* kh = k.data + b * k.batch_stride + (h / group) * k.head_stride;
    const float* vh = v.data + b * v.batch_stride + (h / group) * v.head_stride;
    float* o = out + (b * H + h) * D;
    if (vector) {
      attend_head_avx512(qh, kh, k.pos_stride, vh, v.pos_stride, vis, S, D, scale, p, o);
      continue;
    }
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < S; ++s) {
      if (vis && !vis[s]) {
        p[static_cast<size_t>(s)] = -std::numeric_limits<float>::infinity();
        continue;
      }
      const float* ks = kh + s * k.pos_stride;
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int64_t i = 0; i < D; ++i) dot += qh[i] * ks[i];
      p[static_cast<size_t>(s)] = dot * scale;
      mx = std::max(mx, p[static_cast<size_t>(s)]);
    }
    std::fill(o, o + D, 0.f);
    float total = 0.f;
    for (int64_t s = 0; s < S; ++s) {
      const float e = std::exp(p[static_cast<size_t>(s)] - mx);  // exp(-inf) = 0 for the hidden
      if (e == 0.f) continue;
      total += e;
      const float* vs = vh + s * v.pos_stride;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) o[i] += e * vs[i];
    }
    const float inv = 1.f / total;  // nothing visible: 0 * inf = NaN, as SDPA
    for (int64_t i = 0; i < D; ++i) o[i] *= inv;
  }
}

}  // namespace

void attend_rows(const float* q, int64_t B, int64_t H, int64_t D, KvView k, KvView v, int64_t Hkv, int64_t S, const bool* visible,
                 float scale, float* out) {
  // (sequence, head) pairs split across the intra-op threads; each pair's work is independent
  // (grain 1: Gemma 3 has 4 query heads, which a grain of 4 left to one thread).
  at::parallel_for(0, B * H, 1, [&](int64_t p0, int64_t p1) {
    std::vector<float> p(static_cast<size_t>(S + 16));
    attend_pairs(q, H, D, k, v, Hkv, S, visible, scale, out, p0, p1, p.data());
  });
}

torch::Tensor attend_one_query(const torch::Tensor& q_in, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& allowed_in, double scale) {
  TORCH_CHECK(one_query_attention(q_in, k, v, allowed_in), "attend_one_query: operands it does not serve");
  const auto q = q_in.contiguous();
  const auto allowed = allowed_in.defined() ? allowed_in.contiguous() : allowed_in;
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3);
  auto out = torch::empty({B, H, 1, D}, q.options());
  attend_rows(q.data_ptr<float>(), B, H, D, {k.data_ptr<float>(), k.stride(0), k.stride(1), k.stride(2)},
              {v.data_ptr<float>(), v.stride(0), v.stride(1), v.stride(2)}, k.size(1), k.size(2),
              allowed.defined() ? allowed.data_ptr<bool>() : nullptr, static_cast<float>(scale), out.data_ptr<float>());
  return out;
}

void add_row(float* y, const float* t, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = y[j] + t[j];
}

NewTokenKeys store_new_token(const TokenAttention& a, float* q, float* k, const float* v, KVCache& cache, int64_t layer) {
  for (int64_t j = 0; j < a.nh + a.nkv; ++j) {
    float* head = j < a.nh ? q + j * a.D : k + (j - a.nh) * a.D;
    if (a.q_norm) rms_norm_row(head, j < a.nh ? a.q_norm : a.k_norm, a.D, a.eps, head);
    rotary_head(head, a.cos, a.sin, a.rd);
  }
  const int64_t pos = cache.length();
  auto [K, V] = cache.reserve(layer, {1, a.nkv, 1, a.D}, torch::TensorOptions().dtype(torch::kFloat));
  float* kp = K.data_ptr<float>();
  float* vp = V.data_ptr<float>();
  for (int64_t g = 0; g < a.nkv; ++g) {
    std::copy(k + g * a.D, k + (g + 1) * a.D, kp + g * K.stride(1) + pos * K.stride(2));
    std::copy(v + g * a.D, v + (g + 1) * a.D, vp + g * V.stride(1) + pos * V.stride(2));
  }
  return {{kp, K.stride(0), K.stride(1), K.stride(2)}, {vp, V.stride(0), V.stride(1), V.stride(2)}, pos + 1};
}

void attend_heads(const TokenAttention& a, const float* q, const NewTokenKeys& keys, float* out, int64_t h0, int64_t h1) {
  thread_local std::vector<float> p;
  p.resize(static_cast<size_t>(keys.S + 16));
  attend_pairs(q, a.nh, a.D, keys.k, keys.v, a.nkv, keys.S, nullptr, a.scale, out, h0, h1, p.data());
}

void attend_new_token(const TokenAttention& a, float* q, float* k, const float* v, KVCache& cache, int64_t layer, float* out) {
  const NewTokenKeys keys = store_new_token(a, q, k, v, cache, layer);
  attend_rows(q, 1, a.nh, a.D, keys.k, keys.v, a.nkv, keys.S, nullptr, a.scale, out);
}

}  // namespace tandem::decoder
