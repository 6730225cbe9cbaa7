// moe: recruiting by hand.
#include <gtest/gtest.h>

#include "tandem/moe/profiles.h"
#include "test_helpers.h"

using namespace tandem;

namespace {

TEST(Recruit, TopKTakesTheBestScoresAndBreaksTiesByOrder) {
  moe::RecruitOptions o;
  o.k = 2;
  EXPECT_EQ(moe::recruit({0.1, 0.9, 0.5}, o, "q1"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(moe::recruit({0.5, 0.2, 0.5}, o, "q1"), (std::vector<int64_t>{0, 2}));
  o.k = 5;
  EXPECT_EQ(moe::recruit({0.3, 0.2}, o, "q1").size(), 2u) << "k is capped at the pool size";
}

TEST(Recruit, SamplingIsSeededPerInstanceAndWithoutReplacement) {
  moe::RecruitOptions o;
  o.k = 3;
  o.mode = "sample";
  o.seed = 4;
  const auto a = moe::recruit({1.0, 0.0, 2.0, 0.5}, o, "q7");
  EXPECT_EQ(a, moe::recruit({1.0, 0.0, 2.0, 0.5}, o, "q7"));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end()) << "no expert twice";
}

}  // namespace
