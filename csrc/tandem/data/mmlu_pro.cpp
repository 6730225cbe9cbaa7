#include "tandem/data/mmlu_pro.h"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tandem {

std::vector<MmluProRecord> read_mmlu_pro(const std::string& path, const JsonlOptions& opts) {
  std::vector<MmluProRecord> out;
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    MmluProRecord m;
    m.id = json_id(r, "question_id");
    m.question = json_string(r, "question");
    if (!r.contains("options") || !r["options"].is_array()) throw std::invalid_argument("expected a list field 'options'");
    for (const auto& o : r["options"]) {
      if (!o.is_string()) throw std::invalid_argument("options must be strings");
      m.options.push_back(o.get<std::string>());
    }
    if (!r.contains("answer_index") || !r["answer_index"].is_number_integer())
      throw std::invalid_argument("expected an integer field 'answer_index'");
    m.answer_index = r["answer_index"].get<int64_t>();
    if (m.answer_index < 0 || m.answer_index >= static_cast<int64_t>(m.options.size()))
      throw std::invalid_argument("answer_index out of range");
    m.category = json_string(r, "category");
    if (r.contains("src") && r["src"].is_string()) m.src = r["src"].get<std::string>();
    out.push_back(std::move(m));
  }, opts);
  return out;
}

}  // namespace tandem
