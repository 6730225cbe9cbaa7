// Ladder Side-Tuning (Sung et al., 2022) for decoder LMs: a narrow copy of the backbone (width
// d = H / r, heads and MLP width also / r) beside it. The side state starts from a down-projection
// of the embeddings; before side block i, a gated down-projection of backbone state h_l is mixed in
//     s <- g_i * D_i h_l + (1 - g_i) * s,      g_i = sigmoid(alpha_i / T), alpha_i = 0 at start,
// then a pre-norm block shaped like the backbone's (RMSNorm, multi-head attention with RoPE at the
// backbone's theta, RMSNorm, SwiGLU MLP). The final side state, RMS-normed, is projected up into
// the backbone's final-normed space and through the frozen vocabulary projection: the backbone's
// own output is not kept (unlike SPA). Only the side network trains.
//
// init: pruned (the paper's choice) copies into side block i the backbone layer that produced h_l,
// structurally pruned: the d hidden channels, heads and MLP channels with the largest weight
// magnitude (L1) are kept, D_i and the embedding projection start as the kept-channel selection,
// the up-projection as its transpose and the final norm as the backbone's, so the untrained side
// network is a pruned backbone fed by the backbone's own states. init: random is the ablation.
// Layer dropping: `every: 2` (or `layers:`) keeps one side block per layer read.
#include <cmath>
#include <map>

#include "tandem/peft/adapter.h"

namespace tandem {
namespace {

torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, true) + eps) * w;
}

// rotate-half RoPE (the HF layout the loader gives q/k in); positions [B, T] -> [B, 1, T, hd].
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& positions, double theta) {
  const int64_t hd = x.size(-1);
  auto inv = torch::pow(theta, -torch::arange(0, hd, 2, torch::TensorOptions().dtype(torch::kFloat).device(x.device())) / hd);
  auto ang = positions.to(torch::kFloat).unsqueeze(-1) * inv;  // [B, T, hd/2]
  auto emb = torch::cat({ang, ang}, -1).unsqueeze(1);        // [B, 1, T, hd]
  auto cos = emb.cos().to(x.scalar_type()), sin = emb.sin().to(x.scalar_type());
  auto x1 = x.narrow(-1, 0, hd / 2), x2 = x.narrow(-1, hd / 2, hd / 2);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

class LadderSide : public DeviceAdapter {
 public:
  using Options = LadderSideOptions;

  LadderSide(const Config& c, const ModelConfig& m) : opts_(Options::from_config(c)) {
    const int64_t H = m.hidden_size;
    const int64_t r = opts_.reduction;
    if (r > H) c.fail("reduction", "at most the hidden size " + std::to_string(H));
    d_ = H / r;
    head_dim_ = m.head_dim > 0 ? m.head_dim : H / std::max<int64_t>(1, m.num_heads);
    heads_ = opts_.heads > 0 ? opts_.heads : std::max<int64_t>(1, m.num_heads / r);
    if (heads_ > m.num_heads) c.fail("heads", "at most the backbone's " + std::to_string(m.num_heads) + " heads");
    ffn_ = std::max<int64_t>(1, m.intermediate_size / r);
    eps_ = m.rms_norm_eps;
    theta_ = m.rope_theta;
    temperature_ = opts_.gate_temperature;
    const auto chosen = opts_.read.resolve(m.num_layers, c);
    layers_ = {0};  // the embeddings start the ladder
    layers_.insert(layers_.end(), chosen.begin(), chosen.end());
    const int64_t n = static_cast<int64_t>(chosen.size()), A = heads_ * head_dim_;
    const double in_std = 1.0 / std::sqrt(static_cast<double>(H)), side_std = 1.0 / std::sqrt(static_cast<double>(d_));
    embed_down_ = register_parameter("embed_down", torch::randn({d_, H}) * in_std);
    down_ = register_parameter("down", torch::randn({n, d_, H}) * in_std);
    gate_ = register_parameter("gate", torch::zeros({n}));
    q_ = register_parameter("q", torch::randn({n, A, d_}) * side_std);
    k_ = register_parameter("k", torch::randn({n, A, d_}) * side_std);
    v_ = register_parameter("v", torch::randn({n, A, d_}) * side_std);
    o_ = register_parameter("o", torch::randn({n, d_, A}) * (0.5 / std::sqrt(static_cast<double>(A))));
    gate_proj_ = register_parameter("mlp_gate", torch::randn({n, ffn_, d_}) * side_std);
    up_proj_ = register_parameter("mlp_up", torch::randn({n, ffn_, d_}) * side_std);
    down_proj_ = register_parameter("mlp_down", torch::randn({n, d_, ffn_}) * (0.5 / std::sqrt(static_cast<double>(ffn_))));
    ln1_ = register_parameter("ln_attn", torch::ones({n, d_}));
    ln2_ = register_parameter("ln_mlp", torch::ones({n, d_}));
    lnf_ = register_parameter("ln_final", torch::ones({d_}));
    up_ = register_parameter("up", torch::randn({H, d_}) * side_std);
  }

  bool needs_all_positions() const override { return true; }

  void init_from_backbone(const CausalLM& backbone) override {
    if (opts_.init != "pruned") return;
    std::map<std::string, torch::Tensor> w;
    for (const auto& p : backbone.named_parameters(/*recurse=*/true)) w[p.key()] = p.value();
    auto get = [&](const std::string& name) {
      auto it = w.find(name);
      if (it == w.end())
        throw std::runtime_error("adapter: lst init: pruned needs the backbone's weight \"" + name +
                                 "\" (Llama-family layout); this backbone lacks it: use init: random");
      return it->second.detach().to(torch::kCPU, torch::kFloat);
    };
    const auto& cf = backbone.config();
    const int64_t H = cf.hidden_size, L = cf.num_layers, nh = cf.num_heads, nkv = std::max<int64_t>(1, cf.num_kv_heads);
    auto layer = [&](int64_t i, const char* what) { return get("layers_" + std::to_string(i) + "_" + what); };
    // Hidden channels: importance summed over every layer's weights that read or write them.
    auto imp = torch::zeros({H});
    for (int64_t i = 0; i < L; ++i) {
      for (const char* in : {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}) imp += layer(i, in).abs().sum(0);
      for (const char* out : {"o_proj", "down_proj"}) imp += layer(i, out).abs().sum(1);
    }
    auto keep = top(imp, d_);  // [d] kept hidden channels
    torch::NoGradGuard ng;
    auto sel = torch::zeros({d_, H});
    sel.index_put_({torch::arange(d_), keep}, torch::ones({d_}));
    embed_down_.copy_(sel);
    lnf_.copy_(get("norm").index_select(0, keep));
    up_.copy_(sel.t());
    const int64_t group = nh / nkv, hd = head_dim_;
    for (int64_t b = 0; b + 1 < static_cast<int64_t>(layers_.size()); ++b) {
      const int64_t src = layers_[b + 1] - 1;  // the layer whose output h_l this block reads
      down_[b].copy_(sel);
      auto q = layer(src, "q_proj"), k = layer(src, "k_proj"), v = layer(src, "v_proj"), o = layer(src, "o_proj");
      auto head_imp = q.view({nh, hd, H}).abs().sum({1, 2}) + o.view({H, nh, hd}).abs().sum({0, 2});
      auto heads = top(head_imp, heads_);
      for (int64_t j = 0; j < heads_; ++j) {
        const int64_t h = heads[j].template item<int64_t>();
        const int64_t kvh = h / group;
        q_[b].narrow(0, j * hd, hd).copy_(q.narrow(0, h * hd, hd).index_select(1, keep));
        k_[b].narrow(0, j * hd, hd).copy_(k.narrow(0, kvh * hd, hd).index_select(1, keep));
        v_[b].narrow(0, j * hd, hd).copy_(v.narrow(0, kvh * hd, hd).index_select(1, keep));
        o_[b].narrow(1, j * hd, hd).copy_(o.index_select(0, keep).narrow(1, h * hd, hd));
      }
      auto g = layer(src, "gate_proj"), u = layer(src, "up_proj"), dn = layer(src, "down_proj");
      auto ffn_imp = g.abs().sum(1) + u.abs().sum(1) + dn.abs().sum(0);
      auto ch = top(ffn_imp, ffn_);
      gate_proj_[b].copy_(g.index_select(0, ch).index_select(1, keep));
      up_proj_[b].copy_(u.index_select(0, ch).index_select(1, keep));
      down_proj_[b].copy_(dn.index_select(0, keep).index_select(1, ch));
      ln1_[b].copy_(layer(src, "input_layernorm").index_select(0, keep));
      ln2_[b].copy_(layer(src, "post_attention_layernorm").index_select(0, keep));
    }
  }

  AdapterOutput forward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                        const torch::Tensor& key_mask, AdapterState* state) override {
    const auto dt = down_.scalar_type();
    const int64_t n = static_cast<int64_t>(layers_.size()) - 1;
    TORCH_CHECK(static_cast<int64_t>(inputs.size()) == n + 1,
                "LST: expected the embeddings plus ", n, " layer inputs, got ", inputs.size());
    const int64_t B = inputs[0].size(0), T = inputs[0].size(1), hd = head_dim_;
    // Keys: previous (cached) ones plus this call's, causal within the call.
    torch::Tensor km = key_mask.defined() ? key_mask.to(torch::kBool) : torch::ones({B, T}, torch::kBool);
    km = km.to(down_.device());
    if (state && state->key_mask.defined()) km = torch::cat({state->key_mask, km}, 1);
    const int64_t S = km.size(1), past = S - T;
    auto causal = torch::ones({T, S}, torch::TensorOptions().dtype(torch::kBool).device(km.device())).tril(past);
    auto mask = causal.unsqueeze(0) & km.unsqueeze(1);  // [B, T, S]
    // A fully masked row (a padding query) would give NaN; let it see itself.
    mask = mask | torch::eye(T, S, torch::TensorOptions().dtype(torch::kBool).device(km.device())).roll(past, 1).unsqueeze(0);
    mask = mask.unsqueeze(1);  // [B, 1, T, S]
    // Positions count real tokens only (left padding in decoding, right padding in training).
    auto positions = (km.to(torch::kLong).cumsum(1) - 1).clamp_min(0).narrow(1, past, T);

    torch::Tensor s = torch::matmul(inputs[0].to(dt), embed_down_.t());
    if (state && state->k.empty()) {
      state->k.resize(n);
      state->v.resize(n);
    }
    for (int64_t i = 0; i < n; ++i) {
      const auto g = torch::sigmoid(gate_[i] / temperature_);
      s = g * torch::matmul(inputs[i + 1].to(dt), down_[i].t()) + (1 - g) * s;
      auto h = rms(s, ln1_[i], eps_);
      auto q = rope(torch::matmul(h, q_[i].t()).view({B, T, heads_, hd}).transpose(1, 2), positions, theta_);
      auto k = rope(torch::matmul(h, k_[i].t()).view({B, T, heads_, hd}).transpose(1, 2), positions, theta_);
      auto v = torch::matmul(h, v_[i].t()).view({B, T, heads_, hd}).transpose(1, 2);
      if (state) {
        if (state->k[i].defined()) {
          k = torch::cat({state->k[i], k}, 2);
          v = torch::cat({state->v[i], v}, 2);
        }
        state->k[i] = k.detach();
        state->v[i] = v.detach();
      }
      auto a = at::scaled_dot_product_attention(q, k, v, mask).transpose(1, 2).reshape({B, T, heads_ * hd});
      s = s + torch::matmul(a, o_[i].t());
      auto h2 = rms(s, ln2_[i], eps_);
      s = s + torch::matmul(torch::silu(torch::matmul(h2, gate_proj_[i].t())) * torch::matmul(h2, up_proj_[i].t()),
                            down_proj_[i].t());
    }
    if (state) state->key_mask = km;
    AdapterOutput out;
    out.features = s;
    out.hidden = torch::matmul(rms(s, lnf_, eps_), up_.t());
    (void)final_normed;  // LST does not keep the backbone's output
    return out;
  }

 private:
  // Indices of the k largest entries, ascending (kept channels stay in the backbone's order).
  static torch::Tensor top(const torch::Tensor& importance, int64_t k) {
    return std::get<0>(torch::sort(std::get<1>(importance.topk(k))));
  }

  Options opts_;
  int64_t d_, heads_, head_dim_, ffn_;
  double eps_, theta_, temperature_;
  torch::Tensor embed_down_, down_, gate_, q_, k_, v_, o_, gate_proj_, up_proj_, down_proj_, ln1_, ln2_, lnf_, up_;
};

TANDEM_REGISTER(DeviceAdapter, "lst", LadderSide);

}  // namespace
}  // namespace tandem
