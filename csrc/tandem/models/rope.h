// Rotary position embeddings with every scaling the families ship: default, linear, dynamic NTK,
// llama3 (Llama 3.1-3.3), yarn, longrope (Phi-3.5/4), GGUF per-frequency factors, and partial
// rotation (only the first rotary_dim channels of a head turn). Frequencies follow HF
// transformers' modeling_rope_utils formulas, in float32.
#pragma once

#include <utility>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"

namespace tandem::decoder {

class RotaryEmbedding {
 public:
  /// `scaling` and `theta` (families with local layers build one per kind: Gemma 3 scales only
  /// its global layers); `head_dim` the head size.
  RotaryEmbedding(const ModelConfig& c, const RopeScaling& scaling, double theta, int64_t head_dim);
  /// cos and sin [B, 1, T, rotary_dim] for positions [B, T], times the attention factor, in `dtype`.
  /// Dynamic and longrope scaling pick their frequencies from the largest position, as HF does.
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& pos, c10::ScalarType dtype);
  int64_t rotary_dim() const { return dim_; }

 private:
  torch::Tensor base_freq(double theta) const;
  RopeScaling s_;
  double theta_;
  int64_t dim_, max_positions_;
  double attention_factor_ = 1.0;
  torch::Tensor inv_freq_, long_inv_freq_;
  int64_t cached_len_ = 0;  // dynamic: the longest sequence the frequencies were grown for
};

/// Rotates the first cs.first.size(-1) channels of x [B, H, T, D]; the rest pass through.
torch::Tensor apply_rotary(const torch::Tensor& x, const std::pair<torch::Tensor, torch::Tensor>& cs);

}  // namespace tandem::decoder
