// Executors run (instance, expert) jobs through a ModelPool. `batched_by_expert` groups the jobs
// by expert, loads each model once, answers all of its instances in batches and unloads it;
// `naive` loads the recruited experts per instance (the baseline it is measured against).
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
  std::string user_text;  ///< what the expert is asked (question, or aggregation prompt)
  int64_t n_options;
};

struct ExecStats {
  int64_t loads = 0, peak_bytes = 0, max_resident_models = 0;
  double seconds = 0, load_seconds = 0;
};

/// `executor:` how recruited jobs run.
struct ExecutorOptions {
  int64_t batch_size = 8;
  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size, "questions one expert answers per forward pass", Positive{});
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
