// Long-document QA: (document, question, reference answers) from FinanceBench, QASPER or any
// JSONL, picked by `data.type`. Scored with SQuAD-style answer F1 (QASPER's answer F1): the best
// token F1 over the references after lower-casing and dropping punctuation and articles.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/registry.h"

namespace tandem {

struct LongDocExample {
  std::string id, document, question;
  std::vector<std::string> answers;
  nlohmann::json meta = nlohmann::json::object();
};

class LongDocDataset {
 public:
  static constexpr const char* kRegistryKind = "data.long_doc_qa";
  using Factory = std::unique_ptr<LongDocDataset>(const Config&);
  virtual ~LongDocDataset() = default;
  virtual std::vector<LongDocExample> load() = 0;
};
TANDEM_DECLARE_REGISTRY(LongDocDataset);

/// Best SQuAD-style token F1 of `prediction` over `references` (0 for none).
double answer_f1(const std::vector<std::string>& references, const std::string& prediction);

/// Splits `text` into chunks of at most about `chunk_chars` characters at line boundaries
/// (a single longer line is cut).
std::vector<std::string> chunk_text(const std::string& text, int64_t chunk_chars);

}  // namespace tandem
