// eval: tables (CSV and Markdown).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "tandem/core/files.h"
#include "tandem/core/hash.h"
#include "tandem/core/progress.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/text_classification.h"
#include "tandem/eval/table.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

TEST(Table, CsvQuotesAndMarkdownAligns) {
  Table t({"name", "n", "score"});
  t.add_row({std::string("a,b"), int64_t{3}, 0.5});
  t.add_row({std::string("say \"hi\""), int64_t{-1}, 1.0 / 3.0});
  EXPECT_EQ(t.to_csv(), "name,n,score\n\"a,b\",3,0.5\n\"say \"\"hi\"\"\",-1,0.3333333333\n");
  EXPECT_EQ(t.to_markdown(2),
            "| name | n | score |\n| --- | ---: | ---: |\n| a,b | 3 | 0.50 |\n| say \"hi\" | -1 | 0.33 |\n");
  expect_error<std::invalid_argument>([&] { t.add_row({int64_t{1}}); }, {"1 cells, expected 3"});
}

}  // namespace
