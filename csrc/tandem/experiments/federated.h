// The `federated` recipe's options (FedIns and its baselines).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/core/options.h"
#include "tandem/fed/fed_data.h"
#include "tandem/fed/fed_model.h"
#include "tandem/fed/federation.h"
#include "tandem/fed/partition.h"
#include "tandem/fed/strategy.h"

namespace tandem {

struct FederatedOptions {
  fed::BackboneOptions model;
  fed::FedSettings fed;
  template <class V>
  void visit(V& v) {
    v.section("model", model, "the frozen encoder and its SSF sites");
    v.template component<fed::FedDataset>("data", "the labelled texts");
    v.template component<fed::Partitioner>("partition", "how training examples are dealt to clients");
    v.template component<fed::FedModel>("head", "what each client trains: SSF + classifier head, or an SSF pool");
    v.template component<fed::Strategy>("strategy", "how the server merges client updates");
    v.section("fed", fed, "rounds and local training");
  }
  TANDEM_OPTIONS(FederatedOptions)
};

}  // namespace tandem
