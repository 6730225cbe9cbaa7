// Pieces every decoder family shares: RMSNorm, projections, the attention mask with padding /
// causality / sliding window, and grouped-query attention (rotary positions: rope.h).
#pragma once

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/record_function.h>

#include <limits>

#include "tandem/core/runtime.h"
#include "tandem/models/bf16_matmul.h"
#include "tandem/models/causal_lm.h"
#include "tandem/models/decode_step_ops.h"

// A named span of a decode step for torch's profiler (benchmarks/profile_decode.py groups the
// step by these names); a flag check when no profiler runs.
#define TANDEM_SPAN(name) RECORD_FUNCTION("tandem::" name, c10::ArrayRef<const c10::IValue>{})

namespace tandem::decoder {

/// Whether a norm of `x` by float32 weight `w` takes the single-loop kernel (decode_step_ops.h).
inline bool norm_in_one_loop(const torch::Tensor& x, const torch::Tensor& w) {
  return decode_sized(x, kPackedMaxRows) && w.scalar_type() == torch::kFloat && w.device().is_cpu() &&
         w.numel() == x.size(-1) && !(torch::GradMode::is_enabled() && w.requires_grad());  // a trained norm keeps autograd
}

/// HF RMSNorm: normalise in float32; `w` multiplies after the cast back (Llama convention).
inline torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  if (norm_in_one_loop(x, w)) return rms_norm_rows(x, w, eps);
  auto xf = x.to(torch::kFloat);
  return w * (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps)).to(x.scalar_type());
}

/// Gemma RMSNorm: `scale` (= 1 + w, float32) multiplies in float32, then the cast (Gemma convention).
inline torch::Tensor rms_norm_scaled(const torch::Tensor& x, const torch::Tensor& scale, double eps) {
  if (norm_in_one_loop(x, scale)) return rms_norm_rows(x, scale, eps);
  auto xf = x.to(torch::kFloat);
  return (xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps) * scale).to(x.scalar_type());
}

/// Whether a product of `x` by weight `w` should take the bfloat16 decode kernel: a few rows on an
/// AVX512-BF16 CPU, both bfloat16, nothing to differentiate, and not `cpu_kernels: portable`
/// (which stands for a CPU without AVX-512: torch's bfloat16 linear then).
inline bool bf16_decode_step(const torch::Tensor& x, const torch::Tensor& w) {
  return x.scalar_type() == torch::kBFloat16 && w.scalar_type() == torch::kBFloat16 && x.device().is_cpu() &&
         x.numel() / x.size(-1) <= kPackedMaxRows && w.is_contiguous() &&
         !(torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad())) && bf16_kernels_available() &&
         cpu_kernels() == CpuKernels::kAuto;
}

inline torch::Tensor proj(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b = {}) {
  if (bf16_decode_step(x, w)) return bf16_matmul(x, w, b);
  return b.defined() ? torch::linear(x, w, b) : torch::linear(x, w);
}

/// Whether a step of `x` reads packed weight `pw`: a few rows (decoding) of float32 on the CPU;
/// then reading the weights is the whole cost. Larger steps (prefill), other dtypes and devices
/// use the dense weight.
inline bool packed_step(const torch::Tensor& x, const PackedWeight& pw) {
  return pw.defined() && x.numel() / x.size(-1) <= kPackedMaxRows && x.scalar_type() == torch::kFloat && x.device().is_cpu();
}

/// A projection that reads a weight's quantized blocks when packed_step holds, else `w`.
inline torch::Tensor proj_packed(const torch::Tensor& x, const torch::Tensor& w, const PackedWeight& pw,
                                 const torch::Tensor& b = {}) {
  if (packed_step(x, pw)) {
    torch::Tensor y;
    if (x.dim() == 2) {  // already [rows, cols] (a fused step's buffers): no reshapes to dispatch
      y = packed_matmul(x, pw);
    } else {
      auto sizes = x.sizes().vec();
      sizes.back() = pw.rows;
      y = packed_matmul(x.reshape({-1, x.size(-1)}), pw).view(sizes);
    }
    return b.defined() ? y + b : y;
  }
  return proj(x, w, b);
}

/// Stacks the rows of packed weights that multiply the same input (q|k|v, gate|up) into one and
/// points each part at its rows of it (views: no second copy), so a decode step reads them in
/// one product and one parallel region instead of one each. Returns undefined and leaves the
/// parts alone when one is missing or their types differ (a Q4_K_M file keeps some v matrices in
/// Q6_K).
inline PackedWeight stack_packed(const std::vector<PackedWeight*>& parts) {
  std::vector<at::Tensor> raws;
  for (const auto* p : parts) {
    if (!p->defined() || p->type != parts[0]->type || p->cols != parts[0]->cols) return {};
    raws.push_back(p->raw);
  }
  PackedWeight s{parts[0]->type, torch::cat(raws, 0), 0, parts[0]->cols};
  s.rows = s.raw.size(0);
  int64_t at = 0;
  for (auto* p : parts) {
    p->raw = s.raw.narrow(0, at, p->rows);
    at += p->rows;
  }
  return s;
}

/// One part of a stacked projection: its dense weight, packed rows and bias (may be undefined).
struct StackedPart {
  const torch::Tensor& w;
  const PackedWeight& packed;
  const torch::Tensor& b;
};

/// x times every part: one packed product split into the parts when `stacked` is defined and
/// the step is a packed one, else each part's own projection.
inline std::vector<torch::Tensor> proj_stacked(const torch::Tensor& x, const PackedWeight& stacked,
                                               std::initializer_list<StackedPart> parts) {
  std::vector<torch::Tensor> out;
  if (packed_step(x, stacked)) {
    auto y = proj_packed(x, torch::Tensor(), stacked);
    std::vector<int64_t> rows;
    for (const auto& p : parts) rows.push_back(p.packed.rows);
    auto views = y.split_with_sizes(rows, -1);  // one call for every part's view
    size_t i = 0;
    for (const auto& p : parts) {
      out.push_back(p.b.defined() ? views[i] + p.b : views[i]);
      ++i;
    }
    return out;
  }
  for (const auto& p : parts) out.push_back(proj_packed(x, p.w, p.packed, p.b));
  return out;
}

/// A fused decode step's state (llama_model.cpp, gemma3_model.cpp: one sequence's token through
/// every layer on its own buffers): the residual stream x [1, 1, hidden], updated in place, the
/// normed input h [1, hidden] of the next products, the attention output a [1, heads * head_dim],
/// and the attention settings every layer shares (each layer sets its norms and RoPE tables).
struct FusedStep {
  torch::Tensor x, h, a;
  TokenAttention attention;
  FusedStep(const torch::Tensor& embedded, const ModelConfig& cf, double scale)
      : x(embedded.contiguous().clone()),
        h(torch::empty({1, cf.hidden_size}, x.options())),
        a(torch::empty({1, cf.num_heads * cf.head_dim}, x.options())),
        attention{cf.num_heads, cf.num_kv_heads, cf.head_dim} {
    attention.eps = static_cast<float>(cf.rms_norm_eps);
    attention.scale = static_cast<float>(scale);
  }
  float* stream() { return x.data_ptr<float>(); }

  /// The attention half of layer `layer`: x normed by `ln` into h, q|k|v (stacked or per part,
  /// as the layer loop computes them), then attend_new_token into a.
  void attend(const torch::Tensor& ln, const PackedWeight& stacked, std::initializer_list<StackedPart> parts, KVCache& cache,
              int64_t layer) {
    norm_into_h(ln);
    std::vector<torch::Tensor> qkv;
    {
      TANDEM_SPAN("qkv_proj");
      qkv = proj_stacked(h, stacked, parts);
    }
    TANDEM_SPAN("attention");
    attend_new_token(attention, qkv[0].data_ptr<float>(), qkv[1].data_ptr<float>(), qkv[2].data_ptr<float>(), cache, layer,
                     a.data_ptr<float>());
  }

  /// x normed by `ln` into h (the MLP's input).
  void norm_into_h(const torch::Tensor& ln) {
    TANDEM_SPAN("norm");
    rms_norm_row(stream(), ln.data_ptr<float>(), x.size(-1), attention.eps, h.data_ptr<float>());
  }
};

/// Which keys each query may see. Undefined `allowed` with `causal` says SDPA's own causal
/// (or, for one query, unmasked) path suffices, the fast case without padding or window.
struct AttentionMask {
  torch::Tensor allowed;  ///< bool [B, 1, T, S] or undefined
  bool causal = false;
};

/// mask [B, S] (1 = token): causal, not padding, and within `window` (0 = unlimited) keys back.
/// A query with nothing to see (a padded position) sees itself, so its ignored output is finite.
inline AttentionMask attention_mask(const torch::Tensor& mask, bool has_padding, int64_t past, int64_t T,
                                    int64_t window = 0) {
  const int64_t S = past + T;
  AttentionMask m;
  if (!has_padding && (window == 0 || S <= window) && (T == 1 || past == 0)) {
    m.causal = T > 1;
    return m;
  }
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(mask.device());
  auto q = torch::arange(past, S, opts).view({T, 1});
  auto k = torch::arange(0, S, opts).view({1, S});
  auto allowed = (k <= q).unsqueeze(0) & (mask.unsqueeze(1) != 0);
  if (window > 0) {
    // The window counts positions, not cache slots: with padding inside the cache (shared
    // prompt prefixes) the two differ. Without it they agree on every real key.
    auto pos = mask.cumsum(-1);  // [B, S]: 1-based position of each real key
    auto qpos = pos.narrow(1, past, T);
    allowed = allowed & (qpos.unsqueeze(2) - pos.unsqueeze(1) < window);
  }
  m.allowed = (allowed | (k == q).unsqueeze(0)).unsqueeze(1);
  return m;
}

/// Scaled dot-product attention with grouped-query heads; q [B, nh, T, D], k/v [B, nkv, S, D].
/// LibTorch >= 2.5 shares each k/v head across its query heads inside SDPA (enable_gqa);
/// older ones get the heads repeated, which copies the whole cache every step.
inline torch::Tensor attend(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const AttentionMask& m,
                            double scale) {
  const int64_t nh = q.size(1), nkv = k.size(1);
  // A decode step's one query per sequence: one loop (decode_step_ops.h) instead of SDPA's setup.
  if (!m.causal && one_query_attention(q, k, v, m.allowed)) return attend_one_query(q, k, v, m.allowed, scale);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
  const bool gqa = nh != nkv;
  return m.allowed.defined() ? at::scaled_dot_product_attention(q, k, v, m.allowed, 0.0, false, scale, gqa)
                             : at::scaled_dot_product_attention(q, k, v, {}, 0.0, m.causal, scale, gqa);
#else
  if (nh != nkv) {
    const int64_t B = q.size(0), S = k.size(2), D = k.size(3), rep = nh / nkv;
    k = k.unsqueeze(2).expand({B, nkv, rep, S, D}).reshape({B, nh, S, D});
    v = v.unsqueeze(2).expand({B, nkv, rep, S, D}).reshape({B, nh, S, D});
  }
  return m.allowed.defined() ? at::scaled_dot_product_attention(q, k, v, m.allowed, 0.0, false, scale)
                             : at::scaled_dot_product_attention(q, k, v, {}, 0.0, m.causal, scale);
#endif
}

/// Attention with soft-capped scores (Gemma 2): cap * tanh(q.k * scale / cap) before the mask and
/// softmax, which SDPA cannot express. Scores in float32, as HF's eager path upcasts the softmax.
inline torch::Tensor attend_softcapped(const torch::Tensor& q, torch::Tensor k, torch::Tensor v, const AttentionMask& m,
                                       double scale, double cap) {
  const int64_t B = q.size(0), nh = q.size(1), nkv = k.size(1), T = q.size(2), S = k.size(2), D = k.size(3);
  if (nh != nkv) {
    const int64_t rep = nh / nkv;
    k = k.unsqueeze(2).expand({B, nkv, rep, S, D}).reshape({B, nh, S, D});
    v = v.unsqueeze(2).expand({B, nkv, rep, S, D}).reshape({B, nh, S, D});
  }
  auto s = torch::matmul(q, k.transpose(-1, -2)) * scale;
  s = torch::tanh(s / cap) * cap;
  torch::Tensor allowed = m.allowed;
  if (!allowed.defined() && m.causal) {
    auto opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
    allowed = (torch::arange(0, S, opts).view({1, S}) <= torch::arange(S - T, S, opts).view({T, 1})).view({1, 1, T, S});
  }
  if (allowed.defined()) s = s.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(s.to(torch::kFloat), -1).to(q.scalar_type()), v);
}

/// Positions from the mask, as HF's generate does for left padding: cumsum - 1, pads at 1.
inline torch::Tensor positions_from_mask(const torch::Tensor& mask, int64_t past, int64_t T) {
  return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1).narrow(1, past, T);
}

/// What every decoder derives from its inputs before the first layer.
struct StepInputs {
  int64_t B, T, past, S;
  torch::Tensor mask;  ///< [B, S] long: the given mask, or all ones
  torch::Tensor pos;   ///< [B, T] long: given positions, or derived from the mask
  bool padded;         ///< the mask holds padding
};

inline StepInputs step_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                              const torch::Tensor& position_ids, const KVCache* cache, const c10::Device& dev) {
  StepInputs s;
  s.B = input_ids.size(0);
  s.T = input_ids.size(1);
  s.past = cache ? cache->length() : 0;
  s.S = s.past + s.T;
  s.mask = attention_mask.defined()
               ? attention_mask.to(dev, torch::kLong)
               : torch::ones({s.B, s.S}, torch::TensorOptions().dtype(torch::kLong).device(dev));
  TORCH_CHECK(s.mask.size(1) == s.S, "attention_mask has ", s.mask.size(1), " columns, expected past + new = ", s.S);
  s.pos = position_ids.defined() ? position_ids.to(dev, torch::kLong) : positions_from_mask(s.mask, s.past, s.T);
  s.padded = attention_mask.defined() && (s.mask == 0).any().item<bool>();
  return s;
}

/// The vocabulary projection as a contiguous [hidden, vocab] copy: x @ W^T laid out this way
/// runs ~1.8x faster on CPU BLAS than linear(x, W) for one row (measured), and it is the largest
/// matrix of a small model. Made on first use; reset() when the weights change.
class TransposedHead {
 public:
  const torch::Tensor& of(const torch::Tensor& w) {
    if (!t_.defined() || t_.device() != w.device() || t_.scalar_type() != w.scalar_type()) t_ = w.t().contiguous();
    return t_;
  }
  void reset() { t_ = torch::Tensor(); }

 private:
  torch::Tensor t_;
};

/// The vocabulary projection of final-normed states `x` by head `w` ([vocab, hidden]), float32:
/// from the head's quantized blocks for a few rows without grad (decoding), else BLAS on the
/// transposed copy.
inline torch::Tensor project_head(const torch::Tensor& x, const torch::Tensor& w, TransposedHead& t, const PackedWeight& packed) {
  const int64_t rows = x.numel() / x.size(-1);
  const bool need_grad = torch::GradMode::is_enabled() && x.requires_grad();
  if (!need_grad && packed.defined() && rows <= kPackedMaxRows && x.scalar_type() == torch::kFloat && x.device().is_cpu()) {
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape.back() = -1;
    return packed_matmul(x.reshape({rows, x.size(-1)}), packed).view(shape);
  }
  if (bf16_decode_step(x, w)) return bf16_matmul(x, w).to(torch::kFloat);
  return torch::matmul(x, t.of(w)).to(torch::kFloat);
}

}  // namespace tandem::decoder
