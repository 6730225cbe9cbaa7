// spa: SideAdaptedLM and the routed decoding policy. An untrained plugin leaves the backbone's logits exactly
// unchanged (its up-projection starts at zero), so routed decoding must reproduce greedy
// decoding of the backbone token for token, through the hidden-state path.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "tandem/peft/adapter.h"
#include "tandem/spa/router.h"
#include "tandem/spa/routed_decoding.h"
#include "test_helpers.h"
#include "tiny_models.h"

using namespace tandem;
using namespace tandem::testing;

namespace {

TEST(RoutedDecoding, WithoutAdapterIsGreedyDecoding) {
  auto m = tiny_llama();
  const std::vector<std::vector<int64_t>> ps{{1, 2, 3, 4}, {9, 8}};
  spa::RoutedDecoding policy(nullptr, {}, 2);
  DecodeOptions d;
  d.max_new_tokens = 7;
  d.pad_id = kEos;
  generate(*m, ps, policy, d);
  for (size_t b = 0; b < ps.size(); ++b) {
    EXPECT_EQ(policy.tokens()[b], greedy_by_hand(*m, ps[b], 7)) << b;
    EXPECT_EQ(policy.routes()[b], std::string(7, 'B'));
  }
  EXPECT_EQ(policy.steps(), 14);
  EXPECT_EQ(policy.adapter_steps(), 0);
}

TEST(RoutedDecoding, UntrainedPluginReproducesTheBackbone) {
  auto m = tiny_llama();
  for (const char* yaml : {"type: spa\nrank: 4\nevery: 1\n", "type: spa\nrank: 4\nlayers: [1, 3]\n"}) {
    const Config c = Config::load_string(yaml, "adapter.yaml");
    std::shared_ptr<DeviceAdapter> a(create<DeviceAdapter>(c, m->config()).release());
    const std::vector<std::vector<int64_t>> ps{{1, 2, 3, 4}, {9, 8}};
    spa::SideAdaptedLM lm(m, a, nullptr, torch::kFloat);
    spa::RoutedDecoding policy(&lm, {}, 2);
    DecodeOptions d;
    d.max_new_tokens = 6;
    d.pad_id = kEos;
    const auto st = generate(*m, ps, policy, d);
    EXPECT_EQ(st.prefill_positions, 8) << "one left-padded pass (the plugin reads every position)";
    for (size_t b = 0; b < ps.size(); ++b) {
      EXPECT_EQ(policy.tokens()[b], greedy_by_hand(*m, ps[b], 6)) << yaml << " row " << b;
      EXPECT_EQ(policy.routes()[b], std::string(6, 'A'));
    }
  }
}

// The routed step takes an additive plugin's adapted logits as backbone + z (W U)^T with W U
// cached; they must equal the plugin's state through the head (the no-router path), and follow
// the plugin when its weights change in place (an optimizer step) after a cached step.
TEST(SideAdaptedLM, RoutedStepMatchesThePluginStateThroughTheHead) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  auto m = tiny_llama();
  const Config c = Config::load_string("type: spa\nrank: 4\nevery: 1\n", "adapter.yaml");
  std::shared_ptr<DeviceAdapter> a(create<DeviceAdapter>(c, m->config()).release());
  torch::Tensor up;
  for (const auto& p : a->named_parameters())
    if (p.key() == "up") up = p.value();
  ASSERT_TRUE(up.defined());
  up.normal_(0, 0.5);
  const Config rc = Config::load_string("type: always\n", "router.yaml");
  const RouterDims dims{m->config().hidden_size, 4};
  std::shared_ptr<Router> always(create_named<Router>("always", rc, dims).release());
  std::shared_ptr<Router> never(create_named<Router>("never", rc, dims).release());
  spa::SideAdaptedLM routed(m, a, always, torch::kFloat), plain(m, a, nullptr, torch::kFloat), backbone(m, a, never, torch::kFloat);
  const auto ids = torch::tensor({{1, 2, 3, 4}, {9, 8, 7, 6}}, torch::kLong);
  const auto mask = torch::ones({2, 4}, torch::kLong);
  const auto out = m->forward(ids, mask, {}, nullptr, true, -1);
  for (int round = 0; round < 2; ++round) {
    torch::Tensor chose;
    const auto got = routed.next_token(out.hidden_states, mask, nullptr, &chose);
    const auto want = plain.next_token(out.hidden_states, mask, nullptr, nullptr);
    EXPECT_TRUE(chose.all().item<bool>());
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "round " << round;
    EXPECT_GT((want - backbone.next_token(out.hidden_states, mask, nullptr, nullptr)).abs().max().item<double>(), 1e-2)
        << "the plugin must move the logits for this test to mean anything";
    up.mul_(-2.0);  // an in-place update: the cached W U must be recomputed
  }
  const auto base = m->forward(ids, mask, {}, nullptr, false, 1).logits.select(1, 0);
  EXPECT_LT((backbone.next_token(out.hidden_states, mask, nullptr, nullptr) - base).abs().max().item<double>(), 1e-5);
}

TEST(AdapterLayers, ListEveryAndAllAreReadAndChecked) {
  ModelConfig mc = tiny_llama_config();
  auto layers_of = [&](const std::string& yaml) {
    return create<DeviceAdapter>(Config::load_string(yaml, "a.yaml"), mc)->layers_read();
  };
  EXPECT_EQ(layers_of("type: spa\nlayers: [3, 1, 1]\n"), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(layers_of("type: spa\nlayers: all\n"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(layers_of("type: spa\nevery: 2\n"), (std::vector<int64_t>{1, 3}));
  expect_error<ConfigError>([&] { layers_of("type: spa\nlayers: [4]\n"); }, {"a.yaml:2: layers: expected layer indices in [0, 3]"});
  expect_error<ConfigError>([&] { layers_of("type: spa\nlayers: [1]\nevery: 2\n"); }, {"a.yaml:3: every"});
  expect_error<ConfigError>([&] { layers_of("type: spa\nlayers: some\n"); }, {"layers: expected a list of integers or \"all\""});
  expect_error<ConfigError>([&] { layers_of("type: spa\nplacement: sequential\nevery: 2\n"); }, {"every: expected no every with placement: sequential"});
}

}  // namespace
