// JSONL reading: one JSON object per line; a bad line names the file and line number.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace tandem {

struct JsonlOptions {
  /// Skip malformed lines (counting them) instead of failing on the first.
  bool skip_bad_lines = false;
  /// Stop after this many records (0 = all).
  size_t limit = 0;
};

struct JsonlStats {
  size_t records = 0;
  size_t skipped = 0;
};

/// Calls `fn(record, line_number)` for each record of `path`. `fn` may throw
/// std::invalid_argument for a record it cannot use; that too names file:line (or is
/// skipped-and-counted). Blank lines are ignored.
JsonlStats read_jsonl(const std::string& path,
                      const std::function<void(const nlohmann::json&, size_t)>& fn,
                      const JsonlOptions& opts = {});

/// Field `k` of a record as a string; std::invalid_argument when absent or not a string.
std::string json_string(const nlohmann::json& r, const char* k);
/// Field `k` as an id: a string as is, a number as its JSON text.
std::string json_id(const nlohmann::json& r, const char* k);

}  // namespace tandem
