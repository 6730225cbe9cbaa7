// The seam between Symbolic-MoE's executors and a runtime that spreads the expert pool over
// processes (tandem moe launch, over torch.distributed from Python), as fed's Transport is for
// FedIns: jobs and answers cross it as JSON, self-contained (each job carries its expert and its
// instance's texts), so a remote rank needs nothing but its own model pool.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tandem/moe/executor.h"

namespace tandem::moe {

/// `jobs` with their experts and instances, as JSON ({batch_size, jobs: [...]}).
nlohmann::json jobs_to_json(const std::vector<Job>& jobs, const std::vector<ExpertSpec>& experts, int64_t batch_size);

/// Answers jobs received as JSON on this process's `pool` (batched by model), as JSON
/// ({answers: [{choice, logprobs}]}, in job order). Used by remote ranks, and by rank 0 for its own share.
nlohmann::json answer_jobs_json(const nlohmann::json& request, ModelPool& pool);

std::vector<Answer> answers_from_json(const nlohmann::json& reply, size_t expected);

/// A runtime's transport: the JSON request in, the JSON reply out (all answers, in job order).
using JobTransport = std::function<nlohmann::json(const nlohmann::json& request)>;

/// Registers executor `name` that sends every run's jobs through `transport` (a runtime calls
/// this before the experiment starts; the YAML then says executor: {type: <name>}).
void register_transport_executor(const std::string& name, JobTransport transport);

}  // namespace tandem::moe
