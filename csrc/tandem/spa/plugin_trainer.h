// SPA's training: the plugin (next-token cross-entropy on the task's targets, model selection by
// dev loss) and then the router (which of backbone or adapted logits predicts the gold token,
// learned on dev positions the plugin never trained on). Both run on backbone states computed
// once per example and kept in a StateCache: the backbone is frozen, so these are exactly what
// the cloud would send, and every epoch reuses them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/peft/state_cache.h"
#include "tandem/spa/options.h"
#include "tandem/spa/side_adapted_lm.h"

namespace tandem::spa {

/// One training example as token ids: the prompt, and the target ending with the end-of-turn.
struct Encoded {
  std::vector<int64_t> prompt, target;
};

/// Where a training run writes (checkpoints, curves, weights) and logs.
struct TrainingFiles {
  std::string run_dir;
  std::function<void(const std::string&)> info;
  std::string path(const std::string& name) const { return run_dir + "/" + name; }
};

class PluginTrainer {
 public:
  /// `model_id` names the backbone in cache keys (with its file size and the dtype).
  PluginTrainer(SideAdaptedLM& lm, const Options& o, std::string model_id, c10::Device device, c10::ScalarType dtype,
                uint64_t seed, int64_t pad_id);

  /// Trains the plugin on `train`, keeping the step with the lowest dev loss; writes
  /// adapter_train.ckpt (resumable), train_curve.csv and adapter.safetensors. Returns the metrics.
  nlohmann::json train_plugin(const TrainingFiles& files, const std::vector<Encoded>& train, const std::vector<Encoded>& dev);
  /// Trains the router on the dev examples' positions (1 in 5 held out for its accuracy);
  /// writes router_train.ckpt and router.safetensors. Returns the metrics (without a trainable
  /// router: how often the adapted logits beat the backbone's on dev, and nothing is trained).
  nlohmann::json train_router(const TrainingFiles& files);

 private:
  std::string state_key(const Encoded& e);
  std::vector<std::string> ensure_states(const TrainingFiles& files, const std::vector<Encoded>& enc, const std::string& what);
  NamedTensors states(const std::string& key);
  SideLogits forward_batch(const std::vector<Encoded>& enc, const std::vector<std::string>& keys,
                           const std::vector<size_t>& idx, bool want_backbone);
  torch::Tensor cached_backbone_logits(const std::vector<Encoded>& enc, const std::vector<std::string>& keys,
                                       const std::vector<size_t>& idx, const torch::Tensor& fin_rows);

  SideAdaptedLM& lm_;
  Options opts_;
  std::string model_id_;
  c10::Device device_;
  c10::ScalarType dtype_;
  uint64_t seed_;
  int64_t pad_id_;
  std::unique_ptr<StateCache> cache_;
  std::map<std::string, NamedTensors> pending_;  // states over the cache's budget, kept in memory
  std::map<std::string, torch::Tensor> logits_cache_;
  int64_t logits_bytes_ = 0;
  uint64_t model_key_ = 0;
  std::vector<Encoded> dev_enc_;
  std::vector<std::string> dev_keys_;
};

}  // namespace tandem::spa
