// Trainer: the optimisation loop every trainable tandem method uses (SPA plugins, LST, routers,
// FedIns clients' local rounds). AdamW (or SGD), linear warmup then cosine decay, gradient
// clipping and accumulation, loss hooks (FedProx's proximal term), optional bfloat16 autocast,
// evaluation every N steps, a loss curve in CSV, a progress bar, and atomic checkpoints every N
// steps with exact resume.
//
// Exact resume rests on one contract: the step function derives its batch from the step index
// alone (no hidden RNG state). Then parameters + AdamW moments + step are the whole state, and a
// run killed at any point and restarted ends bit-identical to an uninterrupted one.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "tandem/core/config.h"
#include "tandem/core/options.h"

namespace tandem {

struct TrainerOptions {
  int64_t steps = 100;
  int64_t grad_accum = 1;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double warmup_ratio = 0.05;
  double min_lr_ratio = 0.1;
  double clip_norm = 1.0;
  int64_t eval_every = 0;
  int64_t checkpoint_every = 0;
  int64_t log_every = 10;
  bool bf16_autocast = false;
  std::string keep_best;
  std::string optimizer = "adamw";
  double momentum = 0.0;

  template <class V>
  void visit(V& v) {
    v.field("steps", steps, "optimiser steps", Positive{});
    v.field("grad_accum", grad_accum, "micro-batches per optimiser step", Positive{});
    v.field("lr", lr, "peak learning rate (AdamW)", Range{0.0, 10.0});
    v.field("weight_decay", weight_decay, "AdamW decoupled weight decay", Range{0.0, 10.0});
    v.field("warmup_ratio", warmup_ratio, "fraction of steps with linear warmup", Range{0.0, 1.0});
    v.field("min_lr_ratio", min_lr_ratio, "cosine decay ends at lr times this", Range{0.0, 1.0});
    v.field("clip_norm", clip_norm, "gradient-norm clipping (0 = none)", Range{0.0, 1e6});
    v.field("eval_every", eval_every, "steps between evaluations (0 = only at the end)", NonNegative{});
    v.field("checkpoint_every", checkpoint_every, "steps between atomic checkpoints (0 = none); a multiple of log_every", NonNegative{});
    v.field("log_every", log_every, "loss-curve rows: mean loss over this many steps", Positive{});
    v.field("bf16_autocast", bf16_autocast, "run the step function under bfloat16 autocast");
    v.field("keep_best", keep_best, "eval metric to minimise; its best step's parameters are kept (\"\" = the last)");
    v.field("optimizer", optimizer, "adamw, or sgd (with momentum)", OneOf{{"adamw", "sgd"}});
    v.field("momentum", momentum, "SGD momentum", Range{0.0, 0.999});
  }
  /// Checkpoints fall on loss-curve boundaries so a resumed run logs the same windows.
  void check(const Config& c) const;
  TANDEM_OPTIONS(TrainerOptions)
};

struct TrainSummary {
  int64_t steps_done = 0;
  int64_t resumed_from = 0;  ///< step of the checkpoint resumed from (0 = fresh start)
  int64_t best_step = 0;     ///< step whose parameters were kept (keep_best), else steps_done
  double best_value = 0;
  double final_loss = 0;     ///< mean loss of the last log window
  double seconds = 0;        ///< wall time of this process's share of training
  std::vector<std::map<std::string, double>> curve;  ///< rows: step, lr, loss, eval metrics
};

class Trainer {
 public:
  /// Returns the mean loss of micro-batch `micro` of step `step` (backward is done here).
  using StepFn = std::function<torch::Tensor(int64_t step, int64_t micro)>;
  /// Metrics at `step` (no grad); keys become curve columns prefixed "eval_".
  using EvalFn = std::function<std::map<std::string, double>(int64_t step)>;
  /// A term added to every micro-batch's loss before backward (e.g. a proximal penalty).
  using LossHook = std::function<torch::Tensor()>;

  /// `params`: the trainable tensors by stable name (names key the checkpoint).
  /// `checkpoint_path`: file for checkpoints ("" = none); an existing one is resumed.
  /// `progress`: show a progress bar (off for many short fits, e.g. federated clients).
  Trainer(TrainerOptions opts, std::vector<std::pair<std::string, torch::Tensor>> params, std::string checkpoint_path,
          std::string label = "train", bool progress = true);
  void add_loss_hook(LossHook hook) { hooks_.push_back(std::move(hook)); }

  TrainSummary fit(const StepFn& step_fn, const EvalFn& eval_fn = {});

  /// The learning rate at optimiser step `step` (0-based).
  double lr_at(int64_t step) const;
  const TrainerOptions& options() const { return opts_; }

 private:
  void save_checkpoint(int64_t step, const std::vector<std::map<std::string, double>>& curve);
  bool load_checkpoint(int64_t& step, std::vector<std::map<std::string, double>>& curve);

  TrainerOptions opts_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  std::string ckpt_path_, label_;
  bool progress_;
  std::vector<LossHook> hooks_;
  std::unique_ptr<torch::optim::Optimizer> opt_;
  std::vector<torch::Tensor> best_;  // copies of params_ at the best evaluation (keep_best)
  double best_value_ = std::numeric_limits<double>::infinity();
  int64_t best_step_ = 0;
};

/// Writes a curve (list of rows with the same or growing keys) as CSV text.
std::string curve_to_csv(const std::vector<std::map<std::string, double>>& curve);

}  // namespace tandem
