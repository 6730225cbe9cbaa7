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
#include "tandem/core/options.h"
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
  /// Called once after construction, before training: adapters initialised from the frozen
  /// backbone's own weights (LST's pruned side network) read them here. Default: nothing.
  virtual void init_from_backbone(const CausalLM& backbone) { (void)backbone; }
  /// Trainable parameters by stable name.
  std::vector<std::pair<std::string, torch::Tensor>> trainable() const;
  int64_t num_trainable() const;

 protected:
  std::vector<int64_t> layers_;
};

TANDEM_DECLARE_REGISTRY(DeviceAdapter);

/// Which backbone layers an adapter reads: `layers:` (a list of indices, or "all") or else
/// `every: k` (every k-th layer counting down from the last, which is always included).
struct LayerChoice {
  IntsOrAll layers;
  int64_t every;
  explicit LayerChoice(int64_t default_every = 1) : every(default_every) {}
  template <class V>
  void visit(V& v) {
    v.field("layers", layers, "backbone layers read: indices in [0, L] (0 = embeddings), or \"all\"; overrides every");
    v.field("every", every, "read every k-th layer counting down from the last (when layers is unset)", Positive{});
  }
  /// The sorted, distinct indices; errors name `c`'s file, line and key and the range [0, L].
  std::vector<int64_t> resolve(int64_t num_layers, const Config& c) const;
};

/// x / rms(x): scale-free view of a residual stream, whose magnitude grows with depth.
inline torch::Tensor unit_rms(const torch::Tensor& x, double eps = 1e-6) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps);
}

}  // namespace tandem

namespace tandem {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct SidePluginOptions {
  std::string placement = "parallel";
  int64_t rank = 64;
  int64_t mlp_hidden = 0;
  LayerChoice read{3};
  template <class V>
  void visit(V& v) {
    v.field("placement", placement, "parallel: taps the chosen backbone layers; sequential: the final state only",
            OneOf{{"parallel", "sequential"}});
    // Bounded so a typo (rank: 1000000000) is a config error, not a request for terabytes.
    v.field("rank", rank, "width of the plugin's state and of the logit shift", Range{1, 1 << 16});
    v.field("mlp_hidden", mlp_hidden, "hidden width of the plugin's MLP (0 = 4 x rank)", Range{0, 1 << 16});
    v.merge(read);
  }
  TANDEM_OPTIONS(SidePluginOptions)
};

struct LadderSideOptions {
  int64_t reduction = 8;
  int64_t heads = 0;
  std::string init = "pruned";
  std::string importance = "magnitude";
  double gate_temperature = 0.1;
  LayerChoice read{1};
  template <class V>
  void visit(V& v) {
    v.field("reduction", reduction, "side width = hidden size / r; attention heads and MLP width shrink by r too",
            Range{1, 1 << 20});
    v.field("heads", heads, "attention heads of each side block (0 = the backbone's heads / r, at least 1)", Range{0, 1024});
    v.field("init", init, "pruned: each side block is its backbone layer structurally pruned (the LST paper); random",
            OneOf{{"pruned", "random"}});
    v.field("importance", importance, "what picks the kept channels and heads when pruning: weight magnitude (L1)",
            OneOf{{"magnitude"}});
    v.field("gate_temperature", gate_temperature, "T of the ladder gates sigmoid(alpha / T)", Range{1e-3, 100.0});
    // Layer dropping (the LST paper's option) is `every: 2` (or a `layers:` list): one side block per layer read.
    v.merge(read);
  }
  TANDEM_OPTIONS(LadderSideOptions)
};

struct SpaLadderOptions {
  int64_t width = 32;
  int64_t bottleneck = 16;
  LayerChoice read{1};
  template <class V>
  void visit(V& v) {
    v.field("width", width, "width of the side ladder's state (the authors' code: 32)", Range{1, 1 << 16});
    v.field("bottleneck", bottleneck, "inner width of each rung's residual ReLU bottleneck", Range{1, 1 << 16});
    v.merge(read);
  }
  TANDEM_OPTIONS(SpaLadderOptions)
};

}  // namespace tandem
