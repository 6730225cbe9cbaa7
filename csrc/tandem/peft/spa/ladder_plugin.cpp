// SPA plugin as the SPA authors' published code builds it (`adapter: {type: spa_ladder}`): a
// per-position ladder of width w (32 there) fed by the embeddings and every backbone layer,
//     s_0 = P_in h_0,
//     s_i = s_{i-1} + B_i relu(A_i s_{i-1}) + D_i h_{l_i}      (one rung per layer read),
//     hidden = P_out s_n,
// whose output REPLACES the backbone's final-normed state before the frozen LM head (tandem's
// own `spa` plugin instead ADDS a low-rank shift to it, so an untrained plugin is the backbone).
// Differences from the authors' code, on purpose: the backbone states enter RMS-normalised
// (x / rms(x), no weights) because the residual stream's scale grows ~100x with depth in the small
// backbones here and raw states made training diverge; P_out starts random (not zero) because a
// zero output would be a uniform next-token distribution. Per position: no attention, so
// training needs states only at target positions, and decoding needs no plugin cache.
#include <cmath>

#include "tandem/peft/adapter.h"

namespace tandem {
namespace {

class LadderPlugin : public DeviceAdapter {
 public:
  using Options = SpaLadderOptions;

  LadderPlugin(const Config& c, const ModelConfig& m) {
    const Options o = Options::from_config(c);
    const int64_t H = m.hidden_size, w = o.width, b = o.bottleneck;
    const auto chosen = o.read.resolve(m.num_layers, c);
    layers_ = {0};  // the embeddings start the ladder
    for (int64_t l : chosen)
      if (l != 0) layers_.push_back(l);
    const int64_t n = static_cast<int64_t>(layers_.size()) - 1;
    const double in_std = 1.0 / std::sqrt(static_cast<double>(H)), w_std = 1.0 / std::sqrt(static_cast<double>(w));
    // Each of the n rungs adds a down-projection: scaled by 1/sqrt(n), the side state (and so the
    // replaced final state) starts at unit scale, like a final-normed state.
    in_ = register_parameter("in", torch::randn({w, H}) * in_std);
    down_ = register_parameter("down", torch::randn({n, w, H}) * (in_std / std::sqrt(static_cast<double>(std::max<int64_t>(1, n)))));
    a_ = register_parameter("rung_in", torch::randn({n, b, w}) * w_std);
    b_ = register_parameter("rung_out", torch::zeros({n, w, b}));
    out_ = register_parameter("out", torch::randn({H, w}) * w_std);
  }

  bool needs_all_positions() const override { return false; }

  AdapterOutput forward(const std::vector<torch::Tensor>& inputs, const torch::Tensor&, const torch::Tensor&,
                        AdapterState*) override {
    TORCH_CHECK(inputs.size() == layers_.size(), "spa_ladder: expected ", layers_.size(), " inputs, got ", inputs.size());
    const auto dt = in_.scalar_type();
    torch::Tensor s = torch::matmul(unit_rms(inputs[0].to(dt)), in_.t());
    for (int64_t i = 0; i + 1 < static_cast<int64_t>(inputs.size()); ++i) {
      s = s + torch::matmul(torch::relu(torch::matmul(s, a_[i].t())), b_[i].t()) +
          torch::matmul(unit_rms(inputs[i + 1].to(dt)), down_[i].t());
    }
    AdapterOutput o;
    o.features = s;
    o.hidden = torch::matmul(s, out_.t());
    return o;
  }

 private:
  torch::Tensor in_, down_, a_, b_, out_;
};

TANDEM_REGISTER(DeviceAdapter, "spa_ladder", LadderPlugin);

}  // namespace
}  // namespace tandem
