#include "tandem/data/text_classification.h"

#include <cctype>
#include <cmath>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/hash.h"
#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(TextDataset);
TANDEM_DEFINE_REGISTRY(TextFeaturizer);

void split_by_hash(const std::vector<TextExample>& all, double test_fraction,
                   std::vector<TextExample>& train, std::vector<TextExample>& test) {
  const uint64_t cut = static_cast<uint64_t>(test_fraction * 10000.0);
  for (const auto& ex : all) (fnv1a(ex.id) % 10000 < cut ? test : train).push_back(ex);
}

std::string json_field_text(const nlohmann::json& rec, const std::string& field) {
  if (!rec.contains(field)) throw std::invalid_argument("record has no field '" + field + "'");
  const auto& v = rec[field];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  throw std::invalid_argument("field '" + field + "' is neither a string nor an integer");
}

namespace {

// Any JSONL file with a text field and a label field (e.g. MMLU-Pro question -> category).
class JsonlTextDataset : public TextDataset {
 public:
  using Options = JsonlTextDatasetOptions;
  explicit JsonlTextDataset(const Config& cfg) : JsonlTextDataset(Options::from_config(cfg)) {}
  explicit JsonlTextDataset(const Options& o)
      : path_(resolve_data_path(o.path)),
        text_field_(o.text_field),
        label_field_(o.label_field),
        id_field_(o.id_field),
        test_fraction_(o.test_fraction) {
    opts_.limit = static_cast<size_t>(o.limit);
    opts_.skip_bad_lines = o.skip_bad_lines;
  }

  std::vector<TextExample> load() override {
    std::vector<TextExample> out;
    read_jsonl(
        path_,
        [&](const nlohmann::json& rec, size_t line) {
          TextExample ex;
          ex.text = json_field_text(rec, text_field_);
          ex.label = json_field_text(rec, label_field_);
          ex.id = id_field_.empty() ? std::to_string(line) : json_field_text(rec, id_field_);
          out.push_back(std::move(ex));
        },
        opts_);
    return out;
  }
  double test_fraction() const override { return test_fraction_; }

 private:
  std::string path_, text_field_, label_field_, id_field_;
  double test_fraction_;
  JsonlOptions opts_;
};
TANDEM_REGISTER(TextDataset, "jsonl_text_classification", JsonlTextDataset);

// Lower-cased alphanumeric words and their n-grams, hashed into `buckets` features,
// weighted by sublinear term frequency (1 + log tf) and L2-normalised per text.
class HashedNgrams : public TextFeaturizer {
 public:
  using Options = HashedNgramsOptions;
  explicit HashedNgrams(const Config& cfg) : HashedNgrams(Options::from_config(cfg)) {}
  explicit HashedNgrams(const Options& o) : buckets_(o.buckets), max_n_(o.ngram) {}

  int64_t dim() const override { return buckets_; }

  Bags encode(const std::vector<std::string>& texts) const override {
    std::vector<int64_t> idx, offs;
    std::vector<float> w;
    offs.reserve(texts.size());
    std::vector<std::string> words;
    std::unordered_map<int64_t, float> counts;
    for (const auto& text : texts) {
      offs.push_back(static_cast<int64_t>(idx.size()));
      words.clear();
      std::string cur;
      for (unsigned char c : text) {
        if (std::isalnum(c)) {
          cur += static_cast<char>(std::tolower(c));
        } else if (!cur.empty()) {
          words.push_back(std::move(cur));
          cur.clear();
        }
      }
      if (!cur.empty()) words.push_back(cur);
      counts.clear();
      for (size_t i = 0; i < words.size(); ++i) {
        uint64_t h = 0;
        for (int64_t n = 0; n < max_n_ && i + n < words.size(); ++n) {
          h = fnv1a(words[i + n], h * 31 + static_cast<uint64_t>(n));
          counts[static_cast<int64_t>(h % static_cast<uint64_t>(buckets_))] += 1.0f;
        }
      }
      double norm = 0;
      for (auto& kv : counts) {
        kv.second = 1.0f + std::log(kv.second);
        norm += kv.second * kv.second;
      }
      const float inv = norm > 0 ? static_cast<float>(1.0 / std::sqrt(norm)) : 0.0f;
      for (const auto& kv : counts) {
        idx.push_back(kv.first);
        w.push_back(kv.second * inv);
      }
    }
    auto i64 = torch::TensorOptions().dtype(torch::kLong);
    return Bags{torch::tensor(idx, i64), torch::tensor(offs, i64),
                torch::tensor(w, torch::TensorOptions().dtype(torch::kFloat))};
  }

 private:
  int64_t buckets_, max_n_;
};
TANDEM_REGISTER(TextFeaturizer, "hashed_ngrams", HashedNgrams);

}  // namespace
}  // namespace tandem
