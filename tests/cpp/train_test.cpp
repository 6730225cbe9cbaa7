// train: the Trainer's schedule, AdamW step, accumulation, checkpoints and exact resume.
#include <gtest/gtest.h>

#include <cmath>
#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/peft/state_cache.h"
#include "tandem/text/chat_template.h"
#include "tandem/train/trainer.h"
#include "test_helpers.h"

using namespace tandem;
using tandem::testing::expect_error;
using tandem::testing::TempDir;

namespace {

TEST(Trainer, WarmupThenCosineScheduleByHand) {
  TrainerOptions o;
  o.steps = 10;
  o.lr = 1.0;
  o.warmup_ratio = 0.2;  // 2 warmup steps
  o.min_lr_ratio = 0.0;
  Trainer t(o, {}, "");
  EXPECT_DOUBLE_EQ(t.lr_at(0), 0.5);  // (0 + 1) / 2
  EXPECT_DOUBLE_EQ(t.lr_at(1), 1.0);
  EXPECT_NEAR(t.lr_at(2), 1.0, 1e-12);                                  // cosine starts at the peak
  EXPECT_NEAR(t.lr_at(6), 0.5 * (1 + std::cos(M_PI * 4.0 / 8.0)), 1e-12);  // halfway: 0.5
  EXPECT_NEAR(t.lr_at(10), 0.0, 1e-12);
  o.min_lr_ratio = 0.1;
  Trainer t2(o, {}, "");
  EXPECT_NEAR(t2.lr_at(6), 0.1 + 0.9 * 0.5, 1e-12);
}

// One parameter, loss = (w - 3)^2: AdamW's first update is -lr * sign(grad) (bias-corrected
// m / sqrt(v) = g / |g|), minus lr * wd * w for the decoupled decay (Loshchilov & Hutter).
TEST(Trainer, FirstAdamWStepFollowsThePublishedRule) {
  auto w = torch::full({1}, 1.0, torch::requires_grad());
  TrainerOptions o;
  o.steps = 1;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.warmup_ratio = 0;
  o.min_lr_ratio = 1.0;
  o.clip_norm = 0;
  Trainer t(o, {{"w", w}}, "");
  t.fit([&](int64_t, int64_t) { return (w - 3).pow(2).sum(); });
  // decay first: 1 - 0.1 * 0.5 * 1 = 0.95; then Adam: 0.95 - 0.1 * (g/|g| = -1) -> 1.05 (eps aside)
  EXPECT_NEAR(w.item<double>(), 1.05, 1e-6);
}

TEST(Trainer, AccumulationAveragesMicroBatchGradients) {
  // Two micro-batches with losses 2w and 6w: the step sees d/dw of their mean = 4 (SGD-like check
  // through Adam is sign-only, so read the gradient before the update instead).
  auto w = torch::zeros({1}, torch::requires_grad());
  TrainerOptions o;
  o.steps = 1;
  o.grad_accum = 2;
  o.clip_norm = 0;
  Trainer t(o, {{"w", w}}, "");
  double seen = 0;
  t.fit([&](int64_t, int64_t micro) {
    if (micro == 1) seen = w.grad().defined() ? w.grad().item<double>() : -1;
    return (micro == 0 ? 2.0 : 6.0) * w.sum();
  });
  EXPECT_DOUBLE_EQ(seen, 1.0);  // after micro 0: 2 / 2
}

TEST(Trainer, CheckpointResumeIsExact) {
  TempDir dir;
  auto make = [] { return torch::tensor({0.5, -1.0, 2.0}, torch::requires_grad()); };
  auto loss_of = [](const torch::Tensor& w, int64_t step) {
    // The batch depends on the step alone, as the Trainer contract asks.
    auto x = torch::arange(3, torch::kFloat) + static_cast<double>(step % 4);
    return ((w * x).sum() - 1.0).pow(2);
  };
  TrainerOptions o;
  o.steps = 20;
  o.lr = 0.05;
  o.log_every = 5;
  o.checkpoint_every = 5;
  auto full = make();
  Trainer(o, {{"w", full}}, "").fit([&](int64_t s, int64_t) { return loss_of(full, s); });

  // Interrupted: stop after 10 steps (a checkpoint at 10), then a fresh Trainer resumes.
  auto part = make();
  TrainerOptions o10 = o;
  {
    Trainer t(o, {{"w", part}}, dir.file("ck.pt"));
    try {
      t.fit([&](int64_t s, int64_t) {
        if (s == 12) throw std::runtime_error("killed");
        return loss_of(part, s);
      });
    } catch (const std::runtime_error&) {
    }
  }
  auto resumed = make();  // fresh parameters: everything must come from the checkpoint
  Trainer t2(o10, {{"w", resumed}}, dir.file("ck.pt"));
  const auto s = t2.fit([&](int64_t st, int64_t) { return loss_of(resumed, st); });
  EXPECT_EQ(s.resumed_from, 10);
  EXPECT_TRUE(torch::equal(resumed, full)) << resumed << full;
  ASSERT_EQ(s.curve.size(), 4u);
  EXPECT_EQ(s.curve[1].at("step"), 10);
}

TEST(Trainer, ResumePastTheBestStepKeepsTheSameStepValueAndLoss) {
  // The evaluation bottoms out at step 4 then rises: keep_best must keep step 4 whether or not
  // the run was interrupted after it. A resumed run once read the best value back as the bits of
  // a double reinterpreted as int64 (4.6e18), so any later evaluation "won".
  TempDir dir;
  auto make = [] { return torch::tensor({1.0, 2.0}, torch::requires_grad()); };
  TrainerOptions o;
  o.steps = 10;
  o.lr = 0.1;
  o.log_every = 2;
  o.eval_every = 2;
  o.checkpoint_every = 2;
  o.keep_best = "dev";
  auto eval = [](int64_t step) { return std::map<std::string, double>{{"dev", std::abs(static_cast<double>(step) - 4.3)}}; };
  auto step_loss = [](const torch::Tensor& w) { return (w * w).sum(); };
  auto full = make();
  const auto ref = Trainer(o, {{"w", full}}, "").fit([&](int64_t, int64_t) { return step_loss(full); }, eval);
  ASSERT_EQ(ref.best_step, 4);

  for (int64_t kill_at : {7, 10}) {  // between checkpoints, and after the last one (resumed at the end)
    TempDir d;
    auto part = make();
    {
      Trainer t(o, {{"w", part}}, d.file("ck.pt"));
      try {
        t.fit([&](int64_t s, int64_t) {
          if (s == kill_at) throw std::runtime_error("killed");
          return step_loss(part);
        }, eval);
      } catch (const std::runtime_error&) {
      }
    }
    auto resumed = make();
    const auto s = Trainer(o, {{"w", resumed}}, d.file("ck.pt")).fit([&](int64_t, int64_t) { return step_loss(resumed); }, eval);
    EXPECT_EQ(s.best_step, ref.best_step) << "killed at " << kill_at;
    EXPECT_EQ(s.best_value, ref.best_value) << "killed at " << kill_at;
    EXPECT_EQ(s.final_loss, ref.final_loss) << "killed at " << kill_at;
    EXPECT_TRUE(torch::equal(resumed, full)) << "killed at " << kill_at;
  }
}

TEST(Trainer, MomentumWithoutSgdIsRefused) {
  expect_error<ConfigError>([] { TrainerOptions::from_config(Config::load_string("momentum: 0.9\n", "t.yaml")); },
                            {"t.yaml:1: momentum: expected no momentum with optimizer adamw (SGD only)"});
  EXPECT_EQ(TrainerOptions::from_config(Config::load_string("optimizer: sgd\nmomentum: 0.9\n", "t.yaml")).momentum, 0.9);
}

TEST(Trainer, CheckpointEveryMustAlignWithLogEvery) {
  const Config c = Config::load_string("steps: 10\nlog_every: 4\ncheckpoint_every: 6\n", "t.yaml");
  expect_error<ConfigError>([&] { TrainerOptions::from_config(c); }, {"t.yaml:3", "checkpoint_every", "multiple of log_every"});
}

}  // namespace
