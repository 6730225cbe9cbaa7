#include "tandem/spa/plugin_trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>

#include "tandem/core/formats/safetensors.h"
#include "tandem/core/files.h"
#include "tandem/core/hash.h"
#include "tandem/core/progress.h"
#include "tandem/core/runtime.h"
#include "tandem/models/batching.h"
#include "tandem/train/trainer.h"

namespace fs = std::filesystem;

namespace tandem::spa {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

torch::Tensor layer(const NamedTensors& ts, int64_t l) {
  const std::string n = "h" + std::to_string(l);
  for (const auto& [k, t] : ts)
    if (k == n) return t;
  throw std::runtime_error("state cache entry lacks " + n);
}

}  // namespace

PluginTrainer::PluginTrainer(SideAdaptedLM& lm, const Options& o, std::string model_id, c10::Device device,
                             c10::ScalarType dtype, uint64_t seed, int64_t pad_id)
    : lm_(lm), opts_(o), model_id_(std::move(model_id)), device_(device), dtype_(dtype), seed_(seed), pad_id_(pad_id) {}

// ---- backbone states (the cloud's side of training) ----

std::string PluginTrainer::state_key(const Encoded& e) {
  std::string ids;
  for (auto v : e.prompt) ids += std::to_string(v) + ",";
  ids += "|";
  for (auto v : e.target) ids += std::to_string(v) + ",";
  if (model_key_ == 0) {
    std::error_code ec;
    const auto size = fs::is_regular_file(model_id_, ec) ? fs::file_size(model_id_, ec) : 0;
    model_key_ = fnv1a(model_id_ + std::to_string(size) + dtype_name(dtype_));
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx-%016llx", static_cast<unsigned long long>(model_key_),
                static_cast<unsigned long long>(fnv1a(ids)));
  return buf;
}

/// Makes sure every example's states are cached (all layers, all positions, bf16); returns keys.
std::vector<std::string> PluginTrainer::ensure_states(const TrainingFiles& files, const std::vector<Encoded>& enc,
                                                      const std::string& what) {
  std::vector<std::string> keys;
  std::vector<size_t> missing;
  for (size_t i = 0; i < enc.size(); ++i) {
    keys.push_back(state_key(enc[i]));
    if (!cache_->contains(keys.back())) missing.push_back(i);
  }
  if (missing.empty()) return keys;
  files.info("computing backbone states for " + std::to_string(missing.size()) + " " + what + " examples");
  Progress bar("backbone states (" + what + ")", static_cast<int64_t>(missing.size()), "ex");
  CausalLM& model = lm_.backbone();
  const int64_t B = 4;
  for (size_t s = 0; s < missing.size(); s += B) {
    const size_t e = std::min(missing.size(), s + B);
    std::vector<std::vector<int64_t>> seqs;
    for (size_t j = s; j < e; ++j) {
      auto seq = enc[missing[j]].prompt;
      seq.insert(seq.end(), enc[missing[j]].target.begin(), enc[missing[j]].target.end());
      seqs.push_back(seq);
    }
    // Right padding: causal attention keeps real positions exact, and no position shift.
    auto [ids, mask] = pad_batch(seqs, pad_id_, PadSide::kRight);
    auto out = model.forward(ids.to(device_), mask.to(device_), {}, nullptr, true, -1);
    for (size_t j = 0; j < seqs.size(); ++j) {
      NamedTensors ts;
      for (size_t l = 0; l < out.hidden_states.size(); ++l)
        ts.emplace_back("h" + std::to_string(l),
                        out.hidden_states[l][j].narrow(0, 0, seqs[j].size()).to(torch::kCPU, torch::kBFloat16).contiguous());
      if (!cache_->put(keys[missing[s + j]], ts)) pending_[keys[missing[s + j]]] = ts;  // over budget: keep in memory
    }
    bar.update(static_cast<int64_t>(e - s));
  }
  bar.finish();
  return keys;
}

NamedTensors PluginTrainer::states(const std::string& key) {
  if (auto it = pending_.find(key); it != pending_.end()) return it->second;
  auto s = cache_->lookup(key);
  if (!s) throw std::runtime_error("state cache " + cache_->dir() + ": entry " + key + " vanished during training");
  return *s;
}

/// SideAdaptedLM's logits at the target positions of a batch, and the gold next tokens (in
/// SideLogits::features' companion `gold` below).
SideLogits PluginTrainer::forward_batch(const std::vector<Encoded>& enc, const std::vector<std::string>& keys,
                                        const std::vector<size_t>& idx, bool want_backbone) {
  DeviceAdapter& plugin = lm_.plugin();
  const auto& read = plugin.layers_read();
  const int64_t L = lm_.backbone().config().num_layers;
  std::vector<NamedTensors> st;
  for (size_t i : idx) st.push_back(states(keys[i]));
  std::vector<torch::Tensor> inputs, finals;
  torch::Tensor km, rows;
  if (!plugin.needs_all_positions()) {
    // Per-position plugin: only the rows predicting target tokens, all examples concatenated.
    std::vector<std::vector<torch::Tensor>> per_layer(read.size());
    for (size_t j = 0; j < idx.size(); ++j) {
      const auto& e = enc[idx[j]];
      const int64_t p0 = static_cast<int64_t>(e.prompt.size()) - 1, n = static_cast<int64_t>(e.target.size());
      for (size_t r = 0; r < read.size(); ++r) per_layer[r].push_back(layer(st[j], read[r]).narrow(0, p0, n));
      finals.push_back(layer(st[j], L).narrow(0, p0, n));
    }
    for (auto& v : per_layer) inputs.push_back(torch::cat(v).to(device_, dtype_).unsqueeze(0));
    SideAdaptedLM::BaseLogits base;
    if (opts_.state_cache.logits_budget_gb > 0)
      base = [&](const torch::Tensor& fin) { return cached_backbone_logits(enc, keys, idx, fin); };
    return lm_.train_logits(inputs, torch::cat(finals), {}, {}, base, want_backbone);
  }
  // Sequence plugin (LST): whole sequences, right-padded, the target rows gathered after.
  int64_t T = 0;
  for (size_t i : idx) T = std::max<int64_t>(T, enc[i].prompt.size() + enc[i].target.size());
  const int64_t B = static_cast<int64_t>(idx.size()), H = lm_.backbone().config().hidden_size;
  for (int64_t l : read) {
    auto x = torch::zeros({B, T, H}, torch::kBFloat16);
    for (int64_t j = 0; j < B; ++j) {
      auto h = layer(st[j], l);
      x[j].narrow(0, 0, h.size(0)).copy_(h);
    }
    inputs.push_back(x.to(device_, dtype_));
  }
  km = torch::zeros({B, T}, torch::kBool);
  std::vector<torch::Tensor> row_parts;
  for (int64_t j = 0; j < B; ++j) {
    const auto& e = enc[idx[j]];
    const int64_t len = static_cast<int64_t>(e.prompt.size() + e.target.size());
    km[j].narrow(0, 0, len).fill_(true);
    const int64_t p0 = static_cast<int64_t>(e.prompt.size()) - 1, n = static_cast<int64_t>(e.target.size());
    row_parts.push_back(torch::arange(p0, p0 + n) + j * T);
    finals.push_back(layer(st[j], L).narrow(0, p0, n));
  }
  return lm_.train_logits(inputs, torch::cat(finals), km.to(device_), torch::cat(row_parts), {}, want_backbone);
}

/// The backbone's pre-cap logits at the target rows of `idx`, from an in-memory cache filled on
/// first use (the cloud computes them once; the device trains on them every epoch). Undefined
/// when over its budget: the plugin's state then goes through the head itself.
torch::Tensor PluginTrainer::cached_backbone_logits(const std::vector<Encoded>& enc, const std::vector<std::string>& keys,
                                                    const std::vector<size_t>& idx, const torch::Tensor& fin_rows) {
  torch::NoGradGuard ng;
  CausalLM& model = lm_.backbone();
  const int64_t V = model.config().vocab_size;
  const auto budget = static_cast<int64_t>(opts_.state_cache.logits_budget_gb * (1LL << 30));
  std::vector<torch::Tensor> parts;
  int64_t row = 0;
  for (size_t i : idx) {
    const int64_t n = static_cast<int64_t>(enc[i].target.size());
    auto it = logits_cache_.find(keys[i]);
    if (it == logits_cache_.end()) {
      const int64_t bytes = n * V * 4;
      if (logits_bytes_ + bytes > budget) return {};
      auto l = model.project_vocab(fin_rows.narrow(0, row, n)).to(torch::kFloat).contiguous();
      logits_bytes_ += bytes;
      it = logits_cache_.emplace(keys[i], l).first;
    }
    parts.push_back(it->second);
    row += n;
  }
  return torch::cat(parts);
}

namespace {
torch::Tensor gold_of(const std::vector<Encoded>& enc, const std::vector<size_t>& idx, c10::Device dev) {
  std::vector<torch::Tensor> g;
  for (size_t i : idx) g.push_back(torch::tensor(enc[i].target, torch::kLong));
  return torch::cat(g).to(dev);
}
}  // namespace

nlohmann::json PluginTrainer::train_plugin(const TrainingFiles& files, const std::vector<Encoded>& train,
                                           const std::vector<Encoded>& dev) {
  const auto& so = opts_.state_cache;
  cache_ = std::make_unique<StateCache>(so.dir, static_cast<int64_t>(so.budget_gb * (1LL << 30)));
  dev_enc_ = dev;
  const double t0 = now_s();
  const auto train_keys = ensure_states(files, train, "train");
  dev_keys_ = ensure_states(files, dev_enc_, "dev");
  nlohmann::json m;
  m["state_cache"] = {{"dir", cache_->dir()}, {"bytes", cache_->bytes()}, {"budget_bytes", cache_->budget()},
                      {"hits", cache_->hits}, {"misses", cache_->misses}, {"evictions", cache_->evictions},
                      {"seconds", now_s() - t0}};
  if (train.empty()) throw std::runtime_error("task.train is 0: nothing to train the adapter on");

  const size_t N = train.size();
  const uint64_t seed = seed_;
  const int64_t B = opts_.train.batch_size;
  const TrainerOptions& to = opts_.train.trainer;
  // Batch of (step, micro) from the indices alone: a fixed shuffle per epoch.
  std::map<int64_t, std::vector<size_t>> perms;  // epoch -> its fixed shuffle
  auto batch_of = [N, seed, B, &perms, &to](int64_t step, int64_t micro) {
    std::vector<size_t> idx;
    const int64_t first = (step * to.grad_accum + micro) * B;
    for (int64_t k = first; k < first + B; ++k) {
      const int64_t epoch = k / static_cast<int64_t>(N), pos = k % static_cast<int64_t>(N);
      auto it = perms.find(epoch);
      if (it == perms.end()) {
        std::vector<size_t> perm(N);
        std::iota(perm.begin(), perm.end(), 0);
        std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(epoch));
        std::shuffle(perm.begin(), perm.end(), rng);
        it = perms.emplace(epoch, std::move(perm)).first;
      }
      idx.push_back(it->second[static_cast<size_t>(pos)]);
    }
    return idx;
  };
  std::vector<size_t> dev_idx;
  for (size_t i = 0; i < std::min<size_t>(dev_enc_.size(), static_cast<size_t>(opts_.train.dev_eval_examples)); ++i)
    dev_idx.push_back(i);
  DeviceAdapter& plugin = lm_.plugin();
  plugin.train();
  Trainer trainer(to, plugin.trainable(), files.path("adapter_train.ckpt"), "train plugin");
  auto step_fn = [&](int64_t step, int64_t micro) {
    const auto idx = batch_of(step, micro);
    auto b = forward_batch(train, train_keys, idx, false);
    return torch::nn::functional::cross_entropy(b.adapted, gold_of(train, idx, device_));
  };
  auto eval_fn = [&](int64_t) {
    std::map<std::string, double> r;
    if (dev_idx.empty()) return r;
    auto b = forward_batch(dev_enc_, dev_keys_, dev_idx, true);
    const auto gold = gold_of(dev_enc_, dev_idx, device_);
    r["dev_loss"] = torch::nn::functional::cross_entropy(b.adapted, gold).item<double>();
    r["dev_loss_backbone"] = torch::nn::functional::cross_entropy(b.backbone, gold).item<double>();
    return r;
  };
  const TrainSummary s = trainer.fit(step_fn, eval_fn);
  plugin.eval();
  write_file_atomic(files.path("train_curve.csv"), curve_to_csv(s.curve));
  save_safetensors(files.path("adapter.safetensors"), plugin.trainable(), {{"model", model_id_}});
  m["train"] = {{"steps", s.steps_done}, {"resumed_from_step", s.resumed_from}, {"final_loss", s.final_loss},
                {"seconds", s.seconds}, {"batch_size", B}, {"kept_step", s.best_step}, {"kept_dev_loss", s.best_value},
                {"seconds_per_step", s.seconds / std::max<int64_t>(1, s.steps_done - s.resumed_from)}};
  if (!s.curve.empty()) {
    const auto& last = s.curve.back();
    if (last.count("eval_dev_loss")) m["train"]["dev_loss"] = last.at("eval_dev_loss");
    if (last.count("eval_dev_loss_backbone")) m["train"]["dev_loss_backbone"] = last.at("eval_dev_loss_backbone");
  }
  files.info("plugin trained: " + std::to_string(s.steps_done) + " steps, final loss " + std::to_string(s.final_loss));
  return m;
}

nlohmann::json PluginTrainer::train_router(const TrainingFiles& files) {
  Router* router = lm_.router();  // null (no routing): the label statistics only
  // Features and labels on the dev split (held out from the plugin's training, so the labels
  // reflect where the plugin generalises, not where it memorised).
  std::vector<size_t> all(dev_enc_.size());
  std::iota(all.begin(), all.end(), 0);
  torch::Tensor S, F, D, Y;
  {
    torch::NoGradGuard ng;
    std::vector<torch::Tensor> s, f, d, y;
    for (size_t i = 0; i < all.size(); i += 8) {
      std::vector<size_t> idx(all.begin() + i, all.begin() + std::min(all.size(), i + 8));
      auto b = forward_batch(dev_enc_, dev_keys_, idx, true);
      s.push_back(b.state.to(torch::kFloat));
      f.push_back(b.features.to(torch::kFloat));
      d.push_back(distribution_features(b.backbone, b.adapted));
      y.push_back(router_labels(b.backbone, b.adapted, gold_of(dev_enc_, idx, device_)));
    }
    if (s.empty()) throw std::runtime_error("the router trains on dev examples: task.dev must be > 0");
    S = torch::cat(s);
    F = torch::cat(f);
    D = torch::cat(d);
    Y = torch::cat(y);
  }
  const double pos_rate = Y.mean().item<double>();
  nlohmann::json m = {{"label_adapter_better_rate", pos_rate}, {"train_positions", Y.size(0)}};
  if (!router || !router->trainable()) return m;
  // Hold out every 5th position to report the router's accuracy honestly.
  auto ids = torch::arange(Y.size(0));
  auto hold = (ids % 5 == 0), fit = ~hold;
  auto Sf = S.index({fit}), Ff = F.index({fit}), Df = D.index({fit}), Yf = Y.index({fit});
  const double pw = std::clamp((1 - pos_rate) / std::max(pos_rate, 1e-3), 0.2, 5.0);
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : router->named_parameters()) params.emplace_back(p.key(), p.value());
  Trainer trainer(opts_.router_train, params, files.path("router_train.ckpt"), "train router");
  auto step_fn = [&](int64_t, int64_t) {
    auto p = router->prob(Sf, Ff, Df).clamp(1e-6, 1 - 1e-6);
    auto w = Yf * pw + (1 - Yf);  // balances the classes
    return torch::binary_cross_entropy(p, Yf, w);
  };
  const auto s = trainer.fit(step_fn);
  torch::NoGradGuard ng;
  auto ph = router->prob(S.index({hold}), F.index({hold}), D.index({hold}));
  auto yh = Y.index({hold});
  const double acc = ((ph >= router->threshold).to(torch::kFloat) == yh).to(torch::kFloat).mean().item<double>();
  m["heldout_accuracy"] = acc;
  m["heldout_majority_accuracy"] = std::max(yh.mean().item<double>(), 1 - yh.mean().item<double>());
  m["final_loss"] = s.final_loss;
  save_safetensors(files.path("router.safetensors"), params);
  files.info("router trained: held-out accuracy " + std::to_string(acc));
  return m;
}

}  // namespace tandem::spa
