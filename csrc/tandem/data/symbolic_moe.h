// Reader of the Symbolic-MoE paper's multiple-choice splits
// (../shared/data/symbolic_moe/<set>_{train,test}.jsonl: MMLU-Pro, GPQA, MedMCQA). "train" is the
// validation pool profiles are built on; "test" is evaluated once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tandem {

struct McInstance {
  std::string id, dataset, question;  ///< question text with its options embedded
  std::string stem;                   ///< the question without its options (answer: loglik)
  std::vector<std::string> options;   ///< option texts, A first (answer: loglik)
  int64_t n_options = 0;
  int64_t gold = -1;                  ///< option index of the gold letter
  std::string category;               ///< MMLU-Pro subject (empty elsewhere)
};

/// Reads `path` (fields id, question, gold_answer letter, options or "(A) .. (B) .." in the
/// question; stem, else the question before its options). Bad lines name file:line, or are skipped and counted with `skip_bad_lines`.
std::vector<McInstance> read_mc_instances(const std::string& path, const std::string& dataset, size_t limit,
                                          bool skip_bad_lines);

}  // namespace tandem
