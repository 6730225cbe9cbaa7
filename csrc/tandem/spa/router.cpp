#include "tandem/spa/router.h"

#include <cmath>

#include "tandem/peft/adapter.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(Router);

torch::Tensor distribution_features(const torch::Tensor& backbone_logits, const torch::Tensor& adapted_logits) {
  const auto lb = torch::log_softmax(backbone_logits.to(torch::kFloat), -1);
  const auto la = torch::log_softmax(adapted_logits.to(torch::kFloat), -1);
  const auto pb = lb.exp(), pa = la.exp();
  const auto hb = -(pb * lb).sum(-1), ha = -(pa * la).sum(-1);
  const auto kl = (pa * (la - lb)).sum(-1);
  const auto [max_b, top_b] = pb.max(-1, true);
  const auto [max_a, top_a] = pa.max(-1, true);
  // Where the two argmaxes agree, greedy decoding does not care which is used: agreement and
  // each distribution's probability of the other's pick tell the router where it matters.
  const auto agree = (top_a == top_b).to(torch::kFloat).squeeze(-1);
  const auto pb_of_a = pb.gather(-1, top_a).squeeze(-1), pa_of_b = pa.gather(-1, top_b).squeeze(-1);
  return torch::stack({hb, ha, max_b.squeeze(-1), max_a.squeeze(-1), kl, agree, pb_of_a, pa_of_b}, -1);
}

torch::Tensor router_labels(const torch::Tensor& backbone_logits, const torch::Tensor& adapted_logits,
                            const torch::Tensor& gold) {
  const auto g = gold.to(torch::kLong).unsqueeze(-1);
  const auto lb = torch::log_softmax(backbone_logits.to(torch::kFloat), -1).gather(-1, g).squeeze(-1);
  const auto la = torch::log_softmax(adapted_logits.to(torch::kFloat), -1).gather(-1, g).squeeze(-1);
  return (la > lb).to(torch::kFloat);
}

namespace {

// A two-layer MLP over [unit_rms(backbone state), unit_rms(adapter state), scalar features].
class MlpRouter : public Router {
 public:
  using Options = MlpRouterOptions;

  MlpRouter(const Config& c, const RouterDims& d) {
    const Options o = Options::from_config(c);
    threshold = o.threshold;
    const int64_t hidden = o.hidden;
    const int64_t in = d.hidden + d.features + kDistributionFeatures;
    w1_ = register_parameter("w1", torch::randn({hidden, in}) / std::sqrt(static_cast<double>(in)));
    b1_ = register_parameter("b1", torch::zeros({hidden}));
    w2_ = register_parameter("w2", torch::randn({1, hidden}) / std::sqrt(static_cast<double>(hidden)));
    b2_ = register_parameter("b2", torch::zeros({1}));
  }
  torch::Tensor prob(const torch::Tensor& state, const torch::Tensor& feats, const torch::Tensor& dist) override {
    return torch::sigmoid(logit(state, feats, dist));
  }
  torch::Tensor logit(const torch::Tensor& state, const torch::Tensor& feats, const torch::Tensor& dist) {
    const auto dt = w1_.scalar_type();
    // Entropies and KL are in nats (0..~11 for a 50k vocabulary): log1p keeps them O(1).
    const auto x = torch::cat({unit_rms(state.to(dt)), unit_rms(feats.to(dt)), torch::log1p(dist.to(dt).clamp_min(0))}, -1);
    return (torch::matmul(torch::gelu(torch::matmul(x, w1_.t()) + b1_), w2_.t()) + b2_).squeeze(-1);
  }
  bool trainable() const override { return true; }

 private:
  torch::Tensor w1_, b1_, w2_, b2_;
};

// Fixed policies: the ablation rows ("SPA without router" = always; "backbone only" = never).
class ConstantRouter : public Router {
 public:
  ConstantRouter(const Config&, const RouterDims&, double p) : p_(p) {}
  torch::Tensor prob(const torch::Tensor& state, const torch::Tensor&, const torch::Tensor&) override {
    return torch::full(state.sizes().slice(0, state.dim() - 1), p_, state.options().dtype(torch::kFloat));
  }

 private:
  double p_;
};
struct AlwaysAdapter : ConstantRouter {
  using Options = NoOptions;
  AlwaysAdapter(const Config& c, const RouterDims& d) : ConstantRouter(c, d, 1.0) {}
};
struct NeverAdapter : ConstantRouter {
  using Options = NoOptions;
  NeverAdapter(const Config& c, const RouterDims& d) : ConstantRouter(c, d, 0.0) {}
};

TANDEM_REGISTER(Router, "mlp", MlpRouter);
TANDEM_REGISTER(Router, "always", AlwaysAdapter);
TANDEM_REGISTER(Router, "never", NeverAdapter);

}  // namespace
}  // namespace tandem
