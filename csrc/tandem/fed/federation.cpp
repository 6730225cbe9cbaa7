#include "tandem/fed/federation.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "tandem/core/progress.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/core/hash.h"
#include "tandem/train/trainer.h"

namespace fs = std::filesystem;

namespace tandem::fed {
namespace F = torch::nn::functional;

std::vector<torch::Tensor> state_of(FedModel& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.value().detach().clone());
  return out;
}

void load_state(FedModel& m, const std::vector<torch::Tensor>& state) {
  torch::NoGradGuard ng;
  auto params = m.named_parameters();
  TORCH_CHECK(params.size() == state.size(), "state has ", state.size(), " tensors, the model ", params.size());
  size_t i = 0;
  for (auto& p : params) {
    const auto& t = state[i++];
    TORCH_CHECK(p.value().sizes() == t.sizes(), "state tensor '", p.key(), "' has shape ", t.sizes(), ", expected ",
                p.value().sizes());
    p.value().copy_(t);
  }
}

namespace {
uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a combined key: decorrelated seeds
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

Federation::Federation(const Config& root, const RuntimeOptions& rt) : rt_(rt) {
  {
    // What a resumed server must share with the run that wrote its checkpoint: every section
    // the federation reads, the seed and the dtype (not threads, device or where results go).
    YAML::Node id(YAML::NodeType::Map);
    for (const char* k : {"model", "data", "partition", "head", "strategy", "fed", "seed", "dtype"})
      if (root.node()[k]) id[k] = root.node()[k];
    YAML::Emitter e;
    e << id;
    identity_yaml_ = std::string(e.c_str()) + "\n";
  }
  s_ = FedSettings::from_config(root.at("fed"));
  s_.seed = rt.seed;
  strategy_ = create<Strategy>(root.at("strategy"));
  model_cfg_ = std::make_unique<Config>(root.at("head"));
  model_type_ = model_cfg_->type();
  auto dataset = create<FedDataset>(root.at("data"));
  auto partitioner = create<Partitioner>(root.at("partition"));
  backbone_ = std::make_unique<Backbone>(root.at("model"), rt);

  // Data: labels from every example (sorted names), hash split, frozen features once.
  auto all = dataset->load();
  if (all.empty()) throw std::runtime_error(root.at("data").where() + ": no examples");
  std::set<std::string> names;
  for (const auto& e : all) names.insert(e.label);
  labels_.assign(names.begin(), names.end());
  std::map<std::string, int64_t> id;
  for (size_t i = 0; i < labels_.size(); ++i) id[labels_[i]] = static_cast<int64_t>(i);
  std::vector<int64_t> y, train_rows, test_rows;
  const uint64_t cut = static_cast<uint64_t>(dataset->test_fraction() * 10000.0);
  for (size_t i = 0; i < all.size(); ++i) {
    y.push_back(id[all[i].label]);
    (fnv1a(all[i].id) % 10000 < cut ? test_rows : train_rows).push_back(static_cast<int64_t>(i));
  }
  FeatureSet feats = backbone_->featurize(all, y);
  train_ = feats.rows(torch::tensor(train_rows, torch::kLong));
  test_ = feats.rows(torch::tensor(test_rows, torch::kLong));
  std::vector<int64_t> train_y(train_rows.size());
  std::vector<std::string> train_dom(train_rows.size());
  for (size_t i = 0; i < train_rows.size(); ++i) {
    train_y[i] = y[static_cast<size_t>(train_rows[i])];
    train_dom[i] = all[static_cast<size_t>(train_rows[i])].domain;
  }
  parts_ = partitioner->split(train_y, train_dom, mix(rt.seed, 0xFED));
  partition_info_ = describe_partition(parts_, train_y, train_dom);
  s_.clients_per_round = std::min(s_.clients_per_round, num_clients());

  torch::manual_seed(rt.seed);
  auto make = [&] {
    std::shared_ptr<FedModel> m(create<FedModel>(*model_cfg_, backbone_->layout(),
                                                               backbone_->hidden(), num_classes())
                                    .release());
    m->to(rt.device, rt.dtype);
    return m;
  };
  model_ = make();
  worker_ = make();
  initial_ = state_of(*model_);
}

nlohmann::json Federation::describe() const {
  return {{"clients", num_clients()},
          {"classes", num_classes()},
          {"train_examples", train_.size()},
          {"test_examples", test_.size()},
          {"trainable_parameters", model_->num_trainable()},
          {"state_bytes", state_bytes()},
          {"encoder_parameters", backbone_->encoder_parameters()},
          {"ssf_parameters_per_set", backbone_->layout().size},
          {"partition", partition_info_}};
}

std::vector<int64_t> Federation::sample_clients(int64_t round) const {
  std::vector<int64_t> all(static_cast<size_t>(num_clients()));
  std::iota(all.begin(), all.end(), 0);
  std::mt19937_64 rng(mix(s_.seed, static_cast<uint64_t>(round)));
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(std::min<int64_t>(s_.clients_per_round, num_clients())));
  std::sort(all.begin(), all.end());
  return all;
}

std::vector<std::string> Federation::state_names() const {
  std::vector<std::string> out;
  for (const auto& p : model_->named_parameters()) out.push_back(p.key());
  return out;
}
std::vector<torch::Tensor> Federation::global_state() const { return state_of(*model_); }
void Federation::set_global_state(const std::vector<torch::Tensor>& s) { load_state(*model_, s); }
void Federation::reset_global() { load_state(*model_, initial_); }
int64_t Federation::state_bytes() const {
  int64_t n = 0;
  for (const auto& p : model_->parameters()) n += p.numel() * static_cast<int64_t>(p.element_size());
  return n;
}

ClientUpdate Federation::train_client(int64_t client, int64_t round, const std::vector<torch::Tensor>& global) {
  TORCH_CHECK(client >= 0 && client < num_clients(), "no client ", client, " (", num_clients(), " clients)");
  ClientUpdate up;
  up.client = client;
  const auto& rows = parts_[static_cast<size_t>(client)];
  up.num_examples = static_cast<int64_t>(rows.size());
  load_state(*worker_, global);
  worker_->train();
  // The local round is a Trainer fit: a fresh optimiser at a constant rate, no clipping, one
  // loss window over the round, FedProx's proximal term as a loss hook.
  TrainerOptions t;
  t.steps = s_.local_steps;
  t.lr = s_.lr;
  t.weight_decay = s_.weight_decay;
  t.optimizer = s_.optimizer;
  t.momentum = s_.momentum;
  t.warmup_ratio = 0.0;
  t.min_lr_ratio = 1.0;
  t.clip_norm = 0.0;
  t.log_every = s_.local_steps;
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : worker_->named_parameters()) named.emplace_back(p.key(), p.value());
  Trainer trainer(t, named, "", "client " + std::to_string(client), /*progress=*/false);
  const double mu = strategy_->proximal_mu();
  std::vector<torch::Tensor> anchor;
  for (const auto& g : global) anchor.push_back(g.to(rt_.device).detach());
  if (mu > 0)
    trainer.add_loss_hook([&] {
      torch::Tensor prox = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(rt_.device));
      for (size_t i = 0; i < named.size(); ++i) prox = prox + (named[i].second - anchor[i]).pow(2).sum();
      return 0.5 * mu * prox;
    });
  auto gen = at::detail::createCPUGenerator(mix(mix(s_.seed, static_cast<uint64_t>(round)), static_cast<uint64_t>(client) + 1));
  const auto row_t = torch::tensor(rows, torch::kLong);
  const int64_t n = row_t.size(0);
  torch::Tensor perm;
  int64_t pos = n;  // forces a shuffle before the first batch
  torch::Tensor usage;
  // Steps run in order, so the permutation carried between them is deterministic.
  const auto step_fn = [&](int64_t, int64_t) {
    std::vector<torch::Tensor> pieces;
    int64_t need = std::min(s_.batch_size, n);
    while (need > 0) {  // batches wrap into a fresh permutation: every example once per epoch
      if (pos >= n) {
        perm = torch::randperm(n, gen, torch::kLong);
        pos = 0;
      }
      const int64_t take = std::min(need, n - pos);
      pieces.push_back(perm.narrow(0, pos, take));
      pos += take;
      need -= take;
    }
    auto batch = train_.rows(row_t.index_select(0, torch::cat(pieces)));
    auto out = worker_->forward(backbone_->encoder(), batch);
    auto loss = out.ce_weight * F::cross_entropy(out.logits.to(torch::kFloat), batch.label.to(out.logits.device()));
    if (out.aux_loss.defined()) loss = loss + out.aux_loss;
    if (out.usage.defined()) usage = usage.defined() ? usage + out.usage : out.usage;
    return loss;
  };
  const TrainSummary sum = trainer.fit(step_fn);
  up.state = state_of(*worker_);
  up.usage = usage;
  up.loss = sum.final_loss;
  up.ok = true;
  return up;
}

void Federation::aggregate(const std::vector<ClientUpdate>& updates) {
  std::vector<const ClientUpdate*> ok;
  for (const auto& u : updates)
    if (u.ok) ok.push_back(&u);
  if (ok.empty()) return;  // nobody answered: the global model stays
  std::sort(ok.begin(), ok.end(), [](const ClientUpdate* a, const ClientUpdate* b) { return a->client < b->client; });
  set_global_state(strategy_->aggregate(StateLayout{state_names(), model_->entry_rows()}, global_state(), ok));
}

double Federation::evaluate() {
  torch::NoGradGuard ng;
  model_->eval();
  const int64_t N = test_.size(), B = 128;
  int64_t correct = 0;
  for (int64_t s = 0; s < N; s += B) {
    auto batch = test_.rows(torch::arange(s, std::min(N, s + B), torch::kLong));
    auto out = model_->forward(backbone_->encoder(), batch);
    correct += out.logits.argmax(1).to(torch::kCPU).eq(batch.label.to(torch::kCPU)).sum().item<int64_t>();
  }
  return N ? static_cast<double>(correct) / static_cast<double>(N) : 0.0;
}

torch::Tensor Federation::test_choices(int64_t limit) {
  torch::Tensor chosen;
  model_->instance_ssf(test_.query.narrow(0, 0, std::min(limit, test_.size())), &chosen);
  return chosen;
}

Transport Federation::simulation_transport() {
  return [this](int64_t round, const std::vector<int64_t>& clients, const std::vector<torch::Tensor>& global) {
    std::vector<ClientUpdate> out;
    for (int64_t c : clients) {
      try {
        out.push_back(train_client(c, round, global));
      } catch (const std::exception& e) {
        ClientUpdate u;
        u.client = c;
        u.error = e.what();
        out.push_back(std::move(u));
      }
    }
    return out;
  };
}

namespace {

nlohmann::json record_json(const RoundRecord& r) {
  return {{"round", r.round},       {"clients_sampled", r.clients_sampled}, {"clients_ok", r.clients_ok},
          {"bytes_up", r.bytes_up}, {"bytes_down", r.bytes_down},           {"train_loss", r.train_loss},
          {"accuracy", r.accuracy}, {"seconds", r.seconds},                 {"dropped", r.dropped}};
}

RoundRecord record_from(const nlohmann::json& j) {
  RoundRecord r;
  r.round = j.at("round");
  r.clients_sampled = j.at("clients_sampled");
  r.clients_ok = j.at("clients_ok");
  r.bytes_up = j.at("bytes_up");
  r.bytes_down = j.at("bytes_down");
  r.train_loss = j.at("train_loss");
  r.accuracy = j.at("accuracy");
  r.seconds = j.at("seconds");
  r.dropped = j.at("dropped").get<std::vector<std::string>>();
  return r;
}

}  // namespace

std::vector<RoundRecord> Federation::run(const Transport& transport, const std::string& checkpoint_dir,
                                         const std::vector<int64_t>& only_clients,
                                         const std::function<void(const RoundRecord&)>& on_round) {
  std::vector<RoundRecord> log;
  const auto names = state_names();
  const std::string ckpt = checkpoint_dir.empty() ? "" : (fs::path(checkpoint_dir) / "server_state.safetensors").string();
  int64_t start = 1;
  if (!ckpt.empty() && fs::exists(ckpt)) {  // resume after the last round that was saved
    auto st = load_safetensors(ckpt, /*mmap=*/false);
    const auto saved = st.metadata.find("config");
    if (saved == st.metadata.end())
      throw std::runtime_error(ckpt + ": this server checkpoint records no config (written by an older tandem), so "
                               "resuming it could mix two configs; delete " + checkpoint_dir + " to start over");
    const auto diff = Config::differing_keys(saved->second, identity_yaml_);
    if (!diff.empty()) {
      std::string keys;
      for (size_t i = 0; i < diff.size() && i < 12; ++i) keys += (i ? ", " : "") + diff[i];
      throw std::runtime_error(ckpt + ": the server checkpoint was written by a different config (differs in: " + keys +
                               "); resuming would report the old run: restore the config, or delete " + checkpoint_dir +
                               " (or use another run directory) to start over");
    }
    std::vector<torch::Tensor> state;
    for (const auto& n : names) state.push_back(st.at(n));
    set_global_state(state);
    for (const auto& j : nlohmann::json::parse(st.metadata.at("log"))) log.push_back(record_from(j));
    start = log.empty() ? 1 : log.back().round + 1;
  }
  const int64_t state_b = state_bytes();
  Progress bar("rounds", s_.rounds, "round");
  if (start > 1) bar.update(start - 1, "resumed");
  for (int64_t r = start; r <= s_.rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    RoundRecord rec;
    rec.round = r;
    const auto clients = only_clients.empty() ? sample_clients(r) : only_clients;
    rec.clients_sampled = static_cast<int64_t>(clients.size());
    auto updates = transport(r, clients, global_state());
    double loss = 0;
    for (const auto& u : updates) {
      if (!u.ok) {
        rec.dropped.push_back("client " + std::to_string(u.client) + ": " + u.error);
        continue;
      }
      rec.clients_ok++;
      loss += u.loss;
      rec.bytes_up += state_b + (u.usage.defined() ? u.usage.numel() * static_cast<int64_t>(u.usage.element_size()) : 0);
    }
    for (const auto& u : updates) rec.bytes_down += u.sent ? state_b : 0;
    rec.train_loss = rec.clients_ok ? loss / static_cast<double>(rec.clients_ok) : 0.0;
    aggregate(updates);
    if (r % s_.eval_every == 0 || r == s_.rounds) rec.accuracy = evaluate();
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log.push_back(rec);
    if (!ckpt.empty()) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& x : log) j.push_back(record_json(x));
      std::vector<std::pair<std::string, torch::Tensor>> tensors;
      auto state = global_state();
      for (size_t i = 0; i < names.size(); ++i) tensors.emplace_back(names[i], state[i]);
      fs::create_directories(checkpoint_dir);
      save_safetensors(ckpt, tensors, {{"log", j.dump()}, {"round", std::to_string(r)}, {"config", identity_yaml_}});
    }
    if (on_round) on_round(rec);
    char post[96];
    std::snprintf(post, sizeof post, "loss=%.3f acc=%s ok=%lld/%lld", rec.train_loss,
                  rec.accuracy < 0 ? "-" : std::to_string(rec.accuracy).substr(0, 5).c_str(),
                  static_cast<long long>(rec.clients_ok), static_cast<long long>(rec.clients_sampled));
    bar.update(1, post);
  }
  bar.finish();
  return log;
}

}  // namespace tandem::fed
