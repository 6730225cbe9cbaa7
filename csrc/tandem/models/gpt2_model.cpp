// GPT-2: learned absolute positions, pre-LayerNorm (with bias) blocks, fused q/k/v projection,
// GELU-tanh MLP, tied head. HF stores its projections as Conv1D weights [in, out], used as is.
#include <cmath>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/decoder_common.h"

namespace tandem {
namespace F = torch::nn::functional;

namespace {

struct Gpt2Layer {
  torch::Tensor ln1, ln1b, attn, attnb, aproj, aprojb, ln2, ln2b, fc, fcb, mproj, mprojb;
};

class Gpt2Model : public CausalLM {
 public:
  explicit Gpt2Model(const ModelConfig& c) : CausalLM(c) {
    const int64_t H = c.hidden_size, I = c.intermediate_size;
    auto p = [&](const std::string& n, std::vector<int64_t> s) { return frozen(n, std::move(s)); };
    wte_ = p("wte", {c.vocab_size, H});
    wpe_ = p("wpe", {c.max_positions, H});
    lnf_ = p("ln_f", {H});
    lnfb_ = p("ln_f_bias", {H});
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::string s = "h_" + std::to_string(l) + "_";
      layers_.push_back({p(s + "ln1", {H}), p(s + "ln1b", {H}), p(s + "attn", {H, 3 * H}), p(s + "attnb", {3 * H}),
                         p(s + "aproj", {H, H}), p(s + "aprojb", {H}), p(s + "ln2", {H}), p(s + "ln2b", {H}),
                         p(s + "fc", {H, I}), p(s + "fcb", {I}), p(s + "mproj", {I, H}), p(s + "mprojb", {H})});
    }
  }

  void load_weights(const WeightSource& src) override {
    torch::NoGradGuard ng;
    head_t_.reset();
    // Checkpoints of GPT2LMHeadModel prefix names with "transformer.", bare GPT2Model ones do not.
    const std::string pre = src.has("transformer.wte.weight") ? "transformer." : "";
    auto fill = [&](torch::Tensor& dst, const std::string& name) { src.copy_into(dst, pre + name); };
    fill(wte_, "wte.weight");
    fill(wpe_, "wpe.weight");
    fill(lnf_, "ln_f.weight");
    fill(lnfb_, "ln_f.bias");
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string s = "h." + std::to_string(l) + ".";
      auto& L = layers_[l];
      fill(L.ln1, s + "ln_1.weight");
      fill(L.ln1b, s + "ln_1.bias");
      fill(L.attn, s + "attn.c_attn.weight");
      fill(L.attnb, s + "attn.c_attn.bias");
      fill(L.aproj, s + "attn.c_proj.weight");
      fill(L.aprojb, s + "attn.c_proj.bias");
      fill(L.ln2, s + "ln_2.weight");
      fill(L.ln2b, s + "ln_2.bias");
      fill(L.fc, s + "mlp.c_fc.weight");
      fill(L.fcb, s + "mlp.c_fc.bias");
      fill(L.mproj, s + "mlp.c_proj.weight");
      fill(L.mprojb, s + "mlp.c_proj.bias");
    }
  }

  LMOutput forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                   const torch::Tensor& position_ids, KVCache* cache, bool output_hidden_states,
                   int64_t logits_to_keep) override {
    torch::NoGradGuard ng;
    const auto& c = config_;
    const auto dev = wte_.device();
    const auto in = decoder::step_inputs(input_ids, attention_mask, position_ids, cache, dev);
    const int64_t B = in.B, T = in.T, H = c.hidden_size, nh = c.num_heads, D = H / nh;
    TORCH_CHECK(in.S <= c.max_positions, "GPT-2 sees at most ", c.max_positions, " positions, got ", in.S);
    const auto& pos = in.pos;
    const auto am = decoder::attention_mask(in.mask, in.padded, in.past, T);
    auto ln = [&](const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
      return torch::layer_norm(x, {H}, w, b, c.rms_norm_eps);
    };
    LMOutput out;
    torch::Tensor x = F::embedding(input_ids.to(dev), wte_) + F::embedding(pos, wpe_);
    if (output_hidden_states) out.hidden_states.push_back(x);
    for (size_t l = 0; l < layers_.size(); ++l) {
      const auto& L = layers_[l];
      auto qkv = torch::addmm(L.attnb, ln(x, L.ln1, L.ln1b).view({B * T, H}), L.attn).view({B, T, 3, nh, D});
      auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
      if (cache) std::tie(k, v) = cache->append(static_cast<int64_t>(l), k.contiguous(), v.contiguous());
      auto a = decoder::attend(q, k, v, am, 1.0 / std::sqrt(static_cast<double>(D))).transpose(1, 2).reshape({B * T, H});
      x = x + torch::addmm(L.aprojb, a, L.aproj).view({B, T, H});
      auto h = torch::gelu(torch::addmm(L.fcb, ln(x, L.ln2, L.ln2b).view({B * T, H}), L.fc), "tanh");
      x = x + torch::addmm(L.mprojb, h, L.mproj).view({B, T, H});
      if (output_hidden_states) out.hidden_states.push_back(x);
    }
    if (cache) cache->advance(T);
    if (logits_to_keep < 0) return out;
    if (logits_to_keep > 0 && logits_to_keep < T) x = x.narrow(1, T - logits_to_keep, logits_to_keep);
    out.logits = project_vocab(final_norm(x));
    return out;
  }

  torch::Tensor final_norm(const torch::Tensor& h) const override {
    return torch::layer_norm(h, {config_.hidden_size}, lnf_, lnfb_, config_.rms_norm_eps);
  }
  torch::Tensor project_vocab(const torch::Tensor& x) override {
    return torch::matmul(x, head_t_.of(wte_)).to(torch::kFloat);
  }

 private:
  torch::Tensor wte_, wpe_, lnf_, lnfb_;
  std::vector<Gpt2Layer> layers_;
  decoder::TransposedHead head_t_;
};

}  // namespace

TANDEM_REGISTER(CausalLM, "gpt2", Gpt2Model);

}  // namespace tandem
