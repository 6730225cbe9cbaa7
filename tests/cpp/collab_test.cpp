// collab: JSON-schema parsing, document chunking and answer F1, by hand.
#include <gtest/gtest.h>

#include <numeric>
#include <set>
#include <torch/torch.h>

#include "tandem/collab/json_constraint.h"
#include "tandem/core/config.h"
#include "tandem/data/long_doc_qa.h"
#include "tandem/fed/partition.h"
#include "tandem/fed/strategy.h"
#include "tandem/peft/ssf.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;

namespace {

TEST(JsonSchema, SubsetParsesAndRejectsTheRest) {
  auto s = collab::parse_json_schema(nlohmann::json::parse(R"({"type": "object", "required": ["b", "a"],
      "properties": {"a": {"type": "string", "maxLength": 5}, "b": {"enum": ["x", "y"]}}})"), "s");
  ASSERT_EQ(s->properties.size(), 2u);
  EXPECT_EQ(s->properties[0].first, "b");  // "required" order first
  EXPECT_EQ(s->properties[1].second->max_length, 5);
  expect_error<std::invalid_argument>([] { collab::parse_json_schema(nlohmann::json::parse(R"({"type": "number"})"), "cfg/schema"); }, {"cfg/schema: unsupported schema type \"number\""});
  expect_error<std::invalid_argument>([] { collab::parse_json_schema(nlohmann::json::parse(R"({"type": "array"})"), "s"); }, {"array needs \"items\""});
}

TEST(LongDoc, ChunksKeepEveryCharacterAndAnswerF1ByHand) {
  std::string doc;
  for (int i = 0; i < 50; ++i) doc += "line number " + std::to_string(i) + "\n";
  auto chunks = chunk_text(doc, 64);
  std::string joined;
  for (const auto& c : chunks) {
    EXPECT_LE(c.size(), 64u);
    joined += c;
  }
  EXPECT_EQ(joined, doc);
  // "the cat sat" vs "cat sat down": overlap 2, precision 2/3, recall 2/3 ("the" is dropped).
  EXPECT_NEAR(answer_f1({"cat sat down"}, "the cat sat"), 2.0 * (2.0 / 2) * (2.0 / 3) / (1 + 2.0 / 3), 1e-12);
  EXPECT_DOUBLE_EQ(answer_f1({"no", "blue"}, "Blue."), 1.0);
}

}  // namespace
