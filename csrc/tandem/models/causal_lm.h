// CausalLM: decoder-only language models (Llama family, Qwen2) on LibTorch, with a KV cache,
// per-layer hidden states on request, and weights from HF safetensors or GGUF.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/registry.h"
#include "tandem/models/kv_cache.h"
#include "tandem/models/packed_matmul.h"

namespace tandem {

/// RoPE frequency scaling, as HF's rope_scaling / rope_parameters or GGUF's rope keys give it.
struct RopeScaling {
  std::string type = "default";  ///< default | linear | dynamic | llama3 | yarn | longrope
  double factor = 1.0;
  bool factor_set = false;                       ///< the file gave factor (yarn/longrope derive it otherwise)
  int64_t original_max_positions = 0;            ///< pretraining context (llama3, yarn, longrope)
  double low_freq_factor = 1.0, high_freq_factor = 4.0;  ///< llama3
  double beta_fast = 32.0, beta_slow = 1.0, mscale = 0.0, mscale_all_dim = 0.0;  ///< yarn
  bool truncate = true;                          ///< yarn: round the correction range
  double attention_factor = 0.0;                 ///< cos/sin multiplier; 0 = derived per type
  std::vector<double> short_factor, long_factor;  ///< longrope, one per rotary frequency
  std::vector<double> freq_factors;              ///< GGUF rope_freqs: inv_freq divided by these
};

/// Architecture hyper-parameters, read from HF config.json or GGUF metadata.
struct ModelConfig {
  std::string architecture;  ///< registry name, e.g. "llama", "qwen2"
  int64_t vocab_size = 0, hidden_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0;
  int64_t head_dim = 0, intermediate_size = 0, max_positions = 2048;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  ///< q/k/v projections carry biases (Qwen2, Llama attention_bias)
  bool o_bias = false;          ///< o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;        ///< gate/up/down carry biases (Llama mlp_bias)
  bool qk_norm = false;         ///< per-head RMSNorm of q and k before RoPE (Qwen3)
  std::string hidden_act = "silu";  ///< the MLP's gate activation
  RopeScaling rope;
  double partial_rotary_factor = 1.0;  ///< fraction of each head that RoPE rotates (Phi-4-mini)
  double attn_logit_softcapping = 0.0;  ///< attention scores = cap * tanh(s / cap) when > 0 (Gemma 2)
  int64_t num_experts = 0, experts_per_token = 0;  ///< sparse MoE MLP (Mixtral) when num_experts > 0
  std::string weight_prefix = "model.";  ///< where the text model's tensors live ("model.language_model." in Gemma 3 4B+)
  std::vector<std::string> skipped_prefixes;  ///< tensors present but deliberately unused (a vision tower), with a note
  int64_t bos_token_id = -1, eos_token_id = -1, pad_token_id = -1;
  // Gemma 3 (and later families): sliding-window layers with their own RoPE base, q/k norms.
  std::vector<bool> sliding_layers;      ///< per layer: sliding-window attention (else global)
  int64_t sliding_window = 0;            ///< keys a sliding layer sees back (0 = all)
  double rope_local_theta = 10000.0;     ///< RoPE base of sliding layers
  double query_pre_attn_scalar = 0.0;    ///< attention scale = this^-0.5 (0 = head_dim)
  double final_logit_softcapping = 0.0;  ///< logits = cap * tanh(logits / cap) when > 0
  std::string source;           ///< file it came from, for messages
};

struct LMOutput {
  torch::Tensor logits;                      ///< [batch, seq, vocab], float32
  std::vector<torch::Tensor> hidden_states;  ///< embeddings + each layer's output, when asked
};

/// Source of named weights in HF naming (model.layers.0.self_attn.q_proj.weight, ...). It
/// remembers which tensors the model took, so a file holding tensors no layer reads is reported.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  /// Every tensor name the source holds (HF naming).
  virtual std::vector<std::string> names() const = 0;
  virtual std::string describe() const = 0;
  /// The tensor's quantized blocks, when the source stores it in a type packed_matmul reads
  /// (rows in HF order); undefined otherwise.
  virtual PackedWeight packed(const std::string& name) const { return {}; }
  /// The tensor in `dtype`, marked as used; throws naming the file and the missing tensor.
  torch::Tensor fetch(const std::string& name, c10::ScalarType dtype) const {
    used_.insert(name);
    return get(name, dtype);
  }
  /// Copies tensor `name` into `dst` (in dst's dtype); a shape that differs from what the
  /// model config implies is an error naming the file, the tensor and both shapes.
  void copy_into(torch::Tensor& dst, const std::string& name) const {
    torch::Tensor t = fetch(name, dst.scalar_type());
    check_shape(t, dst, name);
    dst.copy_(t);
  }
  void check_shape(const torch::Tensor& t, const torch::Tensor& dst, const std::string& name) const {
    if (t.sizes() != dst.sizes())
      throw std::runtime_error(describe() + ": tensor '" + name + "' has shape " + c10::str(t.sizes()) +
                               ", expected " + c10::str(dst.sizes()) + " from the model config");
  }
  const std::set<std::string>& used() const { return used_; }

 protected:
  virtual torch::Tensor get(const std::string& name, c10::ScalarType dtype) const = 0;

 private:
  mutable std::set<std::string> used_;
};

class CausalLM : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "models.causal_lm";
  using Factory = std::unique_ptr<CausalLM>(const ModelConfig&);
  ~CausalLM() override = default;

  /// input_ids [B, T]; attention_mask [B, past + T] (1 = real token, 0 = padding) or undefined;
  /// position_ids [B, T] or undefined (then derived from the mask). Updates `cache` when given.
  /// logits_to_keep > 0 computes logits for the last that many positions only (the vocabulary
  /// projection dominates small models: generation needs 1, scoring the continuation's length);
  /// logits_to_keep < 0 computes none (callers that read hidden states and project themselves).
  virtual LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                           const torch::Tensor& position_ids, KVCache* cache, bool output_hidden_states,
                           int64_t logits_to_keep = 0) = 0;
  /// The final normalisation the family applies to the last layer's output. Differentiable in
  /// `h` (weights stay frozen), so adapters trained on top can back-propagate through it.
  virtual torch::Tensor final_norm(const torch::Tensor& h) const = 0;
  /// The (linear) vocabulary projection of final-normed states, float32, before soft-capping.
  /// Differentiable in `x`; uses the packed-weight kernels for a few rows when no grad is needed.
  virtual torch::Tensor project_vocab(const torch::Tensor& x) = 0;
  /// Soft-capping of logits for families that use it (identity otherwise).
  torch::Tensor cap_logits(const torch::Tensor& logits) const {
    const double cap = config_.final_logit_softcapping;
    return cap > 0 ? torch::tanh(logits / cap) * cap : logits;
  }
  /// Copies weights from `src`; every parameter must be found with the right shape.
  virtual void load_weights(const WeightSource& src) = 0;

  const ModelConfig& config() const { return config_; }
  int64_t num_parameters() const;

 protected:
  explicit CausalLM(ModelConfig c) : config_(std::move(c)) {}
  /// Registers a frozen (no-grad) parameter; weights are filled by load_weights.
  torch::Tensor frozen(const std::string& name, std::vector<int64_t> shape) {
    return register_parameter(name, torch::empty(shape), /*requires_grad=*/false);
  }
  ModelConfig config_;
};

TANDEM_DECLARE_REGISTRY(CausalLM);

/// Loads a model from an HF directory (config.json + *.safetensors, sharded or not) or a
/// .gguf file, onto `device` in `dtype`. Errors name the file and what was expected.
std::shared_ptr<CausalLM> load_causal_lm(const std::string& path, const c10::Device& device, c10::ScalarType dtype);

/// Reads an HF config.json into a ModelConfig (architecture from "model_type").
ModelConfig read_hf_config(const std::string& config_json_path);

}  // namespace tandem
