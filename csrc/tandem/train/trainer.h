// Trainer: the optimisation loop every trainable tandem method uses (SPA plugins, LST, routers,
// FedIns clients). AdamW, linear warmup then cosine decay, gradient clipping and accumulation,
// optional bfloat16 autocast, evaluation every N steps, a loss curve in CSV, a progress bar,
// and atomic checkpoints every N steps with exact resume.
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

namespace tandem {

struct TrainerOptions {
  int64_t steps = 100;           ///< optimiser steps
  int64_t grad_accum = 1;        ///< micro-batches per step
  double lr = 1e-3;
  double weight_decay = 0.0;
  double warmup_ratio = 0.05;    ///< fraction of steps with linear warmup
  double min_lr_ratio = 0.1;     ///< cosine decays to lr * this
  double clip_norm = 1.0;        ///< 0 = no clipping
  int64_t eval_every = 0;        ///< 0 = evaluate only at the end (if an eval function is given)
  int64_t checkpoint_every = 0;  ///< 0 = no checkpoints
  int64_t log_every = 10;        ///< loss-curve rows (mean loss over the last N steps)
  bool bf16_autocast = false;    ///< run the step function under CPU/CUDA bfloat16 autocast
  /// Model selection on held-out data: an eval metric to minimise ("" = keep the last
  /// parameters). At the end the parameters of the best evaluation are restored.
  std::string keep_best;

  /// Reads `train:` keys: steps, grad_accum, lr, weight_decay, warmup_ratio, min_lr_ratio,
  /// clip_norm, eval_every, checkpoint_every, log_every, bf16_autocast.
  static TrainerOptions from_config(const Config& c);
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

  /// `params`: the trainable tensors by stable name (names key the checkpoint).
  /// `checkpoint_path`: file for checkpoints ("" = none); an existing one is resumed.
  Trainer(TrainerOptions opts, std::vector<std::pair<std::string, torch::Tensor>> params, std::string checkpoint_path,
          std::string label = "train");

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
  std::unique_ptr<torch::optim::AdamW> opt_;
  std::vector<torch::Tensor> best_;  // copies of params_ at the best evaluation (keep_best)
  double best_value_ = std::numeric_limits<double>::infinity();
  int64_t best_step_ = 0;
};

/// Writes a curve (list of rows with the same or growing keys) as CSV text.
std::string curve_to_csv(const std::vector<std::map<std::string, double>>& curve);

}  // namespace tandem
