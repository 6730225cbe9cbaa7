#include "benchmarks/adapter_bench.h"

#include <chrono>

#include "tandem/peft/adapter.h"
#include "tandem/spa/side_adapted_lm.h"
#include "tandem/train/trainer.h"

namespace tandem {

AdapterStepTiming time_adapter_steps(CausalLM& model, const std::string& adapter_yaml,
                                     const std::vector<torch::Tensor>& inputs, const torch::Tensor& final_normed,
                                     const torch::Tensor& gold, int64_t warmup, int64_t steps, double lr,
                                     bool bf16_autocast) {
  const Config c = Config::load_string(adapter_yaml, "<adapter>");
  std::shared_ptr<DeviceAdapter> adapter(create<DeviceAdapter>(c, model.config()));
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
  // A non-owning handle on the caller's model (aliasing constructor, empty owner).
  const spa::SideAdaptedLM lm(std::shared_ptr<CausalLM>(std::shared_ptr<CausalLM>(), &model), adapter, nullptr,
                              final_normed.scalar_type());
  std::chrono::steady_clock::time_point t0;
  auto step_fn = [&](int64_t step, int64_t) {
    if (step == warmup) t0 = std::chrono::steady_clock::now();
    auto out = adapter->forward(inputs, final_normed, {}, nullptr);
    return torch::nn::functional::cross_entropy(lm.adapted_logits(out, {}, base), gold);
  };
  const auto s = trainer.fit(step_fn);
  AdapterStepTiming r;
  r.seconds_per_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / steps;
  r.final_loss = s.final_loss;
  r.trainable_parameters = adapter->num_trainable();
  return r;
}

}  // namespace tandem
