// Federated classification data: labelled texts with a domain tag, turned once into the frozen
// backbone's features (the states entering the first SSF layer, and the pooled query feature),
// so that federated rounds only run the layers that carry trainable SSF.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/models/encoder.h"
#include "tandem/peft/ssf.h"
#include "tandem/text/tokenizer.h"

namespace tandem::fed {

struct LabelledText {
  std::string id, text, label, domain;
};

/// A source of labelled texts with domains, picked by `data.type`.
class FedDataset {
 public:
  static constexpr const char* kRegistryKind = "fed.dataset";
  using Factory = std::unique_ptr<FedDataset>(const Config&);
  virtual ~FedDataset() = default;
  virtual std::vector<LabelledText> load() = 0;
  virtual double test_fraction() const = 0;
};

/// Frozen features of N examples. Rows of every tensor line up with `index` of the source.
struct FeatureSet {
  torch::Tensor lower;  ///< [N, T, H] states entering layer `first_layer`
  torch::Tensor mask;   ///< [N, T] int64, 1 = token
  torch::Tensor query;  ///< [N, H] float32: pooled output of the frozen encoder, no SSF
  torch::Tensor label;  ///< [N] int64
  std::vector<std::string> domain;
  int64_t size() const { return label.defined() ? label.size(0) : 0; }
  /// Rows `rows` (int64 indices) of every tensor.
  FeatureSet rows(const torch::Tensor& rows) const;
};

/// `model:` of a FedIns config: the frozen encoder and where SSF sits in it.
struct BackboneOptions {
  std::string path = "minilm-l6";
  int64_t max_tokens = 64, batch_size = 64;
  std::string cache_dir = ".cache/fed";
  SsfOptions ssf;
  template <class V>
  void visit(V& v) {
    v.field("path", path, "the encoder: a short name under $TANDEM_MODELS or an HF directory");
    v.field("max_tokens", max_tokens, "texts are cut to this many tokens (keeping [SEP])", Positive{});
    v.field("batch_size", batch_size, "texts per forward pass when computing features", Positive{});
    v.field("cache_dir", cache_dir, "frozen features, shared by every method of a table");
    v.section("ssf", ssf, "the scale-and-shift sites");
  }
  TANDEM_OPTIONS(BackboneOptions)
};

/// The frozen backbone: encoder, tokenizer and where SSF sits. Features are cached on disk
/// (keyed by model, texts, length and layout) because every method of a table shares them.
class Backbone {
 public:
  Backbone(const Config& cfg, const RuntimeOptions& rt);
  Backbone(const BackboneOptions& o, const Config& cfg, const RuntimeOptions& rt);
  FeatureSet featurize(const std::vector<LabelledText>& texts, const std::vector<int64_t>& labels);
  Encoder& encoder() { return *encoder_; }
  const SsfLayout& layout() const { return layout_; }
  int64_t hidden() const { return encoder_->config().hidden_size; }
  /// Trainable-parameter count of full fine-tuning (every encoder weight), for the comm baseline.
  int64_t encoder_parameters() const;
  const std::string& model_path() const { return path_; }

 private:
  RuntimeOptions rt_;
  std::string path_, cache_dir_;
  int64_t max_tokens_, batch_;
  std::shared_ptr<Encoder> encoder_;
  std::shared_ptr<text::Tokenizer> tok_;
  SsfLayout layout_;
};

}  // namespace tandem::fed

namespace tandem {
TANDEM_DECLARE_REGISTRY(fed::FedDataset);
}  // namespace tandem

namespace tandem::fed {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct JsonlFedDatasetOptions {
  std::string path, text_field = "text", label_field = "label", domain_field, domain_separator = "-", id_field;
  int64_t max_examples = 0;
  double test_fraction = 0.2;
  template <class V>
  void visit(V& v) {
    v.required("path", path, "the JSONL file (relative to $TANDEM_DATA)");
    v.field("text_field", text_field, "field holding the text");
    v.field("label_field", label_field, "field holding the class label");
    v.field("domain_field", domain_field, "field whose text up to domain_separator names the domain (\"\" = none)");
    v.field("domain_separator", domain_separator, "where the domain name ends in domain_field");
    v.field("id_field", id_field, "field holding the id (\"\" = the line number)");
    v.field("max_examples", max_examples, "a fixed hash-chosen subset of this size (0 = all)", NonNegative{});
    v.field("test_fraction", test_fraction, "share of examples held out for test, by id hash", Range{0.01, 0.99});
  }
  TANDEM_OPTIONS(JsonlFedDatasetOptions)
};

}  // namespace tandem::fed
