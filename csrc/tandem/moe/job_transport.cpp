#include "tandem/moe/job_transport.h"

#include <memory>
#include <stdexcept>

namespace tandem::moe {

nlohmann::json jobs_to_json(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, int64_t batch_size) {
  nlohmann::json req{{"batch_size", batch_size}, {"jobs", nlohmann::json::array()}, {"experts", nlohmann::json::array()}};
  for (const auto& e : experts)
    req["experts"].push_back({{"name", e.name}, {"model", e.model}, {"system", e.system}, {"adapter_run", e.adapter_run}, {"answer", e.answer}});
  for (const auto& j : jobs) {
    nlohmann::json r{{"instance", j.instance}, {"expert", j.expert}, {"user_text", j.user_text}, {"n_options", j.n_options},
                     {"allowed", j.allowed}};
    if (j.item) r["item"] = {{"id", j.item->id}, {"stem", j.item->stem}, {"options", j.item->options}};
    req["jobs"].push_back(std::move(r));
  }
  return req;
}

nlohmann::json answer_jobs_json(const nlohmann::json& request, ModelPool& pool) {
  std::vector<ExpertSpec> experts;
  for (const auto& e : request.at("experts"))
    experts.push_back({e.at("name"), e.at("model"), e.at("system"), e.at("adapter_run"), e.at("answer")});
  const auto& rj = request.at("jobs");
  std::vector<McInstance> items(rj.size());  // one per job: jobs point into this vector
  std::vector<Job> jobs;
  for (size_t k = 0; k < rj.size(); ++k) {
    const auto& r = rj[k];
    Job j{r.at("instance").get<size_t>(), r.at("expert").get<int64_t>(), r.at("user_text").get<std::string>(),
          r.at("n_options").get<int64_t>(), nullptr, r.at("allowed").get<std::vector<int64_t>>()};
    if (j.expert < 0 || static_cast<size_t>(j.expert) >= experts.size())
      throw std::invalid_argument("moe job " + std::to_string(k) + ": expert index " + std::to_string(j.expert) + " out of range");
    if (r.contains("item")) {
      items[k].id = r["item"].at("id");
      items[k].stem = r["item"].at("stem");
      items[k].options = r["item"].at("options").get<std::vector<std::string>>();
      items[k].n_options = j.n_options;
      j.item = &items[k];
    }
    jobs.push_back(std::move(j));
  }
  ExecutorOptions o;
  o.batch_size = request.at("batch_size").get<int64_t>();
  auto ex = create_named<Executor>("batched_by_model", o);
  const auto answers = ex->run(jobs, experts, pool);
  nlohmann::json out{{"answers", nlohmann::json::array()}};
  for (const auto& a : answers) out["answers"].push_back({{"choice", a.choice}, {"logprobs", a.logprobs}});
  return out;
}

std::vector<Answer> answers_from_json(const nlohmann::json& reply, size_t expected) {
  const auto& arr = reply.at("answers");
  if (arr.size() != expected)
    throw std::runtime_error("moe transport: " + std::to_string(arr.size()) + " answers for " + std::to_string(expected) +
                             " jobs (a rank lost work; no answer is counted as wrong)");
  std::vector<Answer> out;
  for (const auto& a : arr) out.push_back({a.at("choice").get<int64_t>(), a.at("logprobs").get<std::vector<double>>()});
  return out;
}

namespace {
class TransportExecutor : public Executor {
 public:
  TransportExecutor(const ExecutorOptions& o, JobTransport t) : batch_(o.batch_size), transport_(std::move(t)) {}
  std::vector<Answer> run(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, ModelPool&) override {
    if (jobs.empty()) return {};
    return answers_from_json(transport_(jobs_to_json(jobs, experts, batch_)), jobs.size());
  }

 private:
  int64_t batch_;
  JobTransport transport_;
};
}  // namespace

void register_transport_executor(const std::string& name, JobTransport transport) {
  Registry<Executor>::instance().add(
      name, [transport](const ExecutorOptions& o) -> std::unique_ptr<Executor> { return std::make_unique<TransportExecutor>(o, transport); },
      "runtime:" + name);
}

}  // namespace tandem::moe
