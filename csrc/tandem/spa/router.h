// Routing classifier (SPA's on-device router): at each generation step it decides whether the
// next token comes from the backbone's distribution or the adapted one. Features: the backbone's
// final-normed state, the adapter's state, both distributions' entropies and top probabilities,
// and KL(adapted || backbone). Labels: whether the adapted distribution gives the gold next
// token the higher probability. Registered: `router: {type: mlp | always | never}`.
#pragma once

#include <memory>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"

namespace tandem {

/// Number of scalar features distribution_features returns.
constexpr int64_t kDistributionFeatures = 8;

/// Scalar features of a pair of next-token distributions, [..., 8]: entropy of each, top
/// probability of each, KL(adapted || backbone), whether the two argmaxes agree, the backbone's
/// probability of the adapted argmax and the adapted probability of the backbone's argmax.
/// Inputs are logits [..., V].
torch::Tensor distribution_features(const torch::Tensor& backbone_logits, const torch::Tensor& adapted_logits);

/// Router labels: 1 where log p_adapted(gold) > log p_backbone(gold). Logits [N, V], gold [N].
torch::Tensor router_labels(const torch::Tensor& backbone_logits, const torch::Tensor& adapted_logits,
                            const torch::Tensor& gold);

struct RouterDims {
  int64_t hidden = 0;    ///< backbone hidden size
  int64_t features = 0;  ///< adapter feature size
};

class Router : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "spa.router";
  using Factory = std::unique_ptr<Router>(const Config&, const RouterDims&);
  ~Router() override = default;
  /// Probability that the adapted distribution should be used, [...]; inputs [..., H],
  /// [..., F], [..., kDistributionFeatures].
  virtual torch::Tensor prob(const torch::Tensor& backbone_state, const torch::Tensor& adapter_features,
                             const torch::Tensor& dist_features) = 0;
  /// Whether the router has parameters to train.
  virtual bool trainable() const { return false; }
  /// Use the adapter where prob >= threshold.
  double threshold = 0.5;
};

TANDEM_DECLARE_REGISTRY(Router);

}  // namespace tandem

namespace tandem {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct MlpRouterOptions {
  double threshold = 0.5;
  int64_t hidden = 64;
  template <class V>
  void visit(V& v) {
    v.field("threshold", threshold, "use the adapted logits where the predicted probability reaches this", Range{0.0, 1.0});
    v.field("hidden", hidden, "hidden width of the MLP", Range{1, 1 << 16});
  }
  TANDEM_OPTIONS(MlpRouterOptions)
};

}  // namespace tandem
