// Table: results as rows and named columns, rendered to CSV (RFC 4180) and Markdown.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace tandem {

using Cell = std::variant<std::string, double, int64_t>;

class Table {
 public:
  Table() = default;
  explicit Table(std::vector<std::string> columns);

  /// Appends a row; throws std::invalid_argument if its width differs from the columns'.
  void add_row(std::vector<Cell> row);
  const std::vector<std::string>& columns() const { return columns_; }
  const std::vector<std::vector<Cell>>& rows() const { return rows_; }
  bool empty() const { return columns_.empty(); }

  std::string to_csv() const;
  /// Markdown with numbers at `digits` significant digits after the point.
  std::string to_markdown(int digits = 4) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<Cell>> rows_;
};

std::string format_cell(const Cell& c, int digits = 4);

}  // namespace tandem
