// The "federated" experiment (FedIns and its baselines): one method per config.
//   fed.method: federated   server rounds over sampled clients (FedAvg, FedProx, FedIns by
//                           strategy.type and model.type), in-process simulation
//               local_only  every client trains alone for the same rounds; accuracy averaged
// Writes rounds.{csv,md} (accuracy and bytes per round), federation.json (partition and sizes),
// pool_choices.json (FedIns: which entries test instances pick) and the summary table.
#include <numeric>

#include "tandem/experiments/experiment.h"
#include "tandem/experiments/federated.h"
#include "tandem/fed/federation.h"

namespace tandem {
namespace {

class Federated : public Experiment {
 public:
  using Options = FederatedOptions;

  Federated(const Config& root, const RuntimeOptions& rt)
      : fed_(root, rt),
        method_(fed::FedSettings::from_config(root.at("fed")).method),
        name_(root.at("experiment").get<std::string>("name", "federated")) {}

  ExperimentResult run(RunContext& ctx) override {
    ctx.write_artifact("federation.json", fed_.describe().dump(2));
    ctx.info("federation: " + std::to_string(fed_.num_clients()) + " clients, " + std::to_string(fed_.num_classes()) +
             " classes, " + std::to_string(fed_.model().num_trainable()) + " trainable parameters per client");
    std::vector<fed::RoundRecord> log;
    if (method_ == "local_only") {
      // Each client alone from the same initial model; round r's accuracy is the clients' mean.
      std::vector<std::vector<fed::RoundRecord>> per;
      for (int64_t c = 0; c < fed_.num_clients(); ++c) {
        fed_.reset_global();
        per.push_back(fed_.run(fed_.simulation_transport(), "", {c}));
      }
      log = per[0];
      for (size_t r = 0; r < log.size(); ++r) {
        double acc = 0, loss = 0, secs = 0;
        for (const auto& p : per) {
          acc += p[r].accuracy;
          loss += p[r].train_loss;
          secs += p[r].seconds;
        }
        log[r].accuracy = log[r].accuracy < 0 ? -1 : acc / static_cast<double>(per.size());
        log[r].train_loss = loss / static_cast<double>(per.size());
        log[r].seconds = secs;
        log[r].bytes_up = log[r].bytes_down = 0;  // nothing leaves a client
        log[r].clients_sampled = log[r].clients_ok = fed_.num_clients();
      }
    } else {
      log = fed_.run(fed_.simulation_transport(), ctx.path("server"));
    }

    Table rounds({"round", "accuracy", "train_loss", "clients_ok", "clients_sampled", "bytes_up", "bytes_down", "seconds"});
    int64_t up = 0, down = 0;
    double best = 0, secs = 0;
    std::vector<std::string> dropped;
    for (const auto& r : log) {
      rounds.add_row({r.round, r.accuracy, r.train_loss, r.clients_ok, r.clients_sampled, r.bytes_up, r.bytes_down, r.seconds});
      up += r.bytes_up;
      down += r.bytes_down;
      best = std::max(best, r.accuracy);
      secs += r.seconds;
      for (const auto& d : r.dropped) dropped.push_back("round " + std::to_string(r.round) + ", " + d);
    }
    ctx.write_table("rounds", rounds);
    write_pool_choices(ctx);

    const auto& s = fed_.settings();
    const double per_round = log.empty() ? 0.0 : static_cast<double>(up + down) / static_cast<double>(log.size());
    // Full fine-tuning would ship every encoder weight and the head, both ways, per sampled client.
    const int64_t full_state = (fed_.backbone().encoder_parameters() + (fed_.backbone().hidden() + 1) * fed_.num_classes()) * 4;
    const double full_per_round = 2.0 * static_cast<double>(full_state) * static_cast<double>(s.clients_per_round);
    ExperimentResult res;
    const double final_acc = log.empty() ? 0.0 : log.back().accuracy;
    res.metrics = {{"accuracy", final_acc},
                   {"best_accuracy", best},
                   {"rounds", log.size()},
                   {"bytes_up_total", up},
                   {"bytes_down_total", down},
                   {"bytes_per_round", per_round},
                   {"state_bytes", fed_.state_bytes()},
                   {"full_finetune_bytes_per_round", full_per_round},
                   {"comm_vs_full_finetune", method_ == "local_only" ? 0.0 : per_round / full_per_round},
                   {"trainable_parameters", fed_.model().num_trainable()},
                   {"train_seconds", secs},
                   {"seconds_per_round", log.empty() ? 0.0 : secs / static_cast<double>(log.size())},
                   {"dropped", dropped}};
    res.table = Table({"method", "accuracy", "best_accuracy", "bytes_per_round", "total_bytes", "comm_vs_full_ft"});
    res.table.add_row({name_, final_acc, best, per_round, up + down,
                       method_ == "local_only" ? 0.0 : per_round / full_per_round});
    return res;
  }

 private:
  void write_pool_choices(RunContext& ctx) {
    if (fed_.model().pool_size() <= 1) return;
    const int64_t M = fed_.model().pool_size();
    auto chosen = fed_.test_choices(fed_.test_set().size()).to(torch::kCPU);
    auto counts = torch::bincount(chosen.reshape(-1), {}, M);
    nlohmann::json j = {{"pool_size", M}, {"entry_use_on_test", std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + M)}};
    nlohmann::json rows = nlohmann::json::array();
    const auto labels = fed_.test_set().label.to(torch::kCPU);
    for (int64_t i = 0; i < std::min<int64_t>(50, chosen.size(0)); ++i) {
      auto c = chosen[i].contiguous();
      rows.push_back({{"test_index", i},
                      {"label", fed_.labels()[static_cast<size_t>(labels[i].item<int64_t>())]},
                      {"domain", fed_.test_set().domain[static_cast<size_t>(i)]},
                      {"entries", std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel())}});
    }
    j["instances"] = rows;
    ctx.write_artifact("pool_choices.json", j.dump(1));
  }

  fed::Federation fed_;
  std::string method_, name_;
};
TANDEM_REGISTER(Experiment, "federated", Federated);

}  // namespace
}  // namespace tandem
