// The `text_classification` recipe's options and its classifiers (the `classifier:` kind).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/data/text_classification.h"

#include <torch/torch.h>

namespace tandem {

/// A classifier over bags of sparse features, picked by `classifier.type`.
class BagClassifier : public torch::nn::Module {
 public:
  static constexpr const char* kRegistryKind = "experiments.bag_classifier";
  using Factory = std::unique_ptr<BagClassifier>(const Config&, int64_t, int64_t);
  virtual torch::Tensor forward(const Bags& bags) = 0;
};
TANDEM_DECLARE_REGISTRY(BagClassifier);

}  // namespace tandem

namespace tandem {

struct BagMlpOptions {
  int64_t hidden = 256;
  double dropout = 0.1;
  template <class V>
  void visit(V& v) {
    v.field("hidden", hidden, "hidden width", Positive{});
    v.field("dropout", dropout, "dropout on the hidden layer", Range{0.0, 0.99});
  }
  TANDEM_OPTIONS(BagMlpOptions)
};

struct BagTrainOptions {
  int64_t epochs = 4, batch_size = 64, eval_batch_size = 512;
  double lr = 2e-3, weight_decay = 0.01;
  template <class V>
  void visit(V& v) {
    v.field("epochs", epochs, "passes over the training split", Positive{});
    v.field("batch_size", batch_size, "examples per step", Positive{});
    v.field("lr", lr, "AdamW learning rate", Positive{});
    v.field("weight_decay", weight_decay, "AdamW weight decay", Range{0.0, 1.0});
    v.field("eval_batch_size", eval_batch_size, "examples per evaluation batch", Positive{});
  }
};

struct TextClassificationOptions {
  BagTrainOptions train;
  template <class V>
  void visit(V& v) {
    v.template component<TextDataset>("data", "the labelled texts");
    v.template component<TextFeaturizer>("features", "text -> sparse features");
    v.template component<BagClassifier>("classifier", "the model trained on the features");
    v.section("train", train, "training");
  }
  TANDEM_OPTIONS(TextClassificationOptions)
};

}  // namespace tandem
