#include "tandem/moe/profiles.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tandem/core/hash.h"

namespace tandem::moe {

std::vector<ModelProfile> build_profiles(const std::vector<std::string>& experts, size_t vocab_size,
                                         const std::vector<SkillTags>& tags, const std::vector<std::vector<bool>>& correct,
                                         double smoothing) {
  std::vector<ModelProfile> out;
  std::vector<double> count(vocab_size, 0.0);
  for (const auto& t : tags)
    for (int64_t s : t.skills) count[s] += 1;
  for (size_t e = 0; e < experts.size(); ++e) {
    ModelProfile p;
    p.expert = experts[e];
    p.skill.assign(vocab_size, 0.0);
    double right = 0;
    for (size_t i = 0; i < tags.size(); ++i) {
      right += correct[e][i] ? 1 : 0;
      for (int64_t s : tags[i].skills) p.skill[s] += correct[e][i] ? 1.0 : -1.0;
    }
    for (size_t s = 0; s < vocab_size; ++s) p.skill[s] /= (count[s] + smoothing > 0 ? count[s] + smoothing : 1.0);
    p.strength = tags.empty() ? 0.0 : right / static_cast<double>(tags.size());
    out.push_back(std::move(p));
  }
  return out;
}

nlohmann::json profiles_to_json(const std::vector<ModelProfile>& profiles, const std::vector<std::string>& vocab) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& p : profiles) {
    nlohmann::json skills = nlohmann::json::object();
    for (size_t s = 0; s < vocab.size(); ++s)
      if (p.skill[s] != 0) skills[vocab[s]] = p.skill[s];
    j[p.expert] = {{"strength", p.strength}, {"skills", skills}};
  }
  return j;
}

std::vector<double> expert_scores(const std::vector<ModelProfile>& profiles, const SkillTags& tags) {
  std::vector<double> out;
  for (const auto& p : profiles) {
    double s = 0;
    for (int64_t k : tags.skills) s += p.skill[k];
    out.push_back(s * p.strength);
  }
  return out;
}

std::vector<int64_t> recruit(const std::vector<double>& scores, const RecruitOptions& o, const std::string& instance_key) {
  const int64_t n = static_cast<int64_t>(scores.size()), k = std::min<int64_t>(o.k, n);
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (o.mode == "sample") {
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ULL ^ fnv1a(instance_key));
    std::vector<int64_t> chosen;
    std::vector<double> w(n);
    const double mx = *std::max_element(scores.begin(), scores.end());
    for (int64_t i = 0; i < n; ++i) w[i] = std::exp((scores[i] - mx) / std::max(o.temperature, 1e-6));
    for (int64_t r = 0; r < k; ++r) {
      if (std::accumulate(w.begin(), w.end(), 0.0) <= 0)  // underflow: the rest are equally likely
        for (int64_t i = 0; i < n; ++i)
          if (std::find(chosen.begin(), chosen.end(), i) == chosen.end()) w[i] = 1.0;
      std::discrete_distribution<int64_t> d(w.begin(), w.end());
      const int64_t pick = d(rng);
      chosen.push_back(pick);
      w[pick] = 0;  // without replacement
    }
    return chosen;
  }
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  idx.resize(k);
  return idx;
}

}  // namespace tandem::moe
