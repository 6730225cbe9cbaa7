// peft: SSF layout and per-instance hook, the backbone-state cache.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <set>
#include <torch/torch.h>

#include "tandem/collab/json_constraint.h"
#include "tandem/core/config.h"
#include "tandem/data/long_doc_qa.h"
#include "tandem/fed/partition.h"
#include "tandem/fed/strategy.h"
#include "tandem/peft/ssf.h"
#include "tandem/peft/state_cache.h"
#include "tandem/text/chat_template.h"
#include "tandem/train/trainer.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

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

TEST(StateCache, EvictsLeastRecentlyUsedBeyondTheBudget) {
  TempDir dir;
  const NamedTensors a{{"h", torch::ones({256})}};  // 1 KiB each
  StateCache cache(dir.file("c"), 2500);
  ASSERT_TRUE(cache.put("a", a));
  ASSERT_TRUE(cache.put("b", a));
  ASSERT_TRUE(cache.lookup("a").has_value());  // "a" is now the most recent
  ASSERT_TRUE(cache.put("c", a));              // over budget: "b" goes
  EXPECT_FALSE(cache.lookup("b").has_value());
  EXPECT_TRUE(cache.lookup("a").has_value());
  EXPECT_TRUE(cache.lookup("c").has_value());
  EXPECT_EQ(cache.evictions, 1);
  EXPECT_LE(cache.bytes(), 2500);
  // An entry bigger than the whole budget is refused, and nothing is evicted for it.
  EXPECT_FALSE(cache.put("huge", {{"h", torch::ones({1024})}}));
  EXPECT_TRUE(cache.lookup("a").has_value());
  // Contents round-trip.
  EXPECT_TRUE(torch::equal(cache.lookup("c")->at(0).second, a[0].second));
}

}  // namespace
