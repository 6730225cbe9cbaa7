// Data partitioners: which training examples each federated client holds, picked by
// `partition.type` (dirichlet non-IID, iid, centralized).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"

namespace tandem::fed {

class Partitioner {
 public:
  static constexpr const char* kRegistryKind = "fed.partitioner";
  using Factory = std::unique_ptr<Partitioner>(const Config&);
  virtual ~Partitioner() = default;
  /// Example indices per client from per-example labels and domains; deterministic in `seed`.
  virtual std::vector<std::vector<int64_t>> split(const std::vector<int64_t>& labels,
                                                  const std::vector<std::string>& domains, uint64_t seed) const = 0;
};

/// Per-client counts (examples, labels, domains, the largest label's share) as JSON.
nlohmann::json describe_partition(const std::vector<std::vector<int64_t>>& parts, const std::vector<int64_t>& labels,
                                  const std::vector<std::string>& domains);

}  // namespace tandem::fed

namespace tandem {
TANDEM_DECLARE_REGISTRY(fed::Partitioner);
}  // namespace tandem

namespace tandem::fed {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct DirichletOptions {
  int64_t clients = 10, min_examples = 10;
  double alpha = 0.5;
  std::string by = "label";
  template <class V>
  void visit(V& v) {
    v.field("clients", clients, "number of clients", Positive{});
    v.field("alpha", alpha, "Dirichlet concentration: small alpha gives each client few groups", Positive{});
    v.field("by", by, "what the shares are drawn over", OneOf{{"label", "domain", "label_domain"}});
    v.field("min_examples", min_examples, "redraw (up to 100 times) until every client holds this many", NonNegative{});
  }
  TANDEM_OPTIONS(DirichletOptions)
};

struct IidOptions {
  int64_t clients = 10;
  template <class V>
  void visit(V& v) {
    v.field("clients", clients, "number of clients", Positive{});
  }
  TANDEM_OPTIONS(IidOptions)
};

}  // namespace tandem::fed
