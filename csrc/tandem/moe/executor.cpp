#include "tandem/moe/executor.h"

#include <algorithm>
#include <numeric>

#include "tandem/core/progress.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(moe::Executor);
}

namespace tandem::moe {
namespace {

std::vector<Answer> answer_jobs(PooledModel& pm, const ExpertSpec& ex, const std::vector<const Job*>& jobs, int64_t batch) {
  // A tandem-made expert: the backbone plus a plugin trained by an SPA run (small: loaded per use).
  std::shared_ptr<DeviceAdapter> adapter = ex.adapter_run.empty() ? nullptr : load_trained_adapter(ex.adapter_run, *pm.model);
  std::vector<std::string> texts;
  std::vector<int64_t> nopt;
  for (const Job* j : jobs) {
    texts.push_back(j->user_text);
    nopt.push_back(j->n_options);
  }
  return answer_letters(*pm.model, *pm.tokenizer, pm.lm->chat(), ex.system, texts, nopt, batch, adapter.get());
}

class BatchedByExpert : public Executor {
 public:
  explicit BatchedByExpert(const ExecutorOptions& o) : batch_(o.batch_size) {}
  std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool& pool) override {
    std::vector<Answer> out(jobs.size());
    // Experts in model order, so experts sharing weights (personas) share one load.
    std::vector<int64_t> order(experts.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return experts[a].model < experts[b].model; });
    Progress bar("experts (batched)", static_cast<int64_t>(jobs.size()), "job");
    for (size_t oi = 0; oi < order.size(); ++oi) {
      const int64_t e = order[oi];
      std::vector<const Job*> mine;
      std::vector<size_t> where;
      for (size_t j = 0; j < jobs.size(); ++j)
        if (jobs[j].expert == e) {
          mine.push_back(&jobs[j]);
          where.push_back(j);
        }
      if (!mine.empty()) {
        auto pm = pool.acquire(experts[e].model);
        auto ans = answer_jobs(*pm, experts[e], mine, batch_);
        for (size_t k = 0; k < ans.size(); ++k) out[where[k]] = std::move(ans[k]);
        bar.update(static_cast<int64_t>(mine.size()));
      }
      // Unload once no later expert uses the same weights.
      if (oi + 1 == order.size() || experts[order[oi + 1]].model != experts[e].model) pool.unload(experts[e].model);
    }
    return out;
  }

 private:
  int64_t batch_;
};

class Naive : public Executor {
 public:
  explicit Naive(const ExecutorOptions&) {}
  std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool& pool) override {
    std::vector<Answer> out(jobs.size());
    Progress bar("experts (naive)", static_cast<int64_t>(jobs.size()), "job");
    for (size_t j = 0; j < jobs.size(); ++j) {
      const auto& ex = experts[jobs[j].expert];
      auto pm = pool.acquire(ex.model);
      out[j] = answer_jobs(*pm, ex, {&jobs[j]}, 1)[0];
      pm.reset();
      pool.unload(ex.model);  // per instance: load, answer, unload
      bar.update(1);
    }
    return out;
  }
};

TANDEM_REGISTER(Executor, "batched_by_expert", BatchedByExpert);
TANDEM_REGISTER(Executor, "naive", Naive);

}  // namespace
}  // namespace tandem::moe
