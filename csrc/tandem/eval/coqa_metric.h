// CoQA answer scoring as in the official CoQA evaluation script (v1.0): answers normalised by
// lowercasing and removing punctuation, articles and extra whitespace; word-level F1 and exact
// match; with several gold answers, each prediction is scored leave-one-out against the rest.
#pragma once

#include <string>
#include <vector>

namespace tandem {

/// The official normalisation: lower, strip punctuation, drop a/an/the, collapse spaces.
std::string coqa_normalize(const std::string& s);
/// Word-level F1 of one prediction against one gold answer.
double coqa_f1(const std::string& gold, const std::string& pred);
/// 1 when the normalised strings are equal.
double coqa_exact(const std::string& gold, const std::string& pred);

struct CoqaScore {
  double f1 = 0, em = 0;
};
/// One turn: with one gold answer, max over it; with n > 1, the mean over i of the max over the
/// other n - 1 (the script's human-comparable averaging).
CoqaScore coqa_turn_score(const std::vector<std::string>& golds, const std::string& pred);

}  // namespace tandem
