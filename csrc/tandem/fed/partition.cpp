#include "tandem/fed/partition.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

namespace tandem {
TANDEM_DEFINE_REGISTRY(fed::Partitioner);
}

namespace tandem::fed {
namespace {

// Non-IID by Dirichlet: for every group (a label, a domain, or a label-domain pair), client
// shares are drawn from Dir(alpha); small alpha gives each client few groups. Draws repeat
// (up to 100 times) until every client holds at least `min_examples`.
class DirichletPartitioner : public Partitioner {
 public:
  using Options = DirichletOptions;
  explicit DirichletPartitioner(const Config& cfg) : DirichletPartitioner(Options::from_config(cfg), cfg.where("min_examples")) {}
  DirichletPartitioner(const Options& o, std::string where)
      : clients_(o.clients), alpha_(o.alpha), by_(o.by), min_examples_(o.min_examples), where_(std::move(where)) {}

  std::vector<std::vector<int64_t>> split(const std::vector<int64_t>& labels, const std::vector<std::string>& domains,
                                          uint64_t seed) const override {
    std::map<std::string, std::vector<int64_t>> groups;
    for (size_t i = 0; i < labels.size(); ++i) {
      std::string g = by_ == "domain" ? domains[i] : std::to_string(labels[i]);
      if (by_ == "label_domain") g += "|" + domains[i];
      groups[g].push_back(static_cast<int64_t>(i));
    }
    if (static_cast<int64_t>(labels.size()) < clients_ * min_examples_)
      throw std::invalid_argument(where_ + ": " + std::to_string(labels.size()) + " training examples cannot give " +
                                  std::to_string(clients_) + " clients " + std::to_string(min_examples_) + " each");
    std::mt19937_64 rng(seed);
    std::gamma_distribution<double> gamma(alpha_, 1.0);
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::vector<std::vector<int64_t>> parts(static_cast<size_t>(clients_));
      for (auto& [name, idx] : groups) {
        std::vector<int64_t> order = idx;
        std::shuffle(order.begin(), order.end(), rng);
        std::vector<double> p(static_cast<size_t>(clients_));
        double sum = 0;
        for (auto& v : p) sum += (v = gamma(rng));
        // Cut points by cumulative share, so the group's examples are dealt exactly once.
        double acc = 0;
        size_t start = 0;
        for (int64_t c = 0; c < clients_; ++c) {
          acc += p[static_cast<size_t>(c)] / sum;
          const size_t end = c + 1 == clients_ ? order.size() : static_cast<size_t>(acc * static_cast<double>(order.size()));
          for (size_t j = start; j < std::max(start, end); ++j) parts[static_cast<size_t>(c)].push_back(order[j]);
          start = std::max(start, end);
        }
      }
      bool ok = true;
      for (const auto& part : parts) ok = ok && static_cast<int64_t>(part.size()) >= min_examples_;
      if (ok) {
        for (auto& part : parts) std::sort(part.begin(), part.end());
        return parts;
      }
    }
    throw std::runtime_error(where_ + ": 100 Dirichlet draws (alpha " + std::to_string(alpha_) +
                             ") all left a client below min_examples " + std::to_string(min_examples_) +
                             "; raise alpha or lower min_examples");
  }

 private:
  int64_t clients_;
  double alpha_;
  std::string by_;
  int64_t min_examples_;
  std::string where_;
};
TANDEM_REGISTER(Partitioner, "dirichlet", DirichletPartitioner);

// IID: a seeded shuffle dealt round-robin.
class IidPartitioner : public Partitioner {
 public:
  using Options = IidOptions;
  explicit IidPartitioner(const Config& cfg) : clients_(Options::from_config(cfg).clients) {}
  std::vector<std::vector<int64_t>> split(const std::vector<int64_t>& labels, const std::vector<std::string>&,
                                          uint64_t seed) const override {
    std::vector<int64_t> order(labels.size());
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 rng(seed);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::vector<int64_t>> parts(static_cast<size_t>(clients_));
    for (size_t i = 0; i < order.size(); ++i) parts[i % static_cast<size_t>(clients_)].push_back(order[i]);
    for (auto& p : parts) std::sort(p.begin(), p.end());
    return parts;
  }

 private:
  int64_t clients_;
};
TANDEM_REGISTER(Partitioner, "iid", IidPartitioner);

// Centralized: one client holds every example (the upper bound of a federated table).
class CentralizedPartitioner : public Partitioner {
 public:
  using Options = NoOptions;
  explicit CentralizedPartitioner(const Config&) {}
  std::vector<std::vector<int64_t>> split(const std::vector<int64_t>& labels, const std::vector<std::string>&,
                                          uint64_t) const override {
    std::vector<int64_t> all(labels.size());
    std::iota(all.begin(), all.end(), 0);
    return {all};
  }
};
TANDEM_REGISTER(Partitioner, "centralized", CentralizedPartitioner);

}  // namespace

nlohmann::json describe_partition(const std::vector<std::vector<int64_t>>& parts, const std::vector<int64_t>& labels,
                                  const std::vector<std::string>& domains) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t c = 0; c < parts.size(); ++c) {
    std::map<int64_t, int64_t> per_label;
    std::set<std::string> doms;
    for (auto i : parts[c]) {
      per_label[labels[static_cast<size_t>(i)]]++;
      doms.insert(domains[static_cast<size_t>(i)]);
    }
    int64_t top = 0;
    for (auto& kv : per_label) top = std::max(top, kv.second);
    out.push_back({{"client", c},
                   {"examples", parts[c].size()},
                   {"labels", per_label.size()},
                   {"domains", doms.size()},
                   {"largest_label_share", parts[c].empty() ? 0.0 : static_cast<double>(top) / parts[c].size()}});
  }
  return out;
}

}  // namespace tandem::fed
