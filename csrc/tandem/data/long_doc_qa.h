// Long-document QA: (document, question, reference answers) from FinanceBench, QASPER or any
// JSONL, picked by `data.type`. Scored with SQuAD-style answer F1 (QASPER's answer F1): the best
// token F1 over the references after lower-casing and dropping punctuation and articles.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/options.h"
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

namespace tandem {

// ---- declared options of the registered components (`tandem config --explain` prints them) ----

struct QasperOptions {
  std::string path = "qasper/test.jsonl";
  int64_t questions_per_paper = 0, limit = 0;
  template <class V>
  void visit(V& v) {
    v.field("path", path, "L-Eval's QASPER file (one paper per line)");
    v.field("questions_per_paper", questions_per_paper, "the first N questions of each paper (0 = all)", NonNegative{});
    v.field("limit", limit, "the first N questions overall", Limit{});
  }
  TANDEM_OPTIONS(QasperOptions)
};

struct FinanceBenchOptions {
  std::string questions = "financebench/questions.jsonl", documents = "financebench/documents.jsonl";
  std::string pages = "evidence_window";
  int64_t window = 1, limit = 0;
  template <class V>
  void visit(V& v) {
    v.field("questions", questions, "the questions file");
    v.field("documents", documents, "the filings, one per line with their pages");
    v.field("pages", pages, "all pages, or the evidence pages +- window", OneOf{{"all", "evidence_window"}});
    v.field("window", window, "pages kept on each side of an evidence page", NonNegative{});
    v.field("limit", limit, "the first N questions", Limit{});
  }
  TANDEM_OPTIONS(FinanceBenchOptions)
};

struct JsonlLongDocOptions {
  std::string path, document_field = "document", question_field = "question", answers_field = "answers",
                    id_field = "id";
  int64_t limit = 0;
  template <class V>
  void visit(V& v) {
    v.required("path", path, "the JSONL file");
    v.field("document_field", document_field, "field holding the document");
    v.field("question_field", question_field, "field holding the question");
    v.field("answers_field", answers_field, "field holding the reference answer(s): a string or a list");
    v.field("id_field", id_field, "field holding the id");
    v.field("limit", limit, "the first N questions", Limit{});
  }
  TANDEM_OPTIONS(JsonlLongDocOptions)
};

}  // namespace tandem
