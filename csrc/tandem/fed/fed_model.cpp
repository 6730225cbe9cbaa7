#include "tandem/fed/fed_model.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(fed::FedModel);
}

namespace tandem::fed {
namespace F = torch::nn::functional;

int64_t FedModel::num_trainable() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

namespace {

torch::Tensor classify(Encoder& enc, const SsfLayout& layout, const FeatureSet& b, const torch::Tensor& ssf,
                       torch::nn::Linear& head) {
  auto top = enc.run_layers(b.lower, b.mask, layout.first_layer, enc.config().num_layers, layout.hook(ssf));
  return head(enc.pool(top, b.mask));
}

class SsfHead : public FedModel {
 public:
  using Options = NoOptions;
  SsfHead(const Config& cfg, const SsfLayout& layout, int64_t hidden, int64_t classes) : layout_(layout) {
    ssf_ = register_parameter("ssf", layout_.identity());
    head_ = register_module("head", torch::nn::Linear(hidden, classes));
  }
  FedOutput forward(Encoder& enc, const FeatureSet& b) override { return {classify(enc, layout_, b, ssf_, head_), {}, {}, 1.0}; }
  torch::Tensor instance_ssf(const torch::Tensor& query, torch::Tensor* chosen) override {
    if (chosen) *chosen = torch::zeros({query.size(0), 1}, torch::kLong);
    return ssf_.detach().unsqueeze(0).expand({query.size(0), layout_.size});
  }

 private:
  SsfLayout layout_;
  torch::Tensor ssf_;
  torch::nn::Linear head_{nullptr};
};
TANDEM_REGISTER(FedModel, "ssf_head", SsfHead);

class SsfPool : public FedModel {
 public:
  using Options = SsfPoolOptions;
  SsfPool(const Config& cfg, const SsfLayout& layout, int64_t hidden, int64_t classes)
      : SsfPool(Options::from_config(cfg), cfg, layout, hidden, classes) {}
  SsfPool(const Options& o, const Config& cfg, const SsfLayout& layout, int64_t hidden, int64_t classes)
      : layout_(layout), m_(o.pool_size), k_(o.top_k), w_(o.match_weight) {
    if (k_ > m_) throw std::invalid_argument(cfg.where("top_k") + ": " + std::to_string(k_) + " exceeds pool_size " + std::to_string(m_));
    // Every entry starts as the identity; the keys, uniform in [-1, 1], make the first choices.
    pool_ = register_parameter("pool", layout_.identity().unsqueeze(0).repeat({m_, 1}));
    keys_ = register_parameter("keys", torch::rand({m_, hidden}) * 2 - 1);
    head_ = register_module("head", torch::nn::Linear(hidden, classes));
  }

  FedOutput forward(Encoder& enc, const FeatureSet& b) override {
    torch::Tensor idx;
    auto sim = similarity(b.query);
    idx = std::get<1>(sim.detach().topk(k_, 1));
    auto ssf = pool_.index_select(0, idx.reshape(-1)).view({idx.size(0), k_, layout_.size}).mean(1);
    FedOutput out{classify(enc, layout_, b, ssf, head_), {}, {}, 1.0 - w_};
    // (1 - w) * CE + w * (1 - cos): the caller adds aux_loss to (1 - w) * CE.
    out.aux_loss = w_ * (1.0 - sim.gather(1, idx)).mean();
    out.usage = torch::bincount(idx.reshape(-1).to(torch::kCPU), {}, m_);
    return out;
  }
  int64_t pool_size() const override { return m_; }
  std::vector<bool> entry_rows() override {
    std::vector<bool> out;
    for (const auto& p : named_parameters()) out.push_back(p.value().is_same(pool_) || p.value().is_same(keys_));
    return out;
  }

  torch::Tensor instance_ssf(const torch::Tensor& query, torch::Tensor* chosen) override {
    torch::NoGradGuard ng;
    auto idx = std::get<1>(similarity(query).topk(k_, 1));
    if (chosen) *chosen = idx;
    return pool_.index_select(0, idx.reshape(-1)).view({idx.size(0), k_, layout_.size}).mean(1);
  }

 private:
  torch::Tensor similarity(const torch::Tensor& query) {
    return torch::mm(F::normalize(query.to(keys_.dtype()), F::NormalizeFuncOptions().dim(1)),
                     F::normalize(keys_, F::NormalizeFuncOptions().dim(1)).t());
  }
  SsfLayout layout_;
  int64_t m_, k_;
  double w_;
  torch::Tensor pool_, keys_;
  torch::nn::Linear head_{nullptr};
};
TANDEM_REGISTER(FedModel, "ssf_pool", SsfPool);

}  // namespace
}  // namespace tandem::fed
