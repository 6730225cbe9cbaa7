// SideAdaptedLM: SPA's model. A frozen backbone (the cloud), a small trained plugin (the device)
// and optionally a router that decides, per generated token, whose distribution is used.
//
// The plugin reads backbone hidden states and returns a state in the backbone's final-normed
// space; the frozen vocabulary projection W turns it into the adapted logits. For an additive
// plugin (hidden = final + U z) that is backbone logits + z (W U)^T, so when the cloud sends its
// logits the device multiplies by the rank-r product W U instead of by W. This class is the one
// place those logits are computed: training (train_logits), decoding (next_token), Symbolic-MoE's
// plugin experts and the step benchmark all call it.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/models/causal_lm.h"
#include "tandem/peft/adapter.h"
#include "tandem/spa/router.h"

namespace tandem::spa {

/// Logits and router inputs at a set of positions (rows).
struct SideLogits {
  torch::Tensor adapted;   ///< [R, V] adapted logits (soft-capped like the backbone's)
  torch::Tensor backbone;  ///< [R, V] the backbone's logits (when asked for)
  torch::Tensor state;     ///< [R, H] the backbone's final-normed state: a router input
  torch::Tensor features;  ///< [R, F] the plugin's own state: a router input
};

/// Copies the tensors of a safetensors file into `params` by name; a missing tensor or a shape
/// mismatch is an error naming the file and the tensor (a plugin or router saved by a run).
void load_weights_into(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& params);

class SideAdaptedLM {
 public:
  /// `router` may be null: the adapted logits are then used at every step.
  /// `dtype`: the backbone's compute dtype (states are cast to it before the frozen norm and head).
  SideAdaptedLM(std::shared_ptr<CausalLM> backbone, std::shared_ptr<DeviceAdapter> plugin, std::shared_ptr<Router> router,
                c10::ScalarType dtype);

  /// From config sections: the plugin (`adapter:`, initialised from the backbone's weights when
  /// its type does so) and, when `router` is given, the router (`router:`; no `type:` = the
  /// paper's MLP; type always = no router, the adapted logits at every step). `router_type`
  /// receives the router's type.
  static std::unique_ptr<SideAdaptedLM> from_config(std::shared_ptr<CausalLM> backbone, const Config& adapter,
                                                    const Config* router, c10::Device device, c10::ScalarType dtype,
                                                    std::string* router_type = nullptr);

  /// A trained SPA/LST run directory (config.yaml, adapter.safetensors, router.safetensors) on
  /// `backbone`: the plugin and router it trained, in eval mode. Errors name the file and tensor.
  static std::unique_ptr<SideAdaptedLM> load_run(const std::string& run_dir, std::shared_ptr<CausalLM> backbone,
                                                 c10::Device device, c10::ScalarType dtype);

  CausalLM& backbone() const { return *backbone_; }
  DeviceAdapter& plugin() const { return *plugin_; }
  Router* router() const { return router_.get(); }

  /// The backbone's pre-cap logits at the scored rows, given their final-normed states, when the
  /// cloud has them at hand (a cache); an undefined tensor otherwise.
  using BaseLogits = std::function<torch::Tensor(const torch::Tensor& final_normed_rows)>;

  /// Training and evaluation on backbone states. `inputs[i]`: states of plugin layer i on the
  /// device, [B, T, H] (per-position plugins: [1, R, H], the scored rows only); `last_rows`: the
  /// last layer's raw states at the R scored rows [R, H]; `key_mask` [B, T] and `rows` (flattened
  /// B*T indices of the scored rows) for plugins that attend across positions. With `base`
  /// logits an additive plugin trains through the rank-r product W U. Gradients reach the plugin only.
  SideLogits train_logits(const std::vector<torch::Tensor>& inputs, const torch::Tensor& last_rows,
                          const torch::Tensor& key_mask, const torch::Tensor& rows, const BaseLogits& base,
                          bool want_backbone);

  /// One decoding step from a backbone forward's hidden states (every layer, [B, T, H] for the T
  /// positions just fed): the next-token logits [B, V] of each row, adapted where the router (or
  /// its absence) says so; `use_adapted` [B] bool (CPU) says which. `state` carries a sequence
  /// plugin's attention keys across steps.
  torch::Tensor next_token(const std::vector<torch::Tensor>& hidden_states, const torch::Tensor& key_mask,
                           AdapterState* state, torch::Tensor* use_adapted);

  /// The additive-logit step itself: adapted logits [R, V] from a plugin output (rows gathered
  /// by `rows` when defined), through W U with the backbone's pre-cap logits `base`, else W.
  torch::Tensor adapted_logits(const AdapterOutput& out, const torch::Tensor& rows, const torch::Tensor& base) const;

  /// The device's share: trainable parameters, memory (plugin + router + a float32 copy of the
  /// frozen head), and the bytes the cloud sends per generated token (the states of the layers
  /// the plugin reads, plus the backbone's float32 logits when routed). As JSON metrics.
  nlohmann::json device_footprint() const;

  /// The plugin's inputs from a backbone forward's hidden states: every position for plugins that
  /// attend across positions, the last one otherwise.
  std::vector<torch::Tensor> plugin_inputs(const std::vector<torch::Tensor>& hidden_states) const;

 private:
  std::shared_ptr<CausalLM> backbone_;
  std::shared_ptr<DeviceAdapter> plugin_;
  std::shared_ptr<Router> router_;
  c10::ScalarType dtype_;

  /// W U [r, V] for an additive plugin's basis U. Outside autograd (decoding, evaluation) it is
  /// kept until U changes (its storage or version counter), so a decode step multiplies by the
  /// cached product instead of projecting a second state through the 49k-row head.
  torch::Tensor vocab_basis(const torch::Tensor& basis) const;
  mutable torch::Tensor wu_cache_;
  mutable const void* wu_data_ = nullptr;
  mutable int64_t wu_version_ = -1;
};

}  // namespace tandem::spa
