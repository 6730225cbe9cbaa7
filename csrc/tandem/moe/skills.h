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
