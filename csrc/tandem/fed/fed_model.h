// The trainable part of a federated model on a frozen encoder, picked by `head.type`:
//   ssf_head  one SSF parameter set + a linear head (the FedAvg / FedProx baselines)
//   ssf_pool  FedIns: a pool of M SSF sets with keys; each instance averages its top-k
//             entries by cosine(query, key) into its own SSF, plus the shared head.
// named_parameters() order is the wire format: clients and server exchange exactly these.
#pragma once

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/fed/fed_data.h"
#include "tandem/peft/ssf.h"

namespace tandem::fed {

struct FedOutput {
  torch::Tensor logits;    ///< [B, classes]
  torch::Tensor aux_loss;  ///< scalar added to cross-entropy (FedIns' matching term), or undefined
  torch::Tensor usage;     ///< [M] int64: how many instances selected each pool entry, or undefined
  double ce_weight = 1.0;  ///< loss = ce_weight * cross-entropy + aux_loss
};

class FedModel : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "fed.model";
  using Factory = std::unique_ptr<FedModel>(const Config&, const SsfLayout&, int64_t, int64_t);
  /// Runs the SSF-carrying top of `enc` on a batch of cached features.
  virtual FedOutput forward(Encoder& enc, const FeatureSet& batch) = 0;
  /// Rows in the pool (1 for a single SSF set).
  virtual int64_t pool_size() const { return 1; }
  /// Per tensor of named_parameters(): whether its rows are pool entries (merged per entry by
  /// FedIns' usage weighting). The server's strategy receives this layout with the states.
  virtual std::vector<bool> entry_rows() { return std::vector<bool>(named_parameters().size(), false); }
  /// The instance-specific SSF of each example [B, P] (for inspection; ssf_head repeats its one set).
  virtual torch::Tensor instance_ssf(const torch::Tensor& query, torch::Tensor* chosen = nullptr) = 0;
  int64_t num_trainable() const;
};

/// Factory arguments: model config, SSF layout, encoder width, number of classes.

}  // namespace tandem::fed

namespace tandem {
TANDEM_DECLARE_REGISTRY(fed::FedModel);
}  // namespace tandem

namespace tandem::fed {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct SsfPoolOptions {
  int64_t pool_size = 25, top_k = 3;
  double match_weight = 0.1;
  template <class V>
  void visit(V& v) {
    v.field("pool_size", pool_size, "SSF entries in the pool", Range{1, 4096});
    v.field("top_k", top_k, "entries each instance averages (by key similarity)", Positive{});
    v.field("match_weight", match_weight, "weight of the key-matching loss", Range{0.0, 1.0});
  }
  TANDEM_OPTIONS(SsfPoolOptions)
};

}  // namespace tandem::fed
