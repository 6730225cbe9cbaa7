#include "tandem/eval/table.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace tandem {

Table::Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<Cell> row) {
  if (row.size() != columns_.size())
    throw std::invalid_argument("Table row has " + std::to_string(row.size()) + " cells, expected " +
                                std::to_string(columns_.size()));
  rows_.push_back(std::move(row));
}

std::string format_cell(const Cell& c, int digits) {
  if (const auto* s = std::get_if<std::string>(&c)) return *s;
  if (const auto* i = std::get_if<int64_t>(&c)) return std::to_string(*i);
  const double d = std::get<double>(c);
  if (std::isnan(d)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, d);
  return buf;
}

namespace {
std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}
std::string md_escape(const std::string& s) {
  std::string out;
  for (char ch : s) out += ch == '|' ? std::string("\\|") : ch == '\n' ? std::string(" ") : std::string(1, ch);
  return out;
}
// Full precision for CSV, so downstream tools lose nothing.
std::string csv_cell(const Cell& c) {
  if (const auto* d = std::get_if<double>(&c)) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.10g", *d);
    return buf;
  }
  return csv_escape(format_cell(c));
}
}  // namespace

std::string Table::to_csv() const {
  std::string out;
  for (size_t i = 0; i < columns_.size(); ++i) out += (i ? "," : "") + csv_escape(columns_[i]);
  out += "\n";
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) out += (i ? "," : "") + csv_cell(r[i]);
    out += "\n";
  }
  return out;
}

std::string Table::to_markdown(int digits) const {
  std::string out = "|";
  for (const auto& c : columns_) out += " " + md_escape(c) + " |";
  out += "\n|";
  for (size_t i = 0; i < columns_.size(); ++i) {
    bool numeric = !rows_.empty() && !std::holds_alternative<std::string>(rows_[0][i]);
    out += numeric ? " ---: |" : " --- |";
  }
  out += "\n";
  for (const auto& r : rows_) {
    out += "|";
    for (const auto& c : r) out += " " + md_escape(format_cell(c, digits)) + " |";
    out += "\n";
  }
  return out;
}

}  // namespace tandem
