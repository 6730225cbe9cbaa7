// Timing of one adapter training step (forward through the adapter and the frozen vocabulary
// projection, cross-entropy, backward, AdamW update) on given backbone states, for
// benchmarks/bench_spa_step.py to compare with the same plugin written in plain PyTorch.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"

namespace tandem {

struct AdapterStepTiming {
  double seconds_per_step = 0;
  double final_loss = 0;
  int64_t trainable_parameters = 0;
};

/// Builds the adapter `adapter_yaml` describes for `model`, then runs `warmup` + `steps`
/// optimiser steps on `inputs` (one [1, R, H] tensor per layer the adapter reads), the
/// backbone's final-normed state `final_normed` [1, R, H] and targets `gold` [R]; lr fixed.
AdapterStepTiming time_adapter_steps(CausalLM& model, const std::string& adapter_yaml,
                                     const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                                     const torch::Tensor& gold, int64_t warmup, int64_t steps, double lr,
                                     bool bf16_autocast);

}  // namespace tandem
