// Text classification data: labelled texts from JSONL, a deterministic hash split, and
// registered featurizers that turn texts into sparse bags for nn::EmbeddingBag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"

namespace tandem {

struct TextExample {
  std::string id, text, label;
};

/// A source of labelled texts, picked by `data.type`.
class TextDataset {
 public:
  static constexpr const char* kRegistryKind = "data.text_classification";
  using Factory = std::unique_ptr<TextDataset>(const Config&);
  virtual ~TextDataset() = default;
  virtual std::vector<TextExample> load() = 0;
  /// Fraction of examples that go to the test side of split().
  virtual double test_fraction() const = 0;
};
TANDEM_DECLARE_REGISTRY(TextDataset);

/// A record's field as text: strings as they are, integers in decimal; anything else (or a
/// missing field) is std::invalid_argument naming the field.
std::string json_field_text(const nlohmann::json& rec, const std::string& field);

/// Deterministic split by hash of the example id: same ids -> same side, whatever the order.
void split_by_hash(const std::vector<TextExample>& all, double test_fraction,
                   std::vector<TextExample>& train, std::vector<TextExample>& test);

/// A batch of bags: `indices` (int64) of all items, `offsets` (int64) where each bag starts,
/// `weights` (float) per item.
struct Bags {
  at::Tensor indices, offsets, weights;
};

/// Turns texts into bags of feature ids in [0, dim()).
class TextFeaturizer {
 public:
  static constexpr const char* kRegistryKind = "data.featurizer";
  using Factory = std::unique_ptr<TextFeaturizer>(const Config&);
  virtual ~TextFeaturizer() = default;
  virtual int64_t dim() const = 0;
  virtual Bags encode(const std::vector<std::string>& texts) const = 0;
};
TANDEM_DECLARE_REGISTRY(TextFeaturizer);

}  // namespace tandem

namespace tandem {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct JsonlTextDatasetOptions {
  std::string path, text_field = "text", label_field = "label", id_field;
  double test_fraction = 0.2;
  int64_t limit = 0;
  bool skip_bad_lines = false;
  template <class V>
  void visit(V& v) {
    v.required("path", path, "the JSONL file (relative to $TANDEM_DATA)");
    v.field("text_field", text_field, "field holding the text");
    v.field("label_field", label_field, "field holding the class label");
    v.field("id_field", id_field, "field holding the id (\"\" = the line number)");
    v.field("test_fraction", test_fraction, "share held out for test, by id hash", Range{0.0, 1.0});
    v.field("limit", limit, "the first N records", Limit{});
    v.field("skip_bad_lines", skip_bad_lines, "skip (and count) malformed records instead of failing");
  }
  TANDEM_OPTIONS(JsonlTextDatasetOptions)
};

struct HashedNgramsOptions {
  int64_t buckets = 1 << 15, ngram = 2;
  template <class V>
  void visit(V& v) {
    v.field("buckets", buckets, "hash buckets (the feature dimension)", Positive{});
    v.field("ngram", ngram, "word n-grams up to this length", Positive{});
  }
  TANDEM_OPTIONS(HashedNgramsOptions)
};

}  // namespace tandem
