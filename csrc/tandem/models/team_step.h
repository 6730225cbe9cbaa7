// One token of one sequence through every layer on a team of threads (step_team.h): the decode
// step of the Llama family and Gemma 3 when all their matrices have quantized blocks.
//
// The step is fused_step's (llama_model.cpp), value for value: each thread computes its share of
// every product's rows (groups of 16, the int8 tiles' unit), of the heads, and of the
// activation, and every thread norms (and quantizes) each product's input on its own copy, so
// that the team meets only where one thread's results feed all: after q|k|v, the cache write,
// the attention, o, gate|up, the activation and down. Every row, head and value comes from the
// same code as in the layer loop, only on another thread (tests/cpp/models_test.cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/packed_matmul.h"

namespace tandem {
class KVCache;
}

namespace tandem::decoder {

/// A packed weight and its bias (w->rows values, or null) in a team step's product.
struct TeamPart {
  const PackedWeight* w = nullptr;
  const float* bias = nullptr;
};

/// What every layer shares.
struct TeamModel {
  int64_t hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 0.f;    ///< of every RMSNorm (the weights given already hold Gemma's 1 + w)
  float scale = 1.f;  ///< of the attention scores
  std::function<torch::Tensor(const torch::Tensor&)> act;  ///< the gate's activation
  /// RoPE tables of rd values for this position: the global ones, and the sliding-window
  /// layers' own (Gemma 3's local base; null: the global ones).
  const float *cos = nullptr, *sin = nullptr;
  int64_t rd = 0;
  const float *cos_local = nullptr, *sin_local = nullptr;
  int64_t rd_local = 0;
};

/// The shape and norm settings of `cf`'s layers, attention scores scaled by `scale`; the caller
/// adds the activation and this position's RoPE tables.
TeamModel team_model(const ModelConfig& cf, double scale);

/// One layer. q|k|v and gate|up: one stacked part, or one part each (outputs in that order).
struct TeamLayer {
  const float* ln_in = nullptr;
  const float* ln_post_attn = nullptr;  ///< Gemma's norm of o's output before the residual add, or null
  const float* ln_pre_ff = nullptr;
  const float* ln_post_ff = nullptr;  ///< Gemma's norm of down's output, or null
  const float* q_norm = nullptr;      ///< per-head RMSNorm of q and k (Qwen3, Gemma 3), or null
  const float* k_norm = nullptr;
  bool local_rope = false;  ///< takes TeamModel's local RoPE tables
  std::vector<TeamPart> qkv, gate_up;
  TeamPart o, down;
};

/// x [hidden] (the token's embedding) through `layers` in place; layer i reads and writes
/// layer i of `cache` at position cache.length() (the caller advances it).
void team_step(float* x, const TeamModel& m, const std::vector<TeamLayer>& layers, KVCache& cache);

}  // namespace tandem::decoder
