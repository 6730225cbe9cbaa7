#include "tandem/fed/strategy.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(fed::Strategy);
}

namespace tandem::fed {

torch::Tensor weighted_mean(const std::vector<const ClientUpdate*>& updates, size_t i) {
  double total = 0;
  for (const auto* u : updates) total += static_cast<double>(u->num_examples);
  torch::Tensor acc;
  for (const auto* u : updates) {
    auto term = u->state.at(i) * (static_cast<double>(u->num_examples) / total);
    acc = acc.defined() ? acc + term : term;
  }
  return acc;
}

namespace {

class FedAvg : public Strategy {
 public:
  using Options = NoOptions;
  explicit FedAvg(const Config&) {}
  std::vector<torch::Tensor> aggregate(const StateLayout& layout, const std::vector<torch::Tensor>&,
                                       const std::vector<const ClientUpdate*>& ups) const override {
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < layout.names.size(); ++i) out.push_back(weighted_mean(ups, i));
    return out;
  }
};
TANDEM_REGISTER(Strategy, "fedavg", FedAvg);

class FedProx : public FedAvg {
 public:
  using Options = FedProxOptions;
  explicit FedProx(const Config& cfg) : FedAvg(cfg), mu_(Options::from_config(cfg).mu) {}
  double proximal_mu() const override { return mu_; }

 private:
  double mu_;
};
TANDEM_REGISTER(Strategy, "fedprox", FedProx);

class FedInsPool : public Strategy {
 public:
  using Options = FedInsOptions;
  explicit FedInsPool(const Config& cfg) : by_usage_(Options::from_config(cfg).entry_weight == "usage") {}

  std::vector<torch::Tensor> aggregate(const StateLayout& layout, const std::vector<torch::Tensor>& global,
                                       const std::vector<const ClientUpdate*>& ups) const override {
    std::vector<torch::Tensor> out;
    for (size_t i = 0; i < layout.names.size(); ++i) {
      const bool per_entry = by_usage_ && layout.entry_rows.at(i);
      if (!per_entry) {
        out.push_back(weighted_mean(ups, i));
        continue;
      }
      // Entry m of client c weighs usage[c][m]; an entry nobody chose keeps its global value.
      const auto& g = global[i];
      auto num = torch::zeros_like(g);
      auto den = torch::zeros({g.size(0)}, g.options());
      for (const auto* u : ups) {
        TORCH_CHECK(u->usage.defined() && u->usage.numel() == g.size(0), "fedins: client ", u->client,
                    " sent no pool usage of ", g.size(0), " entries");
        auto w = u->usage.to(g.options());
        num += u->state.at(i) * w.unsqueeze(1);
        den += w;
      }
      auto used = (den > 0).unsqueeze(1);
      out.push_back(torch::where(used, num / den.clamp_min(1).unsqueeze(1), g));
    }
    return out;
  }

 private:
  bool by_usage_;
};
TANDEM_REGISTER(Strategy, "fedins", FedInsPool);

}  // namespace
}  // namespace tandem::fed
