// Executors run (instance, expert) jobs through a ModelPool. `batched_by_expert` groups the jobs
// by expert, loads each model once, answers all of its instances in batches and unloads it;
// `batched_by_model` goes further for experts that share a backbone: all their jobs run together,
// a prompt asked of several of them (adapter experts differ only by their plugin) runs through
// the backbone once and each row through its own plugin (PEFT's mixed-adapter batches);
// `naive` loads the recruited experts per instance (the baseline they are measured against).
// Both return the same answers: the answer of a question does not depend on its batch-mates
// (left padding with an exact attention mask).
#pragma once

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "tandem/core/config.h"
#include "tandem/core/registry.h"
#include "tandem/moe/model_pool.h"
#include "tandem/moe/answering.h"

#include "tandem/core/options.h"

namespace tandem::moe {

struct Job {
  size_t instance;
  int64_t expert;
  std::string user_text;  ///< what the expert is asked in letter mode (question, or aggregation prompt)
  int64_t n_options;
  const McInstance* item = nullptr;  ///< the instance itself (loglik mode scores its options)
  std::vector<int64_t> allowed;      ///< options the answer may take (empty = all; loglik mode)
};

struct ExecStats {
  int64_t loads = 0, peak_bytes = 0, max_resident_models = 0;
  double seconds = 0, load_seconds = 0;
};

/// `executor:` how recruited jobs run.
struct ExecutorOptions {
  int64_t batch_size = 8;
  std::string type = "batched_by_expert";
  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size, "prompts (letter mode) or scored options (loglik mode) per forward pass", Positive{});
    v.field("type", type, "batched_by_expert, batched_by_model (experts on one backbone share forwards), naive, or one a "
            "runtime registers (distributed: tandem moe launch)");
  }
  TANDEM_OPTIONS(ExecutorOptions)
};

class Executor {
 public:
  static constexpr const char* kRegistryKind = "moe.executor";
  using Factory = std::unique_ptr<Executor>(const ExecutorOptions&);
  virtual ~Executor() = default;
  /// Answers every job; result[j] belongs to jobs[j].
  virtual std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool& pool) = 0;
};

}  // namespace tandem::moe

namespace tandem {
TANDEM_DECLARE_REGISTRY(moe::Executor);
}
