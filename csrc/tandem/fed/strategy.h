// Server aggregation strategies, picked by `strategy.type` (one small interface, as Flower's):
//   fedavg   weighted mean of client states by their example counts (McMahan et al., 2017)
//   fedprox  fedavg on the server; clients add (mu/2)||w - w_global||^2 (Li et al., 2020)
//   fedins   pool tensors ("pool", "keys") merged per entry, weighted by each client's example
//            count or by how many of its instances chose the entry; the rest as fedavg
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"

namespace tandem::fed {

/// What one client sends back after its local round.
struct ClientUpdate {
  int64_t client = -1;
  int64_t num_examples = 0;
  std::vector<torch::Tensor> state;  ///< same order as the model's named_parameters()
  torch::Tensor usage;               ///< [M] int64 pool-entry choices during training, or undefined
  double loss = 0;                   ///< mean training loss over the local steps
  bool ok = false;
  bool sent = true;                  ///< the global state reached the client (false: known gone)
  std::string error;                 ///< why the update did not arrive (when !ok)
};

/// What the server knows of the state's tensors (in named_parameters() order).
struct StateLayout {
  std::vector<std::string> names;  ///< for messages and checkpoints
  std::vector<bool> entry_rows;    ///< rows are pool entries (FedIns merges them per entry)
};

class Strategy {
 public:
  static constexpr const char* kRegistryKind = "fed.strategy";
  using Factory = std::unique_ptr<Strategy>(const Config&);
  virtual ~Strategy() = default;
  /// Clients add (mu/2)||w - w_global||^2 to their loss when > 0.
  virtual double proximal_mu() const { return 0.0; }
  /// The next global state from `global` and the updates that arrived (at least one, all ok).
  virtual std::vector<torch::Tensor> aggregate(const StateLayout& layout, const std::vector<torch::Tensor>& global,
                                               const std::vector<const ClientUpdate*>& updates) const = 0;
};

/// Weighted mean over clients of tensor `i` (weights by example count), accumulated in client order.
torch::Tensor weighted_mean(const std::vector<const ClientUpdate*>& updates, size_t i);

}  // namespace tandem::fed

namespace tandem {
TANDEM_DECLARE_REGISTRY(fed::Strategy);
}  // namespace tandem

namespace tandem::fed {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct FedProxOptions {
  double mu = 0.01;
  template <class V>
  void visit(V& v) {
    v.field("mu", mu, "weight of the proximal term mu/2 |w - w_global|^2 in each client's loss", Positive{});
  }
  TANDEM_OPTIONS(FedProxOptions)
};

struct FedInsOptions {
  std::string entry_weight = "data_size";
  template <class V>
  void visit(V& v) {
    v.field("entry_weight", entry_weight, "how clients' copies of a pool entry are weighted in the merge",
            OneOf{{"data_size", "usage"}});
  }
  TANDEM_OPTIONS(FedInsOptions)
};

}  // namespace tandem::fed
