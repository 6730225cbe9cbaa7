// Ladder Side-Tuning (Sung et al., 2022) for decoder LMs: a narrow transformer (width H / r)
// beside the frozen backbone. Block i reads the side state and a gated, down-projected copy of
// backbone layer i's output:  s <- g_i * D_i(h_i) + (1 - g_i) * s,  g_i = sigmoid(alpha_i / T);
// then a causal self-attention + MLP block. The final side state goes through an up-projection
// into the backbone's final-normed space and the frozen vocabulary projection: unlike SPA, the
// backbone's own output is not kept, only the side network's. Only the side network trains.
#include <cmath>

#include "tandem/peft/adapter.h"

namespace tandem {
namespace {

class LadderSide : public DeviceAdapter {
 public:
  using Options = LadderSideOptions;

  LadderSide(const Config& c, const ModelConfig& m) {
    const Options o = Options::from_config(c);
    const int64_t H = m.hidden_size;
    if (o.reduction > H) c.fail("reduction", "at most the hidden size " + std::to_string(H));
    d_ = H / o.reduction;
    heads_ = o.heads;
    if (d_ % heads_ != 0) c.fail("heads", "a divisor of the side width " + std::to_string(d_));
    temperature_ = o.gate_temperature;
    const auto chosen = o.read.resolve(m.num_layers, c);
    layers_ = {0};  // the embeddings start the ladder
    layers_.insert(layers_.end(), chosen.begin(), chosen.end());
    const int64_t n = static_cast<int64_t>(chosen.size());
    const double in_std = 1.0 / std::sqrt(static_cast<double>(H)), side_std = 1.0 / std::sqrt(static_cast<double>(d_));
    embed_down_ = register_parameter("embed_down", torch::randn({d_, H}) * in_std);
    down_ = register_parameter("down", torch::randn({n, d_, H}) * in_std);
    gate_ = register_parameter("gate", torch::zeros({n}));
    qkv_ = register_parameter("qkv", torch::randn({n, 3 * d_, d_}) * side_std);
    proj_ = register_parameter("attn_out", torch::randn({n, d_, d_}) * side_std * 0.5);
    fc1_ = register_parameter("mlp_in", torch::randn({n, 4 * d_, d_}) * side_std);
    fc2_ = register_parameter("mlp_out", torch::randn({n, d_, 4 * d_}) * (0.5 / std::sqrt(4.0 * d_)));
    ln1_ = register_parameter("ln_attn", torch::ones({n, d_}));
    ln2_ = register_parameter("ln_mlp", torch::ones({n, d_}));
    lnf_ = register_parameter("ln_final", torch::ones({d_}));
    up_ = register_parameter("up", torch::randn({H, d_}) * side_std);
  }

  bool needs_all_positions() const override { return true; }

  AdapterOutput forward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                        const torch::Tensor& key_mask, AdapterState* state) override {
    const auto dt = down_.scalar_type();
    const int64_t n = static_cast<int64_t>(layers_.size()) - 1;
    TORCH_CHECK(static_cast<int64_t>(inputs.size()) == n + 1,
                "LST: expected the embeddings plus ", n, " layer inputs, got ", inputs.size());
    const int64_t B = inputs[0].size(0), T = inputs[0].size(1), hd = d_ / heads_;
    // Attention mask over keys: previous (cached) keys plus this call's, causal within the call.
    torch::Tensor km = key_mask.defined() ? key_mask.to(torch::kBool) : torch::ones({B, T}, torch::kBool);
    km = km.to(down_.device());
    if (state && state->key_mask.defined()) km = torch::cat({state->key_mask, km}, 1);
    const int64_t S = km.size(1), past = S - T;
    auto causal = torch::ones({T, S}, torch::TensorOptions().dtype(torch::kBool).device(km.device())).tril(past);
    auto mask = causal.unsqueeze(0) & km.unsqueeze(1);  // [B, T, S]
    // A fully masked row (a padding query) would give NaN; let it see itself.
    mask = mask | torch::eye(T, S, torch::TensorOptions().dtype(torch::kBool).device(km.device())).roll(past, 1).unsqueeze(0);
    mask = mask.unsqueeze(1);  // [B, 1, T, S]

    torch::Tensor s = torch::matmul(unit_rms(inputs[0].to(dt)), embed_down_.t());
    if (state && state->k.empty()) {
      state->k.resize(n);
      state->v.resize(n);
    }
    for (int64_t i = 0; i < n; ++i) {
      const auto g = torch::sigmoid(gate_[i] / temperature_);
      s = g * torch::matmul(unit_rms(inputs[i + 1].to(dt)), down_[i].t()) + (1 - g) * s;
      auto h = rms(s, ln1_[i]);
      auto qkv = torch::matmul(h, qkv_[i].t()).view({B, T, 3, heads_, hd});
      auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
      if (state) {
        if (state->k[i].defined()) {
          k = torch::cat({state->k[i], k}, 2);
          v = torch::cat({state->v[i], v}, 2);
        }
        state->k[i] = k.detach();
        state->v[i] = v.detach();
      }
      auto a = at::scaled_dot_product_attention(q, k, v, mask).transpose(1, 2).reshape({B, T, d_});
      s = s + torch::matmul(a, proj_[i].t());
      s = s + torch::matmul(torch::gelu(torch::matmul(rms(s, ln2_[i]), fc1_[i].t())), fc2_[i].t());
    }
    if (state) state->key_mask = km;
    AdapterOutput out;
    out.features = s;
    out.hidden = torch::matmul(rms(s, lnf_), up_.t());
    (void)final_normed;  // LST does not keep the backbone's output
    return out;
  }

 private:
  static torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w) { return unit_rms(x) * w; }

  int64_t d_, heads_;
  double temperature_;
  torch::Tensor embed_down_, down_, gate_, qkv_, proj_, fc1_, fc2_, ln1_, ln2_, lnf_, up_;
};

TANDEM_REGISTER(DeviceAdapter, "lst", LadderSide);

}  // namespace
}  // namespace tandem
