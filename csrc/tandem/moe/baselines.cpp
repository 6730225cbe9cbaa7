#include "tandem/moe/baselines.h"

#include <algorithm>

namespace tandem::moe {

Baselines baselines(const std::vector<ExpertSpec>& experts, const std::vector<std::string>& datasets,
                    const std::vector<McInstance>& val, const ExpertAnswers& val_answers,
                    const std::vector<McInstance>& test, const ExpertAnswers& test_answers) {
  Baselines b;
  const size_t E = experts.size();
  auto right = [&](size_t e, size_t i) { return val_answers[e][i].choice == val[i].gold; };
  auto choices_of = [&](size_t e) {
    std::vector<int64_t> p;
    for (size_t i = 0; i < test.size(); ++i) p.push_back(test_answers[e][i].choice);
    return p;
  };
  std::vector<double> val_acc(E, 0);
  for (size_t e = 0; e < E; ++e) {
    for (size_t i = 0; i < val.size(); ++i) val_acc[e] += right(e, i);
    if (val_acc[e] > val_acc[b.best_single]) b.best_single = e;
    b.methods.push_back("expert: " + experts[e].name);
    b.predictions[b.methods.back()] = choices_of(e);
  }
  b.methods.push_back("best single expert");
  b.predictions["best single expert"] = choices_of(b.best_single);
  {  // majority vote of all experts; ties go to the best single expert's pick
    std::vector<int64_t> p;
    for (size_t i = 0; i < test.size(); ++i) {
      std::map<int64_t, int> votes;
      for (size_t e = 0; e < E; ++e) ++votes[test_answers[e][i].choice];
      int64_t best = test_answers[b.best_single][i].choice;
      for (const auto& [c, v] : votes)
        if (v > votes[best]) best = c;
      p.push_back(best);
    }
    b.methods.push_back("majority vote");
    b.predictions["majority vote"] = p;
  }
  {  // task-level router: the best expert per dataset on validation
    std::map<std::string, size_t> route;
    for (const auto& ds : datasets) {
      std::vector<double> acc(E, 0);
      for (size_t e = 0; e < E; ++e)
        for (size_t i = 0; i < val.size(); ++i)
          if (val[i].dataset == ds) acc[e] += right(e, i);
      route[ds] = static_cast<size_t>(std::max_element(acc.begin(), acc.end()) - acc.begin());
    }
    std::vector<int64_t> p;
    for (size_t i = 0; i < test.size(); ++i) p.push_back(test_answers[route[test[i].dataset]][i].choice);
    b.methods.push_back("task-level router");
    b.predictions["task-level router"] = p;
  }
  return b;
}

}  // namespace tandem::moe
