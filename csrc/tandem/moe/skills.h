// Skill extraction: each question gets a few skills from a fixed vocabulary ("organic
// chemistry", "jurisprudence", ...). Registered: `skills: {type: embedding}` matches the question's
// sentence embedding to the vocabulary (the fallback of the paper's keyword model);
// `keyword_lm` has an LM write keywords first and matches those.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"

namespace tandem::moe {

struct SkillTags {
  std::vector<int64_t> skills;  ///< indices into the vocabulary, best first
  std::vector<double> scores;   ///< cosine similarity of each
  std::string keywords;         ///< what the keyword model wrote (keyword_lm only)
};

class SkillExtractor {
 public:
  static constexpr const char* kRegistryKind = "moe.skill_extractor";
  using Factory = std::unique_ptr<SkillExtractor>(const Config&, const RuntimeOptions&);
  virtual ~SkillExtractor() = default;
  virtual std::vector<SkillTags> tag(const std::vector<std::string>& texts) = 0;
  const std::vector<std::string>& vocabulary() const { return vocab_; }

 protected:
  std::vector<std::string> vocab_;
};

}  // namespace tandem::moe

namespace tandem {
TANDEM_DECLARE_REGISTRY(moe::SkillExtractor);
}

namespace tandem::moe {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct TaggingOptions {
  std::string encoder = "minilm-l6";
  int64_t per_instance = 3;
  std::vector<std::string> vocabulary;
  template <class V>
  void visit(V& v) {
    v.field("encoder", encoder, "sentence encoder matching texts to skill names");
    v.field("per_instance", per_instance, "skills tagged per instance", Positive{});
    v.required("vocabulary", vocabulary, "the skill names");
  }
  void check(const Config& c) const {
    if (vocabulary.empty()) c.fail("vocabulary", "a non-empty list of skill names");
  }
};

struct EmbeddingSkillsOptions : TaggingOptions {
  TANDEM_OPTIONS(EmbeddingSkillsOptions)
};

struct KeywordLmSkillsOptions {
  TaggingOptions tagging;
  std::string model = "smollm2-135m";
  int64_t max_new_tokens = 16, batch_size = 8;
  template <class V>
  void visit(V& v) {
    v.merge(tagging);
    v.field("model", model, "the instruct LM that writes keywords");
    v.field("max_new_tokens", max_new_tokens, "keyword budget per question", Positive{});
    v.field("batch_size", batch_size, "questions decoded together", Positive{});
  }
  TANDEM_OPTIONS(KeywordLmSkillsOptions)
};

}  // namespace tandem::moe
