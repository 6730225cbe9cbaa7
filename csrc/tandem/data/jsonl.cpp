#include "tandem/data/jsonl.h"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace tandem {

JsonlStats read_jsonl(const std::string& path,
                      const std::function<void(const nlohmann::json&, size_t)>& fn,
                      const JsonlOptions& opts) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open dataset file (set TANDEM_DATA to the data root?)");
  JsonlStats stats;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      nlohmann::json rec;
      try {
        rec = nlohmann::json::parse(line);
      } catch (const nlohmann::json::parse_error& e) {
        throw std::invalid_argument(std::string("malformed JSON (") + e.what() + ")");
      }
      if (!rec.is_object()) throw std::invalid_argument("expected a JSON object per line");
      fn(rec, lineno);
      ++stats.records;
    } catch (const std::invalid_argument& e) {
      if (!opts.skip_bad_lines) throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
      ++stats.skipped;
    } catch (const nlohmann::json::exception& e) {
      if (!opts.skip_bad_lines) throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
      ++stats.skipped;
    }
    if (opts.limit && stats.records >= opts.limit) break;
  }
  return stats;
}

std::string json_string(const nlohmann::json& r, const char* k) {
  if (!r.contains(k) || !r[k].is_string()) throw std::invalid_argument(std::string("expected a string field '") + k + "'");
  return r[k].get<std::string>();
}

std::string json_id(const nlohmann::json& r, const char* k) {
  if (!r.contains(k)) throw std::invalid_argument(std::string("expected an id field '") + k + "'");
  return r[k].is_string() ? r[k].get<std::string>() : r[k].dump();
}

}  // namespace tandem
