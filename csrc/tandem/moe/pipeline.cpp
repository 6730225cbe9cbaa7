#include "tandem/moe/pipeline.h"

#include <algorithm>

namespace tandem::moe {

Pipeline::Pipeline(std::vector<ExpertSpec> experts, SkillExtractor& skills, ModelPool& pool, RecruitOptions recruit,
                   double smoothing, const ExecutorOptions& executor)
    : experts_(std::move(experts)),
      skills_(skills),
      pool_(pool),
      recruit_(std::move(recruit)),
      smoothing_(smoothing),
      executor_(create_named<Executor>(executor.type, executor)) {}

std::vector<SkillTags> Pipeline::tag(const std::vector<McInstance>& xs) const {
  std::vector<std::string> texts;
  for (const auto& x : xs) texts.push_back(x.question);
  return skills_.tag(texts);
}

ExpertAnswers Pipeline::answer_all(const std::vector<McInstance>& xs) const {
  std::vector<Job> jobs;
  for (size_t e = 0; e < experts_.size(); ++e)
    for (size_t i = 0; i < xs.size(); ++i) jobs.push_back({i, static_cast<int64_t>(e), question_prompt(xs[i]), xs[i].n_options, &xs[i], {}});
  const auto flat = executor_->run(jobs, experts_, pool_);
  ExpertAnswers out(experts_.size());
  for (size_t e = 0; e < experts_.size(); ++e)
    out[e].assign(flat.begin() + static_cast<long>(e * xs.size()), flat.begin() + static_cast<long>((e + 1) * xs.size()));
  return out;
}

std::vector<ModelProfile> Pipeline::build_profiles(const std::vector<McInstance>& val, const std::vector<SkillTags>& tags,
                                                   const ExpertAnswers& answers) const {
  std::vector<std::vector<bool>> correct(experts_.size(), std::vector<bool>(val.size()));
  std::vector<std::string> names;
  for (size_t e = 0; e < experts_.size(); ++e) {
    names.push_back(experts_[e].name);
    for (size_t i = 0; i < val.size(); ++i) correct[e][i] = answers[e][i].choice == val[i].gold;
  }
  return moe::build_profiles(names, skills_.vocabulary().size(), tags, correct, smoothing_);
}

std::vector<std::vector<int64_t>> Pipeline::recruit(const std::vector<McInstance>& xs, const std::vector<SkillTags>& tags,
                                                    const std::vector<ModelProfile>& profiles) const {
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < xs.size(); ++i) out.push_back(moe::recruit(expert_scores(profiles, tags[i]), recruit_, xs[i].id));
  return out;
}

std::vector<Answer> Pipeline::aggregate(int64_t aggregator, const std::vector<McInstance>& xs,
                                        const std::vector<std::vector<int64_t>>& recruited,
                                        const ExpertAnswers& answers) const {
  std::vector<Job> jobs;
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<std::pair<std::string, int64_t>> proposals;
    std::vector<int64_t> allowed;
    for (int64_t e : recruited[i]) {
      const int64_t c = answers[static_cast<size_t>(e)][i].choice;
      proposals.emplace_back(experts_[static_cast<size_t>(e)].name, c);
      if (std::find(allowed.begin(), allowed.end(), c) == allowed.end()) allowed.push_back(c);
    }
    std::sort(allowed.begin(), allowed.end());
    jobs.push_back({i, aggregator, aggregation_prompt(xs[i], proposals), xs[i].n_options, &xs[i], allowed});
  }
  if (experts_[static_cast<size_t>(aggregator)].answer == "loglik") {
    // The aggregator's option scores do not depend on the proposals (its prompt is the question
    // alone), and it already answered every instance as an expert: its choice among the proposed
    // options comes from those scores, no model run.
    std::vector<Answer> out;
    for (const auto& j : jobs) {
      Answer a = answers[static_cast<size_t>(aggregator)][j.instance];
      a.choice = j.allowed.front();
      for (int64_t k : j.allowed)
        if (a.logprobs[static_cast<size_t>(k)] > a.logprobs[static_cast<size_t>(a.choice)]) a.choice = k;
      out.push_back(std::move(a));
    }
    return out;
  }
  return executor_->run(jobs, experts_, pool_);
}

AggregatorChoice Pipeline::choose_aggregator(const std::vector<int64_t>& candidates, const std::vector<McInstance>& val,
                                             const std::vector<std::vector<int64_t>>& recruited,
                                             const ExpertAnswers& answers) const {
  AggregatorChoice c;
  double best = -1;
  for (int64_t a : candidates) {
    const auto ans = aggregate(a, val, recruited, answers);
    double acc = 0;
    for (size_t i = 0; i < val.size(); ++i) acc += ans[i].choice == val[i].gold;
    acc /= static_cast<double>(std::max<size_t>(1, val.size()));
    c.validation.push_back(acc);
    if (acc > best) {
      best = acc;
      c.expert = a;
    }
  }
  return c;
}

}  // namespace tandem::moe
