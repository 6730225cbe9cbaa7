#include "tandem/data/symbolic_moe.h"

#include <regex>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "tandem/data/jsonl.h"

namespace tandem {

std::vector<McInstance> read_mc_instances(const std::string& path, const std::string& dataset, size_t limit,
                                          bool skip_bad_lines) {
  std::vector<McInstance> out;
  JsonlOptions o;
  o.limit = limit;
  o.skip_bad_lines = skip_bad_lines;
  static const std::regex letter_re(R"(\(([A-J])\) )");
  read_jsonl(path, [&](const nlohmann::json& r, size_t) {
    McInstance m;
    if (!r.contains("id") || !r.contains("question") || !r["question"].is_string() || !r.contains("gold_answer") ||
        !r["gold_answer"].is_string())
      throw std::invalid_argument("expected fields id, question (string) and gold_answer (a letter)");
    m.id = r["id"].is_string() ? r["id"].get<std::string>() : r["id"].dump();
    m.dataset = dataset;
    m.question = r["question"].get<std::string>();
    const std::string g = r["gold_answer"].get<std::string>();
    if (g.size() != 1 || g[0] < 'A' || g[0] > 'J') throw std::invalid_argument("gold_answer '" + g + "' is not a letter A-J");
    m.gold = g[0] - 'A';
    if (r.contains("options") && r["options"].is_array()) {
      m.n_options = static_cast<int64_t>(r["options"].size());
    } else {  // count the "(X) " markers embedded in the question
      for (auto it = std::sregex_iterator(m.question.begin(), m.question.end(), letter_re); it != std::sregex_iterator(); ++it)
        m.n_options = std::max<int64_t>(m.n_options, (*it)[1].str()[0] - 'A' + 1);
    }
    if (m.n_options < 2 || m.gold >= m.n_options)
      throw std::invalid_argument("gold letter " + g + " outside the " + std::to_string(m.n_options) + " options");
    if (r.contains("category") && r["category"].is_string()) m.category = r["category"].get<std::string>();
    out.push_back(std::move(m));
  }, o);
  return out;
}

}  // namespace tandem
