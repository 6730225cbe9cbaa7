// ModelPool: loads and unloads causal LMs under a memory budget, so a pool of experts larger
// than memory runs on one device. Sizes are known before loading (from the GGUF tensor table or
// the safetensors headers), so a model that would not fit evicts the least recently used idle
// models first; resident bytes are the tensors actually held, measured after each load.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "tandem/models/causal_lm.h"
#include "tandem/models/language_model.h"
#include "tandem/text/tokenizer.h"

namespace tandem {

/// Bytes the parameters of the model at `path` take in `dtype` once loaded (exact: from the
/// GGUF tensor table or the safetensors headers, no weights read).
int64_t estimate_model_bytes(const std::string& path, c10::ScalarType dtype);

/// Bytes of every parameter and buffer of `m`.
int64_t module_bytes(const torch::nn::Module& m);

struct PooledModel {
  std::shared_ptr<LanguageModel> lm;  ///< network, tokenizer, chat template, stop ids
  std::shared_ptr<CausalLM> model;    ///< lm's network
  std::shared_ptr<text::Tokenizer> tokenizer;  ///< lm's tokenizer
  int64_t bytes = 0;
};

class ModelPool {
 public:
  /// `budget_bytes` <= 0: no limit.
  ModelPool(int64_t budget_bytes, c10::Device device, c10::ScalarType dtype);

  /// The model at `path` (loaded now if absent, evicting idle models to fit the budget).
  /// Throws when the model alone exceeds the budget.
  std::shared_ptr<PooledModel> acquire(const std::string& path);
  /// Unloads `path` now (a no-op when absent).
  void unload(const std::string& path);
  void unload_all();

  int64_t resident_bytes() const { return resident_; }
  int64_t peak_resident_bytes() const { return peak_; }
  int64_t loads() const { return loads_; }
  int64_t max_resident_models() const { return max_models_; }
  int64_t budget() const { return budget_; }
  double load_seconds() const { return load_seconds_; }

 private:
  int64_t budget_;
  c10::Device device_;
  c10::ScalarType dtype_;
  std::map<std::string, std::shared_ptr<PooledModel>> loaded_;
  std::list<std::string> lru_;  // front = least recently used
  int64_t resident_ = 0, peak_ = 0, loads_ = 0, max_models_ = 0;
  double load_seconds_ = 0;
};

}  // namespace tandem
