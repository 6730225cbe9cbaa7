// The "text_classification" experiment: labelled texts -> featurizer -> registered bag
// classifier, trained with AdamW, evaluated per label. It is tandem's built-in default job
// (MMLU-Pro question -> subject) and a template for the experiments that follow.
#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include <torch/torch.h>

#include "tandem/core/progress.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/data/text_classification.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/text_classification.h"
#include "tandem/train/trainer.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(BagClassifier);

namespace {

// Multinomial logistic regression: one weight vector per class over the bag features.
class BagLinear : public BagClassifier {
 public:
  using Options = NoOptions;
  BagLinear(const Config& cfg, int64_t in_dim, int64_t classes) {
    bag_ = register_module("bag", torch::nn::EmbeddingBag(
                                      torch::nn::EmbeddingBagOptions(in_dim, classes).mode(torch::kSum)));
    bias_ = register_parameter("bias", torch::zeros({classes}));
  }
  torch::Tensor forward(const Bags& b) override {
    return bag_(b.indices, b.offsets, b.weights) + bias_;
  }

 private:
  torch::nn::EmbeddingBag bag_{nullptr};
  torch::Tensor bias_;
};
TANDEM_REGISTER(BagClassifier, "bag_linear", BagLinear);

// One hidden layer: sparse bag -> dense hidden (ReLU, dropout) -> classes.
class BagMlp : public BagClassifier {
 public:
  using Options = BagMlpOptions;
  BagMlp(const Config& cfg, int64_t in_dim, int64_t classes) {
    const Options o = Options::from_config(cfg);
    const int64_t hidden = o.hidden;
    bag_ = register_module("bag", torch::nn::EmbeddingBag(
                                      torch::nn::EmbeddingBagOptions(in_dim, hidden).mode(torch::kSum)));
    bias_ = register_parameter("bias", torch::zeros({hidden}));
    drop_ = register_module("drop", torch::nn::Dropout(o.dropout));
    out_ = register_module("out", torch::nn::Linear(hidden, classes));
  }
  torch::Tensor forward(const Bags& b) override {
    auto h = torch::relu(bag_(b.indices, b.offsets, b.weights) + bias_);
    return out_(drop_(h));
  }

 private:
  torch::nn::EmbeddingBag bag_{nullptr};
  torch::Tensor bias_;
  torch::nn::Dropout drop_{nullptr};
  torch::nn::Linear out_{nullptr};
};
TANDEM_REGISTER(BagClassifier, "bag_mlp", BagMlp);

Bags slice_to(const TextFeaturizer& f, const std::vector<TextExample>& ex, const std::vector<int64_t>& ids,
              const torch::Device& dev, torch::ScalarType dtype) {
  std::vector<std::string> texts;
  texts.reserve(ids.size());
  for (auto i : ids) texts.push_back(ex[i].text);
  Bags b = f.encode(texts);
  return Bags{b.indices.to(dev), b.offsets.to(dev), b.weights.to(dev, dtype)};
}

class TextClassification : public Experiment {
 public:
  using Options = TextClassificationOptions;

  TextClassification(const Config& root, const RuntimeOptions& rt) : rt_(rt) {
    const Options o = Options::from_config(root);
    dataset_ = create<TextDataset>(root.at("data"));
    featurizer_ = create<TextFeaturizer>(root.at("features"));
    model_cfg_ = std::make_unique<Config>(root.at("classifier"));
    model_type_ = model_cfg_->type();
    // Probe-construct once so the classifier's keys are read (and checked) before the run starts.
    create<BagClassifier>(*model_cfg_, 1, 2);
    epochs_ = o.train.epochs;
    batch_ = o.train.batch_size;
    lr_ = o.train.lr;
    wd_ = o.train.weight_decay;
    eval_batch_ = o.train.eval_batch_size;
  }

  ExperimentResult run(RunContext& ctx) override {
    const auto dev = rt_.device;
    std::vector<TextExample> all = dataset_->load(), train, test;
    split_by_hash(all, dataset_->test_fraction(), train, test);
    if (train.empty() || test.empty())
      throw std::runtime_error("text_classification: the split left " + std::to_string(train.size()) +
                               " train and " + std::to_string(test.size()) + " test examples; need both > 0");
    std::set<std::string> label_set;
    for (const auto& e : train) label_set.insert(e.label);
    std::vector<std::string> labels(label_set.begin(), label_set.end());
    std::map<std::string, int64_t> label_id;
    for (size_t i = 0; i < labels.size(); ++i) label_id[labels[i]] = static_cast<int64_t>(i);
    auto targets_of = [&](const std::vector<TextExample>& ex) {
      std::vector<int64_t> t;
      for (const auto& e : ex) t.push_back(label_id.count(e.label) ? label_id[e.label] : -1);
      return torch::tensor(t, torch::kLong);
    };
    const torch::Tensor y_train = targets_of(train).to(dev), y_test = targets_of(test);
    ctx.info("data: " + std::to_string(train.size()) + " train / " + std::to_string(test.size()) +
             " test examples, " + std::to_string(labels.size()) + " labels");

    auto model = create<BagClassifier>(
        *model_cfg_, featurizer_->dim(), static_cast<int64_t>(labels.size()));
    model->to(dev, rt_.dtype);
    int64_t n_params = 0;
    for (const auto& p : model->parameters()) n_params += p.numel();
    const int64_t n = static_cast<int64_t>(train.size());
    const int64_t steps_per_epoch = (n + batch_ - 1) / batch_;
    // One Trainer fit over every epoch: constant rate (no warmup, no decay), no clipping; the
    // loss window and the evaluation fall on epoch ends.
    TrainerOptions topt;
    topt.steps = epochs_ * steps_per_epoch;
    topt.lr = lr_;
    topt.weight_decay = wd_;
    topt.warmup_ratio = 0.0;
    topt.min_lr_ratio = 1.0;
    topt.clip_norm = 0.0;
    topt.log_every = steps_per_epoch;
    topt.eval_every = steps_per_epoch;
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
    Trainer trainer(topt, named, "", "train");
    Table curve({"epoch", "train_loss", "test_accuracy"});
    torch::Tensor pred_test, perm;
    double last_loss = 0, loss_sum = 0;
    auto gen = at::detail::createCPUGenerator(rt_.seed);
    const auto t0 = std::chrono::steady_clock::now();
    const auto step_fn = [&](int64_t step, int64_t) {
      const int64_t s = step % steps_per_epoch;
      if (s == 0) {  // an epoch starts: a fresh order of the training examples
        model->train();
        perm = torch::randperm(n, gen, torch::kLong);
        loss_sum = 0;
      }
      const int64_t* pp = perm.data_ptr<int64_t>();
      std::vector<int64_t> ids(pp + s * batch_, pp + std::min(n, (s + 1) * batch_));
      Bags b = slice_to(*featurizer_, train, ids, dev, rt_.dtype);
      auto logits = model->forward(b).to(torch::kFloat);
      auto loss = torch::nn::functional::cross_entropy(logits, y_train.index_select(0, torch::tensor(ids, torch::kLong).to(dev)));
      loss_sum += loss.item<double>();
      return loss;
    };
    const auto eval_fn = [&](int64_t done) -> std::map<std::string, double> {
      const int64_t epoch = done / steps_per_epoch;
      last_loss = loss_sum / static_cast<double>(steps_per_epoch);
      pred_test = predict(*model, test, dev);
      const double acc = (pred_test == y_test).to(torch::kDouble).mean().item<double>();
      curve.add_row({epoch, last_loss, acc});
      // Written every epoch, atomically: a killed run leaves whole files behind.
      ctx.write_table("curve", curve);
      save_safetensors(ctx.path("checkpoint.safetensors"), named, {{"epoch", std::to_string(epoch)}, {"model", model_type_}});
      ctx.info("epoch " + std::to_string(epoch) + ": train_loss=" + std::to_string(last_loss) +
               " test_accuracy=" + std::to_string(acc));
      return {{"test_accuracy", acc}};
    };
    trainer.fit(step_fn, eval_fn);
    const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    // Per-label accuracy, plus the majority-label baseline for scale.
    Table table({"label", "test_examples", "accuracy"});
    std::map<std::string, int64_t> train_counts;
    for (const auto& e : train) train_counts[e.label]++;
    const auto majority = std::max_element(train_counts.begin(), train_counts.end(),
                                           [](auto& a, auto& b) { return a.second < b.second; })->first;
    int64_t majority_hits = 0;
    for (const auto& e : test) majority_hits += e.label == majority;
    const auto* pr = pred_test.data_ptr<int64_t>();
    const auto* yt = y_test.data_ptr<int64_t>();
    double macro = 0;
    for (size_t l = 0; l < labels.size(); ++l) {
      int64_t total = 0, hit = 0;
      for (size_t i = 0; i < test.size(); ++i)
        if (yt[i] == static_cast<int64_t>(l)) total++, hit += pr[i] == yt[i];
      const double acc = total ? static_cast<double>(hit) / total : 0.0;
      macro += acc;
      table.add_row({labels[l], total, acc});
    }
    const double accuracy = (pred_test == y_test).to(torch::kDouble).mean().item<double>();
    table.add_row({std::string("all"), static_cast<int64_t>(test.size()), accuracy});

    ExperimentResult r;
    r.table = table;
    r.metrics = {{"accuracy", accuracy},
                 {"macro_accuracy", macro / labels.size()},
                 {"majority_baseline_accuracy", static_cast<double>(majority_hits) / test.size()},
                 {"final_train_loss", last_loss},
                 {"train_examples", train.size()},
                 {"test_examples", test.size()},
                 {"labels", labels.size()},
                 {"parameters", n_params},
                 {"train_seconds", train_s},
                 {"train_examples_per_second", epochs_ * n / std::max(train_s, 1e-9)}};
    return r;
  }

 private:
  torch::Tensor predict(BagClassifier& model, const std::vector<TextExample>& ex, const torch::Device& dev) {
    torch::NoGradGuard ng;
    model.eval();
    std::vector<torch::Tensor> out;
    for (size_t s = 0; s < ex.size(); s += eval_batch_) {
      std::vector<int64_t> ids;
      for (size_t i = s; i < std::min(ex.size(), s + eval_batch_); ++i) ids.push_back(static_cast<int64_t>(i));
      out.push_back(model.forward(slice_to(*featurizer_, ex, ids, dev, rt_.dtype)).argmax(1).cpu());
    }
    return torch::cat(out);
  }

  RuntimeOptions rt_;
  std::unique_ptr<TextDataset> dataset_;
  std::unique_ptr<TextFeaturizer> featurizer_;
  std::unique_ptr<Config> model_cfg_;
  std::string model_type_;
  int64_t epochs_, batch_, eval_batch_;
  double lr_, wd_;
};
TANDEM_REGISTER(Experiment, "text_classification", TextClassification);

}  // namespace
}  // namespace tandem
