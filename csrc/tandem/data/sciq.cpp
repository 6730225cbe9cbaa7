#include "tandem/data/sciq.h"

#include <nlohmann/json.hpp>

namespace tandem {

std::vector<SciQRecord> read_sciq(const std::string& path, const JsonlOptions& opts) {
  std::vector<SciQRecord> out;
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    SciQRecord s;
    s.id = json_id(r, "id");
    s.question = json_string(r, "question");
    s.correct_answer = json_string(r, "correct_answer");
    s.distractors = {json_string(r, "distractor1"), json_string(r, "distractor2"), json_string(r, "distractor3")};
    s.has_support = r.contains("support") && r["support"].is_string();
    if (s.has_support) s.support = r["support"].get<std::string>();
    out.push_back(std::move(s));
  }, opts);
  return out;
}

}  // namespace tandem
