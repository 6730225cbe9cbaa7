// SPA side plugin (the "device" part of side-plugin adaptation). Per position it reads backbone
// hidden states and returns a shift of the backbone's final-normed state, so adapted logits =
// backbone logits + W_vocab . shift (additive logits through the frozen vocabulary projection).
//
//   parallel   (placement: parallel): z = sum over chosen layers l of gelu(D_l . unit_rms(h_l)),
//              i.e. the plugin taps the backbone layer by layer alongside it;
//   sequential (placement: sequential): z = gelu(D . unit_rms(h_L)), the final state only;
//   then z += W2 . gelu(W1 . unit_rms(z)) and shift = U . z, with U = 0 at start, so an untrained
//   plugin leaves the backbone's output exactly unchanged.
//
// Per-position by design: no attention, so training needs backbone states only at the target
// positions, and decoding needs no plugin cache.
#include <cmath>

#include "tandem/peft/adapter.h"

namespace tandem {
namespace {

class SidePlugin : public DeviceAdapter {
 public:
  using Options = SidePluginOptions;

  SidePlugin(const Config& c, const ModelConfig& m) {
    const Options o = Options::from_config(c);
    const int64_t H = m.hidden_size;
    rank_ = o.rank;
    const int64_t hidden = o.mlp_hidden > 0 ? o.mlp_hidden : 4 * rank_;
    if (o.placement == "parallel") {
      layers_ = o.read.resolve(m.num_layers, c);
    } else {
      for (const char* k : {"layers", "every"})
        if (c.has(k)) c.fail(k, std::string("no ") + k + " with placement: sequential (it reads the final state only)");
      layers_ = {m.num_layers};
    }
    const double in_std = 1.0 / std::sqrt(static_cast<double>(H));
    down_ = register_parameter("down", torch::randn({static_cast<int64_t>(layers_.size()), rank_, H}) * in_std);
    w1_ = register_parameter("mlp_in", torch::randn({hidden, rank_}) / std::sqrt(static_cast<double>(rank_)));
    w2_ = register_parameter("mlp_out", torch::zeros({rank_, hidden}));
    up_ = register_parameter("up", torch::zeros({H, rank_}));
  }

  bool needs_all_positions() const override { return false; }

  AdapterOutput forward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                        const torch::Tensor&, AdapterState*) override {
    TORCH_CHECK(inputs.size() == layers_.size(), "side plugin: expected ", layers_.size(), " layer inputs, got ",
                inputs.size());
    const auto dt = down_.scalar_type();
    torch::Tensor z;
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto t = torch::gelu(torch::matmul(unit_rms(inputs[i].to(dt)), down_[static_cast<int64_t>(i)].t()));
      z = z.defined() ? z + t : t;
    }
    z = z + torch::matmul(torch::gelu(torch::matmul(unit_rms(z), w1_.t())), w2_.t());
    AdapterOutput out;
    out.features = z;
    out.hidden = final_normed.to(dt) + torch::matmul(z, up_.t());
    out.shift_coeff = z;
    out.shift_basis = up_;
    return out;
  }

 private:
  int64_t rank_;
  torch::Tensor down_, w1_, w2_, up_;
};

TANDEM_REGISTER(DeviceAdapter, "spa", SidePlugin);

}  // namespace
}  // namespace tandem
