#include "tandem/moe/executor.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "tandem/core/progress.h"

namespace tandem {
TANDEM_DEFINE_REGISTRY(moe::Executor);
}

namespace tandem::moe {
namespace {

// Answers `jobs` (all on the model `pm` holds) in their experts' modes.
std::vector<Answer> answer_jobs(PooledModel& pm, const std::vector<ExpertSpec>& experts, const std::vector<const Job*>& jobs,
                                int64_t batch) {
  // Tandem-made experts: the backbone plus a plugin trained by an SPA run (small: loaded per call).
  std::map<int64_t, std::shared_ptr<DeviceAdapter>> adapters;
  std::vector<Question> letter, loglik;
  std::vector<size_t> letter_at, loglik_at;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = *jobs[j];
    const ExpertSpec& ex = experts[static_cast<size_t>(job.expert)];
    auto& a = adapters[job.expert];
    if (!ex.adapter_run.empty() && !a) a = load_trained_adapter(ex.adapter_run, *pm.model);
    Question q{ex.system, job.user_text, job.item, job.n_options, job.allowed, a.get()};
    if (ex.answer == "loglik") {
      loglik.push_back(std::move(q));
      loglik_at.push_back(j);
    } else {
      letter.push_back(std::move(q));
      letter_at.push_back(j);
    }
  }
  std::vector<Answer> out(jobs.size());
  const auto tl = answer_letters(*pm.model, *pm.tokenizer, pm.lm->chat(), letter, batch);
  for (size_t k = 0; k < tl.size(); ++k) out[letter_at[k]] = tl[k];
  const auto tg = answer_loglik(*pm.model, *pm.tokenizer, pm.lm->chat(), loglik, batch);
  for (size_t k = 0; k < tg.size(); ++k) out[loglik_at[k]] = tg[k];
  return out;
}

// Experts in model order, so experts sharing weights (personas, plugins) share one load.
std::vector<int64_t> model_order(const std::vector<ExpertSpec>& experts) {
  std::vector<int64_t> order(experts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return experts[a].model < experts[b].model; });
  return order;
}

class BatchedByExpert : public Executor {
 public:
  explicit BatchedByExpert(const ExecutorOptions& o) : batch_(o.batch_size) {}
  std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool& pool) override {
    std::vector<Answer> out(jobs.size());
    const auto order = model_order(experts);
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
        auto ans = answer_jobs(*pm, experts, mine, batch_);
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

class BatchedByModel : public Executor {
 public:
  explicit BatchedByModel(const ExecutorOptions& o) : batch_(o.batch_size) {}
  std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool& pool) override {
    std::vector<Answer> out(jobs.size());
    Progress bar("experts (batched by model)", static_cast<int64_t>(jobs.size()), "job");
    std::map<std::string, std::vector<size_t>> by_model;  // model -> its jobs, instance-major
    std::vector<size_t> idx(jobs.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return jobs[a].instance < jobs[b].instance; });
    for (size_t j : idx) by_model[experts[static_cast<size_t>(jobs[j].expert)].model].push_back(j);
    for (const auto& [model, mine] : by_model) {
      std::vector<const Job*> js;
      for (size_t j : mine) js.push_back(&jobs[j]);
      {
        auto pm = pool.acquire(model);
        auto ans = answer_jobs(*pm, experts, js, batch_);
        for (size_t k = 0; k < ans.size(); ++k) out[mine[k]] = std::move(ans[k]);
      }
      pool.unload(model);
      bar.update(static_cast<int64_t>(mine.size()));
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
      out[j] = answer_jobs(*pm, experts, {&jobs[j]}, 1)[0];
      pm.reset();
      pool.unload(ex.model);  // per instance: load, answer, unload
      bar.update(1);
    }
    return out;
  }
};

TANDEM_REGISTER(Executor, "batched_by_expert", BatchedByExpert);
TANDEM_REGISTER(Executor, "batched_by_model", BatchedByModel);
TANDEM_REGISTER(Executor, "naive", Naive);

}  // namespace
}  // namespace tandem::moe
