#include "tandem/fed/fed_data.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "tandem/core/hash.h"
#include "tandem/core/progress.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/text_classification.h"
#include "tandem/models/batching.h"
#include "tandem/peft/state_cache.h"
#include "tandem/models/model_paths.h"

namespace fs = std::filesystem;

namespace tandem {
TANDEM_DEFINE_REGISTRY(fed::FedDataset);
}

namespace tandem::fed {

FeatureSet FeatureSet::rows(const torch::Tensor& r) const {
  FeatureSet out;
  const auto rc = r.to(torch::kCPU, torch::kLong);
  out.lower = lower.index_select(0, rc.to(lower.device()));
  out.mask = mask.index_select(0, rc.to(mask.device()));
  out.query = query.index_select(0, rc.to(query.device()));
  out.label = label.index_select(0, rc.to(label.device()));
  const int64_t* p = rc.data_ptr<int64_t>();
  for (int64_t i = 0; i < rc.numel(); ++i) out.domain.push_back(domain.at(static_cast<size_t>(p[i])));
  return out;
}

namespace {


// Any JSONL with text, label and a domain field. The domain is the field's text up to
// `domain_separator` (MMLU-Pro's `src` "ori_mmlu-high_school_biology" -> "ori_mmlu"), which
// gives each client a mix of source collections (intra-client heterogeneity).
class JsonlFedDataset : public FedDataset {
 public:
  using Options = JsonlFedDatasetOptions;
  explicit JsonlFedDataset(const Config& cfg) : JsonlFedDataset(Options::from_config(cfg)) {}
  explicit JsonlFedDataset(const Options& o)
      : path_(resolve_data_path(o.path)),
        text_field_(o.text_field),
        label_field_(o.label_field),
        domain_field_(o.domain_field),
        domain_sep_(o.domain_separator),
        id_field_(o.id_field),
        max_examples_(o.max_examples),
        test_fraction_(o.test_fraction) {}

  std::vector<LabelledText> load() override {
    std::vector<LabelledText> out;
    read_jsonl(path_, [&](const nlohmann::json& rec, size_t line) {
      LabelledText ex;
      ex.text = json_field_text(rec, text_field_);
      ex.label = json_field_text(rec, label_field_);
      ex.id = id_field_.empty() ? std::to_string(line) : json_field_text(rec, id_field_);
      if (!domain_field_.empty()) {
        ex.domain = json_field_text(rec, domain_field_);
        if (!domain_sep_.empty()) ex.domain = ex.domain.substr(0, ex.domain.find(domain_sep_));
      }
      out.push_back(std::move(ex));
    });
    if (max_examples_ > 0 && static_cast<int64_t>(out.size()) > max_examples_) {
      // A fixed subset, the same on every machine: the lowest id hashes. FNV-1a alone orders
      // short numeric ids almost by value (and MMLU-Pro's ids run by subject), so its output
      // goes through a 64-bit finaliser first.
      auto key = [](const std::string& id) {
        uint64_t z = fnv1a(id);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
      };
      std::stable_sort(out.begin(), out.end(), [&](const LabelledText& a, const LabelledText& b) { return key(a.id) < key(b.id); });
      out.resize(static_cast<size_t>(max_examples_));
    }
    return out;
  }
  double test_fraction() const override { return test_fraction_; }

 private:
  std::string path_, text_field_, label_field_, domain_field_, domain_sep_, id_field_;
  int64_t max_examples_;
  double test_fraction_;
};
TANDEM_REGISTER(FedDataset, "jsonl", JsonlFedDataset);

}  // namespace

Backbone::Backbone(const Config& cfg, const RuntimeOptions& rt) : Backbone(BackboneOptions::from_config(cfg), cfg, rt) {}

Backbone::Backbone(const BackboneOptions& o, const Config& cfg, const RuntimeOptions& rt)
    : rt_(rt),
      path_(resolve_model_path(o.path)),
      cache_dir_(o.cache_dir),
      max_tokens_(o.max_tokens),
      batch_(o.batch_size) {
  encoder_ = load_encoder(path_, rt.device, rt.dtype);
  tok_ = text::load_tokenizer(path_);
  layout_ = SsfLayout::for_encoder(encoder_->config(), o.ssf, cfg.at_or_empty("ssf"));
  if (max_tokens_ > encoder_->config().max_positions)
    throw std::invalid_argument(cfg.where("max_tokens") + ": " + std::to_string(max_tokens_) + " exceeds the encoder's " +
                                std::to_string(encoder_->config().max_positions) + " positions");
}

int64_t Backbone::encoder_parameters() const {
  int64_t n = 0;
  for (const auto& p : encoder_->parameters()) n += p.numel();
  return n;
}

FeatureSet Backbone::featurize(const std::vector<LabelledText>& texts, const std::vector<int64_t>& labels) {
  const int64_t N = static_cast<int64_t>(texts.size());
  // The key covers everything the features depend on.
  uint64_t h = fnv1a(path_ + "|" + std::to_string(max_tokens_) + "|" + std::to_string(layout_.first_layer) + "|" +
                     dtype_name(rt_.dtype));
  for (const auto& t : texts) h = fnv1a(t.text, h);
  char key[32];
  std::snprintf(key, sizeof key, "%016llx", static_cast<unsigned long long>(h));
  const std::string entry = std::string("features-") + key;

  FeatureSet out;
  out.label = torch::tensor(labels, torch::kLong);
  for (const auto& t : texts) out.domain.push_back(t.domain);
  // The frozen encoder's features, like SPA's backbone states, live in a StateCache: computed
  // once, shared by every method of a table (no budget: one entry per data/model setting).
  std::optional<StateCache> cache;
  if (!cache_dir_.empty()) cache.emplace(cache_dir_, std::numeric_limits<int64_t>::max() / 2);
  if (cache) {
    if (auto st = cache->lookup(entry)) {
      std::map<std::string, torch::Tensor> t(st->begin(), st->end());
      if (t.count("lower") && t.count("mask") && t.count("query") && t.at("lower").size(0) == N) {
        out.lower = t.at("lower").to(rt_.device);
        out.mask = t.at("mask").to(rt_.device);
        out.query = t.at("query").to(rt_.device);
        return out;
      }  // a stale entry of another size falls through and is rebuilt
    }
  }
  torch::NoGradGuard ng;
  const int64_t T = max_tokens_, H = hidden();
  out.lower = torch::empty({N, T, H}, torch::TensorOptions().dtype(rt_.dtype).device(rt_.device));
  out.mask = torch::zeros({N, T}, torch::TensorOptions().dtype(torch::kLong).device(rt_.device));
  out.query = torch::empty({N, H}, torch::TensorOptions().dtype(torch::kFloat).device(rt_.device));
  const int64_t pad = std::max<int64_t>(tok_->pad_id, 0);
  Progress bar("features", N, "ex");
  for (int64_t s = 0; s < N; s += batch_) {
    const int64_t e = std::min(N, s + batch_);
    std::vector<std::vector<int64_t>> xs;
    for (int64_t i = s; i < e; ++i) {
      xs.push_back(tok_->encode(texts[static_cast<size_t>(i)].text));
      truncate_keeping_last(xs.back(), T);  // keep [CLS] ... and the closing [SEP]
    }
    auto [ids, m] = pad_batch(xs, pad, PadSide::kRight, T);
    auto lower = encoder_->run_layers(encoder_->embed_tokens(ids), m, 0, layout_.first_layer, {});
    auto top = encoder_->run_layers(lower, m, layout_.first_layer, encoder_->config().num_layers, {});
    out.lower.narrow(0, s, e - s).copy_(lower);
    out.mask.narrow(0, s, e - s).copy_(m);
    out.query.narrow(0, s, e - s).copy_(encoder_->pool(top, m.to(top.device())));
    bar.update(e - s);
  }
  bar.finish();
  if (cache) cache->put(entry, {{"lower", out.lower.cpu()}, {"mask", out.mask.cpu()}, {"query", out.query.cpu()}});
  return out;
}

}  // namespace tandem::fed
