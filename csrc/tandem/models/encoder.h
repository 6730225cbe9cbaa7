// Encoder: bidirectional text encoders (BERT family: MiniLM, BGE) for sentence embeddings.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "tandem/core/registry.h"

namespace tandem {

struct EncoderConfig {
  std::string architecture;  ///< registry name, e.g. "bert"
  int64_t vocab_size = 0, hidden_size = 0, num_layers = 0, num_heads = 0, intermediate_size = 0;
  int64_t max_positions = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string pooling = "mean";  ///< "mean" or "cls" (sentence-transformers' 1_Pooling)
  bool normalize = false;        ///< L2-normalise embeddings (sentence-transformers' Normalize)
  std::string source;
};

/// Where a feature hook (SSF, adapters) may act inside each encoder layer.
enum class EncoderSite : int {
  kAttnOut = 0,   ///< attention output projection, before the residual add   [B, T, H]
  kFfnHidden = 1, ///< FFN up projection, before the activation               [B, T, I]
  kFfnOut = 2,    ///< FFN down projection, before the residual add           [B, T, H]
  kBlockOut = 3,  ///< the block's final LayerNorm output                      [B, T, H]
};
constexpr int kNumEncoderSites = 4;

/// Modulates a feature inside a frozen encoder: returns the replacement for `x` at (layer, site).
/// Gradients flow through the hook's own parameters; the encoder's weights stay frozen.
using EncoderHook = std::function<torch::Tensor(int64_t layer, EncoderSite site, const torch::Tensor& x)>;

class Encoder : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "models.encoder";
  using Factory = std::unique_ptr<Encoder>(const EncoderConfig&);
  /// Token states [B, T, H] for ids [B, T] with mask [B, T] (1 = token).
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) = 0;
  virtual void load_weights(const std::string& dir) = 0;
  /// Embedding output (after its LayerNorm) [B, T, H]: the input of layer 0.
  virtual torch::Tensor embed_tokens(const torch::Tensor& input_ids) = 0;
  /// Runs layers [first, last) on states `x` [B, T, H]; `hook` (may be empty) acts at every site.
  /// Autograd stays on, so a trainable hook gets gradients; call under NoGradGuard for inference.
  /// forward(ids, mask) == run_layers(embed_tokens(ids), mask, 0, num_layers, {}).
  virtual torch::Tensor run_layers(torch::Tensor x, const torch::Tensor& attention_mask, int64_t first, int64_t last,
                                   const EncoderHook& hook) = 0;
  /// Pools token states [B, T, H] into [B, H] as the model's pooling says (no normalisation).
  torch::Tensor pool(const torch::Tensor& states, const torch::Tensor& attention_mask) const;
  /// Sentence embeddings [B, H]: pooled (mean over real tokens, or [CLS]), optionally normalised.
  torch::Tensor embed(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  const EncoderConfig& config() const { return config_; }

 protected:
  explicit Encoder(EncoderConfig c) : config_(std::move(c)) {}
  /// Registers a frozen (no-grad) parameter; weights are filled by load_weights.
  torch::Tensor frozen(const std::string& name, std::vector<int64_t> shape) {
    return register_parameter(name, torch::empty(shape), /*requires_grad=*/false);
  }
  EncoderConfig config_;
};

TANDEM_DECLARE_REGISTRY(Encoder);

/// Loads an HF encoder directory (config.json + model.safetensors; sentence-transformers'
/// 1_Pooling/config.json and modules.json, when present, choose pooling and normalisation).
std::shared_ptr<Encoder> load_encoder(const std::string& dir, const c10::Device& device, c10::ScalarType dtype);

}  // namespace tandem
