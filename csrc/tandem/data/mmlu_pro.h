// Reader of MMLU-Pro (Wang et al. 2024): question, 3-10 options, the answer's index, category
// and source collection. Adapted by the default job's choice questions and the MoE experts'
// letter-answering task; FedIns reads the same file as text classification by field names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/data/jsonl.h"

namespace tandem {

struct MmluProRecord {
  std::string id, question, category, src;
  std::vector<std::string> options;
  int64_t answer_index = -1;
};

/// MMLU-Pro JSONL: question_id, question, options, answer_index (checked against the options),
/// category, and src (optional).
std::vector<MmluProRecord> read_mmlu_pro(const std::string& path, const JsonlOptions& opts = {});

}  // namespace tandem
