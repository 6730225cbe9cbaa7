// Model profiles and recruiting. A profile is an expert's competence per skill, from its answers
// on a validation set: +1 per right and -1 per wrong answer on questions carrying the skill
// (as the Symbolic-MoE authors' code counts), divided by (questions with the skill + smoothing),
// plus a global strength (validation accuracy). An instance scores each expert as the sum of its
// skills' profile values times the expert's strength; the top k (or k sampled) are recruited.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/moe/skills.h"

#include "tandem/core/options.h"

namespace tandem::moe {

struct ModelProfile {
  std::string expert;
  std::vector<double> skill;  ///< per vocabulary skill, in [-1, 1]
  double strength = 0;        ///< validation accuracy
};

/// `correct[e][i]`: expert e answered validation instance i correctly.
std::vector<ModelProfile> build_profiles(const std::vector<std::string>& experts, size_t vocab_size,
                                         const std::vector<SkillTags>& tags, const std::vector<std::vector<bool>>& correct,
                                         double smoothing);

nlohmann::json profiles_to_json(const std::vector<ModelProfile>& profiles, const std::vector<std::string>& vocab);

/// Each expert's score for an instance with `tags`.
std::vector<double> expert_scores(const std::vector<ModelProfile>& profiles, const SkillTags& tags);

/// `recruit:` how many experts each instance gets, and how they are picked.
struct RecruitOptions {
  int64_t k = 2;
  std::string mode = "topk";
  double temperature = 1.0;
  uint64_t seed = 0;  ///< the run's seed (not a key)
  template <class V>
  void visit(V& v) {
    v.field("k", k, "experts recruited per instance", Positive{});
    v.field("mode", mode, "topk, or sample (softmax over expert scores / temperature)", OneOf{{"topk", "sample"}});
    v.field("temperature", temperature, "sampling temperature of mode sample", Positive{});
  }
  TANDEM_OPTIONS(RecruitOptions)
};

/// Indices of the recruited experts, best first. Deterministic for (seed, instance_key); ties
/// go to the earlier expert.
std::vector<int64_t> recruit(const std::vector<double>& scores, const RecruitOptions& o, const std::string& instance_key);

}  // namespace tandem::moe
