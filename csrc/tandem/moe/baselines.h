// The baselines a Symbolic-MoE table compares against, from every expert's test answers and
// validation accuracy: each expert alone, the best single expert (chosen on validation), the
// majority vote of all experts, and a task-level router (the best expert per dataset on
// validation).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tandem/moe/pipeline.h"

namespace tandem::moe {

struct Baselines {
  std::vector<std::string> methods;                          ///< table rows, in order
  std::map<std::string, std::vector<int64_t>> predictions;   ///< method -> option per test instance
  size_t best_single = 0;                                    ///< the best expert on validation
};

Baselines baselines(const std::vector<ExpertSpec>& experts, const std::vector<std::string>& datasets,
                    const std::vector<McInstance>& val, const ExpertAnswers& val_answers,
                    const std::vector<McInstance>& test, const ExpertAnswers& test_answers);

}  // namespace tandem::moe
