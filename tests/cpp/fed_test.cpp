// fed: Dirichlet partitions and FedAvg's weighted mean, by hand.
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

}  // namespace
