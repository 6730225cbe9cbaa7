// Symbolic-MoE as named steps (Chen et al. 2025): tag instances with skills, let every expert
// answer a validation pool, build per-skill profiles from those answers, recruit k experts per
// instance, choose the aggregator on validation, and have it synthesise the recruited answers.
// The experiment (experiments/symbolic_moe.cpp) is a short recipe over these steps; Python runs
// them directly (tandem.moe).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/data/symbolic_moe.h"
#include "tandem/moe/answering.h"
#include "tandem/moe/executor.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/profiles.h"
#include "tandem/moe/skills.h"

namespace tandem::moe {

/// answers[e][i]: expert e's answer to instance i.
using ExpertAnswers = std::vector<std::vector<Answer>>;

struct AggregatorChoice {
  int64_t expert = -1;                 ///< index of the chosen aggregator
  std::vector<double> validation;      ///< accuracy of each candidate, in candidate order
};

class Pipeline {
 public:
  /// `skills` and `pool` outlive the pipeline; recruit.seed seeds sampled recruiting.
  Pipeline(std::vector<ExpertSpec> experts, SkillExtractor& skills, ModelPool& pool, RecruitOptions recruit,
           double smoothing, const ExecutorOptions& executor);

  const std::vector<ExpertSpec>& experts() const { return experts_; }
  /// 1. Skills of each instance.
  std::vector<SkillTags> tag(const std::vector<McInstance>& xs) const;
  /// 2. Every expert answers every instance (batched by expert: each model loads once).
  ExpertAnswers answer_all(const std::vector<McInstance>& xs) const;
  /// 3. Profiles from validation answers.
  std::vector<ModelProfile> build_profiles(const std::vector<McInstance>& val, const std::vector<SkillTags>& tags,
                                           const ExpertAnswers& answers) const;
  /// 4. The recruited experts of each instance, best first.
  std::vector<std::vector<int64_t>> recruit(const std::vector<McInstance>& xs, const std::vector<SkillTags>& tags,
                                            const std::vector<ModelProfile>& profiles) const;
  /// 5. Of `candidates`, the aggregator whose synthesis is most accurate on validation (ties: first).
  AggregatorChoice choose_aggregator(const std::vector<int64_t>& candidates, const std::vector<McInstance>& val,
                                     const std::vector<std::vector<int64_t>>& recruited, const ExpertAnswers& answers) const;
  /// 6. The aggregator's answer per instance, given the recruited experts' answers: in letter
  ///    mode from the paper's prompt listing them, in loglik mode its most likely option among
  ///    the ones they proposed.
  std::vector<Answer> aggregate(int64_t aggregator, const std::vector<McInstance>& xs,
                                const std::vector<std::vector<int64_t>>& recruited, const ExpertAnswers& answers) const;

 private:
  std::vector<ExpertSpec> experts_;
  SkillExtractor& skills_;
  ModelPool& pool_;
  RecruitOptions recruit_;
  double smoothing_;
  std::unique_ptr<Executor> executor_;
};

}  // namespace tandem::moe
