// DeviceAdapter: the small trainable part of a cloud/device pair. The frozen backbone (cloud)
// sends hidden states of the layers the adapter reads; the adapter (device) returns a hidden
// state in the backbone's final-normed space, which the frozen vocabulary projection turns into
// adapted logits. SPA plugins add to the backbone's own state (additive logits); LST replaces it
// with a ladder side network's output. Registered by name: `adapter: {type: spa | lst}`.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/registry.h"
#include "tandem/models/causal_lm.h"

namespace tandem {

struct AdapterOutput {
  torch::Tensor hidden;    ///< [B, T, H]: goes through the frozen vocabulary projection
  torch::Tensor features;  ///< [B, T, F]: the adapter's own state, a routing feature
  /// Additive adapters only: hidden = final_normed + shift_coeff . shift_basis^T with
  /// shift_coeff [B, T, r] and shift_basis [H, r]. Since the vocabulary projection W is linear,
  /// adapted logits = backbone logits + shift_coeff . (W shift_basis)^T: with the backbone's
  /// logits at hand (the cloud sends them), a training step multiplies by the rank-r product
  /// W . shift_basis instead of by W, forward and backward (undefined for other adapters).
  torch::Tensor shift_coeff, shift_basis;
};

/// Per-sequence decoding state of adapters that look across positions (LST's attention).
struct AdapterState {
  std::vector<torch::Tensor> k, v;  ///< per side block: [B, heads, S, head_dim]
  torch::Tensor key_mask;           ///< [B, S] bool: real (non-padding) positions so far
};

class DeviceAdapter : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "peft.adapter";
  using Factory = std::unique_ptr<DeviceAdapter>(const Config&, const ModelConfig&);
  ~DeviceAdapter() override = default;

  /// Backbone hidden-state indices read (0 = embeddings, L = last layer), ascending.
  const std::vector<int64_t>& layers_read() const { return layers_; }
  /// Whether forward needs every position of the sequence (attention) or works per position.
  virtual bool needs_all_positions() const = 0;
  /// `inputs[i]` = backbone hidden state layers_read()[i], [B, T, H] (any float dtype);
  /// `final_normed` = the backbone's final-normed last layer at the same positions;
  /// `key_mask` [B, T] bool marks real tokens (needed by attention; may be undefined);
  /// `state` continues a decode (undefined tensors on the first call) or is null in training.
  virtual AdapterOutput forward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                                const torch::Tensor& key_mask, AdapterState* state) = 0;
  /// Trainable parameters by stable name.
  std::vector<std::pair<std::string, torch::Tensor>> trainable() const;
  int64_t num_trainable() const;

 protected:
  std::vector<int64_t> layers_;
};

TANDEM_DECLARE_REGISTRY(DeviceAdapter);

/// Indices chosen by `layers:` — a list, or `every: k` (every k-th layer, the last always
/// included), or "all". Errors name the key and the valid range [0, num_layers].
std::vector<int64_t> parse_layer_choice(const Config& c, int64_t num_layers, const std::string& fallback_every);

/// x / rms(x): scale-free view of a residual stream, whose magnitude grows with depth.
inline torch::Tensor unit_rms(const torch::Tensor& x, double eps = 1e-6) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps);
}

}  // namespace tandem
