// The Llama family decoder (Llama 2/3, SmolLM2, TinyLlama, Mistral-style) and Qwen2 (the same
// block with q/k/v biases). Numerics follow HF transformers: RMSNorm in float32, rotate-half
// RoPE, grouped-query attention, SwiGLU MLP.
#include <cmath>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/decoder_common.h"

namespace tandem {
namespace F = torch::nn::functional;
using decoder::proj;
using decoder::rms_norm;

namespace {

struct Layer {
  torch::Tensor ln1, ln2, q, k, v, o, qb, kb, vb, gate, up, down;
  PackedWeight pq, pk, pv, po, pgate, pup, pdown;  // quantized copies for small-batch steps
};

// A projection that reads the quantized blocks when the step is a few rows (decoding): then
// reading the weights is the whole cost. Larger steps (prefill) use BLAS on float32 weights.
torch::Tensor proj_q(const torch::Tensor& x, const torch::Tensor& w, const PackedWeight& pw,
                     const torch::Tensor& b = {}) {
  const int64_t rows = x.numel() / x.size(-1);
  if (pw.defined() && rows <= kPackedMaxRows && x.scalar_type() == torch::kFloat && x.device().is_cpu()) {
    auto sizes = x.sizes().vec();
    sizes.back() = pw.rows;
    auto y = packed_matmul(x.reshape({rows, x.size(-1)}), pw).view(sizes);
    return b.defined() ? y + b : y;
  }
  return proj(x, w, b);
}

class LlamaModel : public CausalLM {
 public:
  explicit LlamaModel(const ModelConfig& c) : CausalLM(c) {
    const auto& cf = config_;
    const int64_t H = cf.hidden_size, D = cf.head_dim, nh = cf.num_heads, nkv = cf.num_kv_heads;
    auto p = [&](const std::string& name, std::vector<int64_t> shape) { return frozen(name, std::move(shape)); };
    embed_ = p("embed_tokens", {cf.vocab_size, H});
    norm_ = p("norm", {H});
    if (!cf.tie_word_embeddings) lm_head_ = p("lm_head", {cf.vocab_size, H});
    for (int64_t i = 0; i < cf.num_layers; ++i) {
      const std::string s = "layers_" + std::to_string(i) + "_";
      Layer L;
      L.ln1 = p(s + "input_layernorm", {H});
      L.ln2 = p(s + "post_attention_layernorm", {H});
      L.q = p(s + "q_proj", {nh * D, H});
      L.k = p(s + "k_proj", {nkv * D, H});
      L.v = p(s + "v_proj", {nkv * D, H});
      L.o = p(s + "o_proj", {H, nh * D});
      if (cf.attention_bias) {
        L.qb = p(s + "q_proj_bias", {nh * D});
        L.kb = p(s + "k_proj_bias", {nkv * D});
        L.vb = p(s + "v_proj_bias", {nkv * D});
      }
      L.gate = p(s + "gate_proj", {cf.intermediate_size, H});
      L.up = p(s + "up_proj", {cf.intermediate_size, H});
      L.down = p(s + "down_proj", {H, cf.intermediate_size});
      layers_.push_back(L);
    }
    inv_freq_ = decoder::rope_inv_freq(cf.rope_theta, D);
    // Kept outside the module's buffers so a dtype cast of the model never rounds it.
  }

  void load_weights(const WeightSource& src) override {
    torch::NoGradGuard ng;
    head_t_.reset();
    auto fill = [&](torch::Tensor& dst, const std::string& name) { src.copy_into(dst, name); };
    fill(embed_, "model.embed_tokens.weight");
    fill(norm_, "model.norm.weight");
    if (lm_head_.defined()) fill(lm_head_, "lm_head.weight");
    for (size_t i = 0; i < layers_.size(); ++i) {
      const std::string s = "model.layers." + std::to_string(i) + ".";
      Layer& L = layers_[i];
      fill(L.ln1, s + "input_layernorm.weight");
      fill(L.ln2, s + "post_attention_layernorm.weight");
      fill(L.q, s + "self_attn.q_proj.weight");
      fill(L.k, s + "self_attn.k_proj.weight");
      fill(L.v, s + "self_attn.v_proj.weight");
      fill(L.o, s + "self_attn.o_proj.weight");
      if (L.qb.defined()) {
        fill(L.qb, s + "self_attn.q_proj.bias");
        fill(L.kb, s + "self_attn.k_proj.bias");
        fill(L.vb, s + "self_attn.v_proj.bias");
      }
      fill(L.gate, s + "mlp.gate_proj.weight");
      fill(L.up, s + "mlp.up_proj.weight");
      fill(L.down, s + "mlp.down_proj.weight");
      if (embed_.scalar_type() == torch::kFloat) {  // the packed kernels compute in float32
        L.pq = src.packed(s + "self_attn.q_proj.weight");
        L.pk = src.packed(s + "self_attn.k_proj.weight");
        L.pv = src.packed(s + "self_attn.v_proj.weight");
        L.po = src.packed(s + "self_attn.o_proj.weight");
        L.pgate = src.packed(s + "mlp.gate_proj.weight");
        L.pup = src.packed(s + "mlp.up_proj.weight");
        L.pdown = src.packed(s + "mlp.down_proj.weight");
      }
    }
    if (embed_.scalar_type() == torch::kFloat)
      head_packed_ = src.packed(lm_head_.defined() ? "lm_head.weight" : "model.embed_tokens.weight");
  }

  LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                   const torch::Tensor& position_ids, KVCache* cache, bool output_hidden_states,
                   int64_t logits_to_keep) override {
    torch::NoGradGuard ng;  // the backbone is frozen everywhere tandem uses it
    const auto& cf = config_;
    const auto dev = embed_.device();
    const auto in = decoder::step_inputs(input_ids, attention_mask, position_ids, cache, dev);
    const int64_t B = in.B, T = in.T;
    const auto cs = decoder::rope_tables(in.pos, inv_freq_, embed_.scalar_type());
    const auto am = decoder::attention_mask(in.mask, in.padded, in.past, T);
    const int64_t nh = cf.num_heads, nkv = cf.num_kv_heads, D = cf.head_dim;
    LMOutput out;
    torch::Tensor x = F::embedding(input_ids.to(dev), embed_);
    if (output_hidden_states) out.hidden_states.push_back(x);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = layers_[i];
      auto h = rms_norm(x, L.ln1, cf.rms_norm_eps);
      auto q = proj_q(h, L.q, L.pq, L.qb).view({B, T, nh, D}).transpose(1, 2);
      auto k = proj_q(h, L.k, L.pk, L.kb).view({B, T, nkv, D}).transpose(1, 2);
      auto v = proj_q(h, L.v, L.pv, L.vb).view({B, T, nkv, D}).transpose(1, 2);
      q = decoder::apply_rope(q, cs);
      k = decoder::apply_rope(k, cs);
      if (cache) std::tie(k, v) = cache->append(static_cast<int64_t>(i), k, v);
      auto a = decoder::attend(q, k, v, am, 1.0 / std::sqrt(static_cast<double>(D)));
      a = a.transpose(1, 2).reshape({B, T, nh * D});
      x = x + proj_q(a, L.o, L.po);
      h = rms_norm(x, L.ln2, cf.rms_norm_eps);
      x = x + proj_q(torch::silu(proj_q(h, L.gate, L.pgate)) * proj_q(h, L.up, L.pup), L.down, L.pdown);
      if (output_hidden_states) out.hidden_states.push_back(x);
    }
    if (cache) cache->advance(T);
    if (logits_to_keep < 0) return out;
    if (logits_to_keep > 0 && logits_to_keep < T) x = x.narrow(1, T - logits_to_keep, logits_to_keep);
    out.logits = project_vocab(final_norm(x));
    return out;
  }

  torch::Tensor final_norm(const torch::Tensor& h) const override { return rms_norm(h, norm_, config_.rms_norm_eps); }

  torch::Tensor project_vocab(const torch::Tensor& x) override {
    const int64_t rows = x.numel() / x.size(-1);
    const bool need_grad = torch::GradMode::is_enabled() && x.requires_grad();
    if (!need_grad && head_packed_.defined() && rows <= kPackedMaxRows && x.scalar_type() == torch::kFloat && x.device().is_cpu()) {
      std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
      shape.back() = -1;
      return packed_matmul(x.reshape({rows, x.size(-1)}), head_packed_).view(shape);
    }
    return torch::matmul(x, head_t_.of(lm_head_.defined() ? lm_head_ : embed_)).to(torch::kFloat);
  }

 private:
  torch::Tensor embed_, norm_, lm_head_, inv_freq_;
  decoder::TransposedHead head_t_;
  PackedWeight head_packed_;
  std::vector<Layer> layers_;
};

}  // namespace

TANDEM_REGISTER(CausalLM, "llama", LlamaModel);
TANDEM_REGISTER(CausalLM, "mistral", LlamaModel);
TANDEM_REGISTER(CausalLM, "qwen2", LlamaModel);


}  // namespace tandem
