// The small per-layer operations of a decode step as single loops: RMSNorm, rotary position
// embedding and one query's attention, for a few float32 rows on the CPU. Composed from torch operations they cost 6-9
// dispatches and temporaries each (SmolLM2-135M, batch 1: 0.69 ms of norms and 0.55 ms of RoPE
// in a 7.9 ms step; results/bench/decode_profile_before.md), for a few hundred multiply-adds.
// Callers fall back to the torch composition for anything else (prefill, other dtypes, devices,
// gradients), which stays the reference (tests/cpp/models_test.cpp checks these against it).
#pragma once

#include <torch/torch.h>

namespace tandem {
class KVCache;
}

namespace tandem::decoder {

/// Whether `x` is a decode-sized float32 CPU tensor these loops serve (at most `max_rows` rows of
/// its last dimension, contiguous, no gradient needed).
bool decode_sized(const torch::Tensor& x, int64_t max_rows);

/// (x * rsqrt(mean(x^2) + eps)) * w over the last dimension; `w` float32 [n].
torch::Tensor rms_norm_rows(const torch::Tensor& x, const torch::Tensor& w, double eps);

/// x * cos + rotate_half(x) * sin on the first cos.size(-1) features of x [B, H, T, D] (any
/// strides), the rest copied; cos/sin [B or 1, 1, T, rd] float32. The same three roundings per
/// value as the torch composition (this file is built without contraction into FMAs).
torch::Tensor rotary_rows(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

/// softmax(q k^T * scale, masked) v for ONE query per sequence (a decode step): q [B, H, 1, D],
/// k and v [B, Hkv, S, D] with unit stride along D (the cache's views), H a multiple of Hkv
/// (grouped-query heads share theirs); `allowed` bool [B, 1, 1, S] or undefined (all visible).
/// Float32 throughout, the softmax from its maximum, as SDPA's CPU kernel; a row with nothing
/// visible is NaN, as SDPA's.
torch::Tensor attend_one_query(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& allowed, double scale);

/// Whether attend_one_query serves these operands.
bool one_query_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& allowed);

// The same loops on raw float32 buffers, for a decode step that keeps its state in its own
// buffers (llama_model.cpp's fused step); the tensor forms above are written with them, so both
// give the same values bit for bit.

/// One row: y = (x * rsqrt(mean(x^2) + eps)) * w over n values (y may be x).
void rms_norm_row(const float* x, const float* w, int64_t n, float eps, float* y);

/// One head, in place: x * cos + rotate_half(x) * sin on its first rd features (cos, sin: rd values).
void rotary_head(float* x, const float* cos, const float* sin, int64_t rd);

/// Keys or values in a cache buffer: element (b, head, position, i) at
/// data[b * batch_stride + head * head_stride + position * pos_stride + i].
struct KvView {
  const float* data;
  int64_t batch_stride, head_stride, pos_stride;
};

/// attend_one_query on buffers: q [B, H, D] contiguous, S keys, `visible` [B, S] or null, out [B, H, D].
void attend_rows(const float* q, int64_t B, int64_t H, int64_t D, KvView k, KvView v, int64_t Hkv, int64_t S, const bool* visible,
                 float scale, float* out);

/// y[j] = y[j] + t[j]: a residual add, rounded as torch's `y + t`.
void add_row(float* y, const float* t, int64_t n);

/// The shape and settings of one layer's attention for attend_new_token.
struct TokenAttention {
  int64_t nh, nkv, D;
  const float* q_norm = nullptr;  ///< per-head RMSNorm weights of D values (Qwen3, Gemma 3), or null
  const float* k_norm = nullptr;
  float eps = 0.f;
  const float* cos = nullptr;  ///< RoPE tables of rd values for this position
  const float* sin = nullptr;
  int64_t rd = 0;
  float scale = 1.f;
};

/// One new token of one sequence, in a fused decode step: q [nh, D] and k [nkv, D] get their
/// per-head norms and RoPE in place, k and v [nkv, D] are written at position cache.length()
/// of `layer`, and out [nh, D] is the attention over every cached position including it.
void attend_new_token(const TokenAttention& a, float* q, float* k, const float* v, KVCache& cache, int64_t layer, float* out);

/// attend_new_token in two halves, for a step that splits the heads among threads it holds
/// itself (step_team.h): first the norms, RoPE and cache write (one thread), then the attention
/// of query heads [h0, h1) over the keys the first half returns, on the calling thread.
struct NewTokenKeys {
  KvView k, v;
  int64_t S;  ///< cached positions, the new one included
};
NewTokenKeys store_new_token(const TokenAttention& a, float* q, float* k, const float* v, KVCache& cache, int64_t layer);
void attend_heads(const TokenAttention& a, const float* q, const NewTokenKeys& keys, float* out, int64_t h0, int64_t h1);

}  // namespace tandem::decoder
