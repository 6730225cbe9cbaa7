#include "benchmarks/adapter_bench.h"

#include <chrono>

#include "tandem/peft/adapter.h"
#include "tandem/train/trainer.h"

namespace tandem {

AdapterStepTiming time_adapter_steps(CausalLM& model, const std::string& adapter_yaml,
                                     const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                                     const torch::Tensor& gold, int64_t warmup, int64_t steps, double lr,
                                     bool bf16_autocast) {
  const Config c = Config::load_string(adapter_yaml, "<adapter>");
  auto adapter = create<DeviceAdapter>(c, model.config());
  c.check_unused();
  adapter->to(final_normed.device());
  TrainerOptions o;
  o.steps = warmup + steps;
  o.lr = lr;
  o.warmup_ratio = 0;
  o.min_lr_ratio = 1.0;  // constant lr: timing only
  o.clip_norm = 1.0;
  o.log_every = o.steps;
  o.bf16_autocast = bf16_autocast;
  Trainer trainer(o, adapter->trainable(), "", "bench step");
  // As in the spa experiment: the backbone's logits come with the states (computed once, as the
  // cloud sends them), and an additive plugin's shift goes through the rank-r product W U.
  torch::Tensor base;
  {
    torch::NoGradGuard ng;
    base = model.project_vocab(final_normed).squeeze(0).to(torch::kFloat).contiguous();
  }
  std::chrono::steady_clock::time_point t0;
  auto step_fn = [&](int64_t step, int64_t) {
    if (step == warmup) t0 = std::chrono::steady_clock::now();
    auto out = adapter->forward(inputs, final_normed, {}, nullptr);
    torch::Tensor logits;
    if (out.shift_basis.defined()) {
      auto wu = model.project_vocab(out.shift_basis.t().to(final_normed.scalar_type()));
      logits = model.cap_logits(base + torch::matmul(out.shift_coeff.squeeze(0).to(wu.scalar_type()), wu));
    } else {
      logits = model.cap_logits(model.project_vocab(out.hidden)).squeeze(0);
    }
    return torch::nn::functional::cross_entropy(logits, gold);
  };
  const auto s = trainer.fit(step_fn);
  AdapterStepTiming r;
  r.seconds_per_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  r.final_loss = s.final_loss;
  r.trainable_parameters = adapter->num_trainable();
  return r;
}

}  // namespace tandem
