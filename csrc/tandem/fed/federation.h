// Federation: the data, clients, model and strategy of one federated run, and the server's round
// loop. The loop talks to clients only through a Transport, so the same loop drives the
// in-process simulation and real multi-process federation (torch.distributed, from Python).
//
// Determinism: the initial model comes from the seed; client sampling from (seed, round);
// a client's batches from (seed, round, client). So any runtime, and a resumed server,
// reproduce the same global model.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/runtime.h"
#include "tandem/fed/fed_data.h"
#include "tandem/fed/fed_model.h"
#include "tandem/fed/partition.h"
#include "tandem/fed/strategy.h"

namespace tandem::fed {

/// `fed:` the federated schedule and each client's local training.
struct FedSettings {
  std::string method = "federated";
  int64_t rounds = 20, clients_per_round = 5, local_steps = 10, batch_size = 32, eval_every = 1;
  double lr = 1e-3, weight_decay = 0.0, momentum = 0.0;
  std::string optimizer = "adamw";
  uint64_t seed = 0;  ///< the run's seed (not a key of this section)
  template <class V>
  void visit(V& v) {
    v.field("method", method, "federated rounds, or local_only (each client alone, never aggregated)",
            OneOf{{"federated", "local_only"}});
    v.field("rounds", rounds, "communication rounds", Positive{});
    v.field("clients_per_round", clients_per_round, "clients sampled each round", Positive{});
    v.field("local_steps", local_steps, "optimiser steps of each client per round", Positive{});
    v.field("batch_size", batch_size, "examples per local step", Positive{});
    v.field("eval_every", eval_every, "rounds between test evaluations", Positive{});
    v.field("lr", lr, "local learning rate", Positive{});
    v.field("weight_decay", weight_decay, "local weight decay", Range{0.0, 1.0});
    v.field("optimizer", optimizer, "local optimiser, fresh every round", OneOf{{"adamw", "sgd"}});
    v.field("momentum", momentum, "SGD momentum", Range{0.0, 0.999});
  }
  void check(const Config& c) const {
    if (optimizer != "sgd" && momentum != 0.0) c.fail("momentum", "no momentum with optimizer " + optimizer + " (SGD only)");
  }
  TANDEM_OPTIONS(FedSettings)
};

/// Sends `global` to `clients` for round `round`, returns one update per client (ok or not).
using Transport = std::function<std::vector<ClientUpdate>(int64_t round, const std::vector<int64_t>& clients,
                                                          const std::vector<torch::Tensor>& global)>;

/// One row of the round log.
struct RoundRecord {
  int64_t round = 0, clients_sampled = 0, clients_ok = 0, bytes_up = 0, bytes_down = 0;
  double train_loss = 0, accuracy = -1, seconds = 0;  ///< accuracy -1 = not evaluated this round
  std::vector<std::string> dropped;                   ///< "client 3: <error>"
};

class Federation {
 public:
  /// Reads sections backbone, data, partition, model, strategy and fed of `root`.
  Federation(const Config& root, const RuntimeOptions& rt);

  int64_t num_clients() const { return static_cast<int64_t>(parts_.size()); }
  int64_t num_classes() const { return static_cast<int64_t>(labels_.size()); }
  const std::vector<std::string>& labels() const { return labels_; }
  const FedSettings& settings() const { return s_; }
  const std::vector<std::vector<int64_t>>& partition() const { return parts_; }
  nlohmann::json describe() const;

  /// Clients sampled in `round` (sorted), a function of (seed, round) only.
  std::vector<int64_t> sample_clients(int64_t round) const;
  std::vector<std::string> state_names() const;
  std::vector<torch::Tensor> global_state() const;
  void set_global_state(const std::vector<torch::Tensor>& state);
  /// Back to the seeded initial model (local-only runs start every client from it).
  void reset_global();
  int64_t state_bytes() const;

  /// A client's local round: load `global`, train local_steps, return the new state.
  ClientUpdate train_client(int64_t client, int64_t round, const std::vector<torch::Tensor>& global);
  /// The server's merge of the updates that arrived (skips failed ones).
  void aggregate(const std::vector<ClientUpdate>& updates);
  /// Accuracy of the global model on the test split (instance-adaptive for pool models).
  double evaluate();
  /// The pool entries each test instance picks [N, k] (FedIns) and its instance SSF [N, P].
  torch::Tensor test_choices(int64_t limit);

  /// The in-process transport: every client trains in this process, in order.
  Transport simulation_transport();
  /// The round loop. With `checkpoint_dir`, the global state and log are saved atomically after
  /// every round and a later call resumes after the last saved round. `only_clients` (non-empty)
  /// replaces sampling (local-only training of one client).
  std::vector<RoundRecord> run(const Transport& transport, const std::string& checkpoint_dir = "",
                               const std::vector<int64_t>& only_clients = {},
                               const std::function<void(const RoundRecord&)>& on_round = {});

  FedModel& model() { return *model_; }
  Backbone& backbone() { return *backbone_; }
  const FeatureSet& test_set() const { return test_; }
  const FeatureSet& train_set() const { return train_; }

 private:
  RuntimeOptions rt_;
  FedSettings s_;
  std::string identity_yaml_;  // the config sections that determine the run (checked on resume)
  std::unique_ptr<Backbone> backbone_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<Config> model_cfg_;
  std::string model_type_;
  std::shared_ptr<FedModel> model_;     // the global model
  std::shared_ptr<FedModel> worker_;    // a client's working copy
  std::vector<torch::Tensor> initial_;
  std::vector<std::string> labels_;
  FeatureSet train_, test_;
  std::vector<std::vector<int64_t>> parts_;
  nlohmann::json partition_info_;
};

std::vector<torch::Tensor> state_of(FedModel& m);
void load_state(FedModel& m, const std::vector<torch::Tensor>& state);

}  // namespace tandem::fed
