// SPA run settings: what an `experiment: {type: spa}` config holds besides its components
// (task, adapter, router), in the one config shape every system shares: the recipe's own keys
// under `experiment:`, each component and each training budget in its own top-level section.
#pragma once

#include <cstdint>
#include <string>

#include "tandem/core/options.h"
#include "tandem/data/generation_tasks.h"
#include "tandem/models/model_paths.h"
#include "tandem/peft/adapter.h"
#include "tandem/spa/router.h"
#include "tandem/text/chat_template.h"
#include "tandem/train/trainer.h"

namespace tandem::spa {

/// Keys under `experiment:` (beside type and name, which the runner reads).
struct RecipeOptions {
  std::string method;
  std::string prompt_template = "auto";
  int64_t max_prompt_tokens = 512;
  int64_t generate_batch = 8;
  template <class V>
  void visit(V& v) {
    v.required("method", method, "zero_shot / one_shot (frozen backbone), lst (ladder side network), spa (plugin + router)",
               OneOf{{"zero_shot", "one_shot", "lst", "spa"}});
    v.field("prompt_template", prompt_template, "chat format: auto (the checkpoint's own template), or a family: llama3, chatml, gemma, llama2, mistral, phi3, plain");
    v.field("max_prompt_tokens", max_prompt_tokens, "longer prompts keep their end (the question and the turn marker)", Positive{});
    v.field("generate_batch", generate_batch, "test prompts decoded together", Positive{});
  }
  void check(const Config& c) const { text::check_chat_template_name(c, "prompt_template", prompt_template); }
  TANDEM_OPTIONS(RecipeOptions)
};

/// `train:`: the adapter's optimisation (the Trainer's keys) plus SPA's batch and dev checks.
struct AdapterTrainOptions {
  TrainerOptions trainer;
  int64_t batch_size = 8;
  int64_t dev_eval_examples = 16;
  template <class V>
  void visit(V& v) {
    v.merge(trainer);
    v.field("batch_size", batch_size, "training sequences per step", Positive{});
    v.field("dev_eval_examples", dev_eval_examples, "dev examples in each evaluation (dev loss)", NonNegative{});
  }
  TANDEM_OPTIONS(AdapterTrainOptions)
};

/// `state_cache:`: the backbone's hidden states, computed once per example and reused.
struct StateCacheOptions {
  std::string dir = ".cache/tandem/backbone_states";
  double budget_gb = 16.0;
  double logits_budget_gb = 4.0;
  template <class V>
  void visit(V& v) {
    v.field("dir", dir, "directory of cached states (shared across runs: keys hash model, dtype and tokens)");
    v.field("budget_gb", budget_gb, "disk budget; beyond it states stay in memory", Range{0.0, 1e6});
    v.field("logits_budget_gb", logits_budget_gb, "the backbone's logits at training targets kept in memory (0 = recompute)",
            Range{0.0, 1e6});
  }
  TANDEM_OPTIONS(StateCacheOptions)
};

/// Everything an SPA run reads, from the root of its config.
struct Options {
  RecipeOptions recipe;
  ModelRef model;
  AdapterTrainOptions train;
  TrainerOptions router_train;
  StateCacheOptions state_cache;
  template <class V>
  void visit(V& v) {
    v.section("experiment", recipe, "the recipe");
    v.section("model", model, "the frozen backbone (the cloud's LM)");
    v.template component<GenerationTask>("task", "the generation task and its train / dev / test counts");
    v.template component<DeviceAdapter>("adapter", "the device-side network (type spa or lst; methods lst and spa only)");
    v.template component<Router>("router", "per-token routing between backbone and adapted logits (method spa)", "mlp");
    v.section("train", train, "the adapter's training (methods lst and spa)");
    v.section("router_train", router_train, "the router's training on dev states (method spa, router mlp)");
    v.section("state_cache", state_cache, "cached backbone states (methods lst and spa)");
  }
  TANDEM_OPTIONS(Options)
};

}  // namespace tandem::spa
