// FedIns and Minions pieces that need no model: SSF layout and hook, Dirichlet partitions,
// FedAvg's weighted mean, JSON-schema parsing, document chunking and answer F1, by hand.
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

EncoderConfig tiny_encoder() {
  EncoderConfig e;
  e.hidden_size = 4;
  e.intermediate_size = 6;
  e.num_layers = 3;
  return e;
}

TEST(Ssf, LayoutSizesAndIdentity) {
  auto L = SsfLayout::for_encoder(tiny_encoder(), Config::load_string("layers: 2\nsites: [attn_out, ffn_hidden]\n", "t"));
  EXPECT_EQ(L.first_layer, 1);
  ASSERT_EQ(L.sites.size(), 4u);
  EXPECT_EQ(L.size, 2 * (4 + 6) * 2);  // (gamma + beta) x (H + I) x 2 layers
  auto id = L.identity();
  auto x = torch::randn({2, 3, 4});
  EXPECT_TRUE(torch::equal(L.hook(id)(1, EncoderSite::kAttnOut, x), x));
  EXPECT_TRUE(torch::equal(L.hook(id)(0, EncoderSite::kAttnOut, x), x));  // layer 0 has no SSF
}

TEST(Ssf, PerInstanceScaleAndShiftByHand) {
  auto L = SsfLayout::for_encoder(tiny_encoder(), Config::load_string("layers: 1\nsites: [block_out]\n", "t"));
  ASSERT_EQ(L.size, 8);
  // Instance 0: gamma 2, beta 1; instance 1: gamma 0.5, beta -3.
  auto p = torch::tensor({2., 2., 2., 2., 1., 1., 1., 1., .5, .5, .5, .5, -3., -3., -3., -3.}, torch::kFloat).view({2, 8});
  auto x = torch::ones({2, 5, 4});
  auto y = L.hook(p)(2, EncoderSite::kBlockOut, x);
  EXPECT_TRUE(torch::allclose(y[0], torch::full({5, 4}, 3.0)));
  EXPECT_TRUE(torch::allclose(y[1], torch::full({5, 4}, -2.5)));
  expect_error<std::invalid_argument>([&] { SsfLayout::for_encoder(tiny_encoder(), Config::load_string("sites: [qkv]\n", "t")); }, {"unknown SSF site \"qkv\""});
}

TEST(Partition, DirichletDealsEveryExampleOnceAndIsSeeded) {
  std::vector<int64_t> labels;
  std::vector<std::string> domains;
  for (int i = 0; i < 600; ++i) {
    labels.push_back(i % 6);
    domains.push_back(i % 2 ? "a" : "b");
  }
  auto p = create<fed::Partitioner>(
      Config::load_string("type: dirichlet\nclients: 5\nalpha: 0.5\nmin_examples: 20\n", "t"));
  auto parts = p->split(labels, domains, 7);
  std::vector<int64_t> all;
  for (const auto& q : parts) {
    EXPECT_GE(q.size(), 20u);
    all.insert(all.end(), q.begin(), q.end());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> want(600);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(all, want);
  EXPECT_EQ(parts, p->split(labels, domains, 7));
  EXPECT_NE(parts, p->split(labels, domains, 8));
}

TEST(Strategy, FedAvgIsTheExampleWeightedMean) {
  fed::ClientUpdate a, b;
  a.num_examples = 1;
  b.num_examples = 3;
  a.state = {torch::tensor({4.0f, 0.0f})};
  b.state = {torch::tensor({0.0f, 8.0f})};
  auto m = fed::weighted_mean({&a, &b}, 0);
  EXPECT_TRUE(torch::allclose(m, torch::tensor({1.0f, 6.0f})));
}

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
