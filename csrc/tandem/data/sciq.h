// Reader of SciQ (Welbl et al. 2017): a science question, its correct answer, three
// distractors and an optional support paragraph. Adapted by the SPA task (generated answers),
// the default job (log-likelihood of each option) and nothing else reads the file.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "tandem/data/jsonl.h"

namespace tandem {

struct SciQRecord {
  std::string id, question, correct_answer;
  std::array<std::string, 3> distractors;
  std::string support;       ///< "" when absent
  bool has_support = false;  ///< the record carries a support string
};

/// SciQ JSONL: fields id, question, correct_answer, distractor1..3, support (optional).
std::vector<SciQRecord> read_sciq(const std::string& path, const JsonlOptions& opts = {});

}  // namespace tandem
