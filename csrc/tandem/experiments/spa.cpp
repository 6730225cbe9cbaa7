// SPA experiment: a frozen pretrained LM (cloud) plus a small trained adapter (device) on one
// generation task, with baselines. `method:` picks
//   zero_shot / one_shot  the frozen backbone alone (one_shot: one train example as a demo turn),
//   lst                   a ladder side network trained on the task (adapter type lst),
//   spa                   a side plugin (adapter type spa) plus a routing classifier (router:
//                         mlp trains one on dev; always / never are the ablations).
// Training uses backbone states computed once and kept in a StateCache; generation is batched
// greedy decoding in which the router picks, per step and sequence, backbone or adapted logits.
// Reports the task metrics, the adapter-use fraction, bytes sent cloud -> device per generated
// token and the device-side parameter count and memory.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <numeric>
#include <random>

#include "tandem/core/progress.h"
#include "tandem/core/formats/safetensors.h"
#include "tandem/data/generation_tasks.h"
#include "tandem/core/hash.h"
#include "tandem/experiments/experiment.h"
#include "tandem/models/causal_lm.h"
#include "tandem/models/language_model.h"
#include "tandem/models/model_paths.h"
#include "tandem/peft/adapter.h"
#include "tandem/peft/state_cache.h"
#include "tandem/spa/options.h"
#include "tandem/spa/routed_decoding.h"
#include "tandem/spa/router.h"
#include "tandem/text/chat_template.h"
#include "tandem/train/trainer.h"

namespace fs = std::filesystem;

namespace tandem {
namespace {

struct Encoded {
  std::vector<int64_t> prompt, target;  // target ends with the end-of-turn token
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class SpaExperiment : public Experiment {
 public:
  using Options = spa::Options;

  SpaExperiment(const Config& root, const RuntimeOptions& rt) : rt_(rt), opts_(Options::from_config(root)) {
    const auto& o = opts_;
    model_path_ = o.model.resolved();
    method_ = o.recipe.method;
    task_ = create<GenerationTask>(root.at("task"));
    template_name_ = o.recipe.prompt_template;
    max_prompt_tokens_ = o.recipe.max_prompt_tokens;
    gen_batch_ = o.recipe.generate_batch;
    lm_ = load_language_model(model_path_, rt_.device, rt_.dtype, template_name_);
    model_ = lm_->model_ptr();
    trainable_ = method_ == "lst" || method_ == "spa";
    if (trainable_) {
      const Config ac = root.at("adapter");
      if (ac.type() != method_) ac.fail("type", "\"" + method_ + "\" for method " + method_);
      adapter_ = std::shared_ptr<DeviceAdapter>(create<DeviceAdapter>(ac, model_->config()));
      adapter_->to(rt_.device);
      train_opts_ = o.train.trainer;
      train_batch_ = o.train.batch_size;
      dev_eval_examples_ = o.train.dev_eval_examples;
      cache_dir_ = o.state_cache.dir;
      cache_budget_ = static_cast<int64_t>(o.state_cache.budget_gb * (1LL << 30));
      // The backbone's logits at training targets, kept in memory (0 = recompute every step).
      logits_budget_ = static_cast<int64_t>(o.state_cache.logits_budget_gb * (1LL << 30));
    } else if (root.has("adapter")) {
      root.at("adapter").fail("type", "no adapter for method " + method_ + " (lst and spa take one)");
    } else {
      // A grid shares one base config: its training budget does not apply to frozen methods.
      // Its keys were still checked (a typo fails), and the log says they were set aside.
      root.set_aside("train", "method " + method_ + " trains nothing");
      root.set_aside("state_cache", "method " + method_ + " trains nothing");
    }
    if (method_ == "spa") {
      // The router reads the plugin's state: one probe forward gives its width.
      const Config rc = root.at_or_empty("router");
      int64_t feat = 0;
      {
        torch::NoGradGuard ng;
        std::vector<torch::Tensor> probe;
        for (size_t i = 0; i < adapter_->layers_read().size(); ++i)
          probe.push_back(torch::zeros({1, 1, model_->config().hidden_size}, torch::TensorOptions().device(rt_.device)));
        feat = adapter_->forward(probe, probe.back(), {}, nullptr).features.size(-1);
      }
      const RouterDims dims{model_->config().hidden_size, feat};
      // No `type:` means the paper's router, an MLP.
      router_type_ = rc.has("type") ? rc.type() : "mlp";
      router_ = std::shared_ptr<Router>(rc.has("type") ? create<Router>(rc, dims) : create_named<Router>("mlp", rc, dims));
      router_->to(rt_.device);
      router_opts_ = o.router_train;
    } else if (root.has("router")) {
      root.at("router").fail("type", "no router for method " + method_ + " (only spa routes)");
    } else {
      root.set_aside("router_train", "only method spa trains a router");
    }
  }

  ExperimentResult run(RunContext& ctx) override {
    const double t_start = now_s();
    tok_ = lm_->tokenizer_ptr();
    tmpl_ = lm_->chat_ptr();
    stop_ids_ = lm_->stop_ids();
    const std::string eot = tmpl_->end_of_turn();
    eot_ids_ = eot.empty() ? std::vector<int64_t>{} : tok_->encode(eot);

    const auto test = task_->load(Split::kTest);
    ctx.info("task " + task_->display_name() + ": " + std::to_string(test.size()) + " test examples; method " + method_);
    ExperimentResult res;
    nlohmann::json& m = res.metrics;
    m["method"] = method_;
    m["task"] = task_->display_name();
    m["model"] = model_path_;
    m["test_examples"] = test.size();

    std::vector<GenExample> train, dev;
    if (trainable_ || method_ == "one_shot") train = task_->load(Split::kTrain);
    if (method_ == "one_shot") {
      if (train.empty()) throw std::runtime_error("one_shot needs at least one train example (task.train > 0)");
      // The demonstration: the train example with the shortest context, so the prompt fits.
      demo_ = *std::min_element(train.begin(), train.end(), [](const auto& a, const auto& b) {
        return a.context.size() + a.target.size() < b.context.size() + b.target.size();
      });
      m["demo_id"] = demo_->id;
    }
    if (trainable_) {
      dev = task_->load(Split::kDev);
      m["train_examples"] = train.size();
      m["dev_examples"] = dev.size();
      train_adapter(ctx, train, dev, m);
      if (method_ == "spa") train_router(ctx, dev, m);
      m["device_trainable_parameters"] = adapter_->num_trainable() + (router_ ? count_params(*router_) : 0);
      const int64_t head_bytes = model_->config().vocab_size * model_->config().hidden_size * 4;
      m["device_memory_bytes"] = param_bytes(*adapter_) + (router_ ? param_bytes(*router_) : 0) + head_bytes;
      m["device_memory_note"] = "adapter + router parameters + a float32 copy of the frozen vocabulary projection";
    }
    const double t_gen = now_s();
    auto preds = generate_all(ctx, test, m);
    m["generate_seconds"] = now_s() - t_gen;

    // Scores.
    std::map<std::string, double> sums;
    nlohmann::json rows = nlohmann::json::array();
    std::string jsonl;
    for (size_t i = 0; i < test.size(); ++i) {
      auto sc = task_->score(test[i], preds[i]);
      for (auto& [k, v] : sc) sums[k] += v;
      nlohmann::json r{{"id", test[i].id}, {"prediction", preds[i]}, {"references", test[i].references}, {"scores", sc}};
      if (i < token_trace_.size()) {
        r["tokens"] = token_trace_[i]["tokens"];
        r["routes"] = token_trace_[i]["routes"];
      }
      // A generation cut at max_new_tokens can end inside a UTF-8 sequence: replace, never fail.
      jsonl += r.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    ctx.write_artifact("predictions.jsonl", jsonl);
    Table t({"task", "method", "metric", "value", "examples"});
    for (auto& [k, v] : sums) {
      const double mean = test.empty() ? 0.0 : v / static_cast<double>(test.size());
      m["scores"][k] = mean;
      t.add_row({task_->display_name(), label(), k, mean, static_cast<int64_t>(test.size())});
    }
    m["primary_metric"] = task_->primary_metric();
    m["primary"] = m["scores"].value(task_->primary_metric(), 0.0);
    m["label"] = label();
    m["seconds_total"] = now_s() - t_start;
    res.table = t;
    return res;
  }

 private:
  std::string label() const {
    if (method_ == "spa") return router_type_ == "mlp" ? "SPA" : router_type_ == "always" ? "SPA (no router)" : "SPA (router never)";
    if (method_ == "lst") return "LST";
    return method_ == "one_shot" ? "one-shot" : "zero-shot";
  }
  static int64_t count_params(const torch::nn::Module& mod) {
    int64_t n = 0;
    for (const auto& p : mod.parameters()) n += p.numel();
    return n;
  }
  static int64_t param_bytes(const torch::nn::Module& mod) {
    int64_t n = 0;
    for (const auto& p : mod.parameters()) n += p.numel() * p.element_size();
    return n;
  }

  // ---- prompts ----
  Encoded encode(const GenExample& ex) const {
    std::vector<text::ChatMessage> msgs;
    if (demo_) {
      msgs.push_back({"user", task_->user_text(*demo_)});
      msgs.push_back({"assistant", demo_->target});
    }
    msgs.push_back({"user", task_->user_text(ex)});
    Encoded e;
    e.prompt = tok_->encode_for_model(tmpl_->render(msgs));
    if (static_cast<int64_t>(e.prompt.size()) > max_prompt_tokens_)  // keep the end: the question and the turn marker
      e.prompt.erase(e.prompt.begin(), e.prompt.end() - max_prompt_tokens_);
    e.target = tok_->encode(ex.target);
    e.target.insert(e.target.end(), eot_ids_.begin(), eot_ids_.end());
    return e;
  }

  // ---- backbone states (the cloud's side of training) ----
  std::string state_key(const Encoded& e) {
    std::string ids;
    for (auto v : e.prompt) ids += std::to_string(v) + ",";
    ids += "|";
    for (auto v : e.target) ids += std::to_string(v) + ",";
    if (model_key_ == 0) {
      std::error_code ec;
      const auto size = fs::is_regular_file(model_path_, ec) ? fs::file_size(model_path_, ec) : 0;
      model_key_ = fnv1a(model_path_ + std::to_string(size) + dtype_name(rt_.dtype));
    }
    char buf[40];
    std::snprintf(buf, sizeof buf, "%016llx-%016llx", static_cast<unsigned long long>(model_key_),
                  static_cast<unsigned long long>(fnv1a(ids)));
    return buf;
  }

  /// Makes sure every example's states are cached (all layers, all positions, bf16); returns keys.
  std::vector<std::string> ensure_states(RunContext& ctx, const std::vector<Encoded>& enc, const std::string& what) {
    std::vector<std::string> keys;
    std::vector<size_t> missing;
    for (size_t i = 0; i < enc.size(); ++i) {
      keys.push_back(state_key(enc[i]));
      if (!cache_->contains(keys.back())) missing.push_back(i);
    }
    if (missing.empty()) return keys;
    ctx.info("computing backbone states for " + std::to_string(missing.size()) + " " + what + " examples");
    Progress bar("backbone states (" + what + ")", static_cast<int64_t>(missing.size()), "ex");
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
      auto [ids, mask] = pad_batch(seqs, std::max<int64_t>(tok_->pad_id, 0), PadSide::kRight);
      auto out = model_->forward(ids.to(rt_.device), mask.to(rt_.device), {}, nullptr, true, -1);
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

  NamedTensors states(const std::string& key) {
    if (auto it = pending_.find(key); it != pending_.end()) return it->second;
    auto s = cache_->lookup(key);
    if (!s) throw std::runtime_error("state cache " + cache_->dir() + ": entry " + key + " vanished during training");
    return *s;
  }

  torch::Tensor layer(const NamedTensors& ts, int64_t l) const {
    const std::string n = "h" + std::to_string(l);
    for (const auto& [k, t] : ts)
      if (k == n) return t;
    throw std::runtime_error("state cache entry lacks " + n);
  }

  /// Adapter logits and backbone logits at the target positions of a batch; gold next tokens.
  struct Batch {
    torch::Tensor adapted, backbone, gold, state, features;
  };
  Batch forward_batch(const std::vector<Encoded>& enc, const std::vector<std::string>& keys, const std::vector<size_t>& idx,
                      bool want_backbone) {
    const auto dev = rt_.device;
    const auto dt = rt_.dtype;
    const auto& read = adapter_->layers_read();
    const int64_t L = model_->config().num_layers;
    Batch b;
    std::vector<torch::Tensor> golds;
    std::vector<NamedTensors> st;
    for (size_t i : idx) st.push_back(states(keys[i]));
    if (!adapter_->needs_all_positions()) {
      // Per-position plugin: only the rows predicting target tokens, all examples concatenated.
      std::vector<std::vector<torch::Tensor>> per_layer(read.size());
      std::vector<torch::Tensor> finals;
      for (size_t j = 0; j < idx.size(); ++j) {
        const auto& e = enc[idx[j]];
        const int64_t p0 = static_cast<int64_t>(e.prompt.size()) - 1, n = static_cast<int64_t>(e.target.size());
        for (size_t r = 0; r < read.size(); ++r) per_layer[r].push_back(layer(st[j], read[r]).narrow(0, p0, n));
        finals.push_back(layer(st[j], L).narrow(0, p0, n));
        golds.push_back(torch::tensor(e.target, torch::kLong));
      }
      std::vector<torch::Tensor> inputs;
      for (auto& v : per_layer) inputs.push_back(torch::cat(v).to(dev, dt).unsqueeze(0));
      torch::Tensor fin;
      {
        torch::NoGradGuard ng;
        fin = model_->final_norm(torch::cat(finals).to(dev, dt).unsqueeze(0));
      }
      auto out = adapter_->forward(inputs, fin, {}, nullptr);
      torch::Tensor base = backbone_logits_for(enc, keys, idx, fin.squeeze(0));  // pre-cap, [R, V]
      if (base.defined() && out.shift_basis.defined()) {
        // Rank-r path: logits = backbone logits + z (W U)^T; exact algebra, far fewer FLOPs.
        auto wu = model_->project_vocab(out.shift_basis.t().to(dt));  // [r, V]
        b.adapted = model_->cap_logits(base + torch::matmul(out.shift_coeff.squeeze(0).to(wu.scalar_type()), wu));
      } else {
        b.adapted = model_->cap_logits(model_->project_vocab(out.hidden.to(dt))).squeeze(0);
      }
      b.features = out.features.squeeze(0);
      b.state = fin.squeeze(0);
      if (want_backbone) {
        torch::NoGradGuard ng;
        b.backbone = model_->cap_logits(base.defined() ? base : model_->project_vocab(fin).squeeze(0));
      }
    } else {
      // Sequence adapter (LST): whole sequences, right-padded, loss rows gathered after.
      int64_t T = 0;
      for (size_t i : idx) T = std::max<int64_t>(T, enc[i].prompt.size() + enc[i].target.size());
      const int64_t B = static_cast<int64_t>(idx.size()), H = model_->config().hidden_size;
      std::vector<torch::Tensor> inputs;
      for (int64_t l : read) {
        auto x = torch::zeros({B, T, H}, torch::kBFloat16);
        for (int64_t j = 0; j < B; ++j) {
          auto h = layer(st[j], l);
          x[j].narrow(0, 0, h.size(0)).copy_(h);
        }
        inputs.push_back(x.to(dev, dt));
      }
      auto km = torch::zeros({B, T}, torch::kBool);
      std::vector<torch::Tensor> rows, finals;
      for (int64_t j = 0; j < B; ++j) {
        const auto& e = enc[idx[j]];
        const int64_t len = static_cast<int64_t>(e.prompt.size() + e.target.size());
        km[j].narrow(0, 0, len).fill_(true);
        const int64_t p0 = static_cast<int64_t>(e.prompt.size()) - 1, n = static_cast<int64_t>(e.target.size());
        rows.push_back(torch::arange(p0, p0 + n) + j * T);
        finals.push_back(layer(st[j], L).narrow(0, p0, n));
        golds.push_back(torch::tensor(e.target, torch::kLong));
      }
      auto out = adapter_->forward(inputs, torch::Tensor(), km, nullptr);
      auto sel = torch::cat(rows).to(dev);
      auto hid = out.hidden.reshape({B * T, -1}).index_select(0, sel);
      b.adapted = model_->cap_logits(model_->project_vocab(hid.to(dt)));
      b.features = out.features.reshape({B * T, -1}).index_select(0, sel);
      torch::NoGradGuard ng;
      b.state = model_->final_norm(torch::cat(finals).to(dev, dt));
      if (want_backbone) b.backbone = model_->cap_logits(model_->project_vocab(b.state));
    }
    b.gold = torch::cat(golds).to(dev);
    return b;
  }

  /// The backbone's pre-cap logits at the target rows of `idx`, from an in-memory cache filled on
  /// first use (the cloud computes them once; the device trains on them every epoch). Undefined
  /// when caching is off or over its budget: callers then project the hidden state themselves.
  torch::Tensor backbone_logits_for(const std::vector<Encoded>& enc, const std::vector<std::string>& keys,
                                    const std::vector<size_t>& idx, const torch::Tensor& fin_rows) {
    if (logits_budget_ <= 0) return {};
    torch::NoGradGuard ng;
    const int64_t V = model_->config().vocab_size;
    std::vector<torch::Tensor> parts;
    int64_t row = 0;
    for (size_t i : idx) {
      const int64_t n = static_cast<int64_t>(enc[i].target.size());
      auto it = logits_cache_.find(keys[i]);
      if (it == logits_cache_.end()) {
        const int64_t bytes = n * V * 4;
        if (logits_bytes_ + bytes > logits_budget_) return {};
        auto l = model_->project_vocab(fin_rows.narrow(0, row, n)).to(torch::kFloat).contiguous();
        logits_bytes_ += bytes;
        it = logits_cache_.emplace(keys[i], l).first;
      }
      parts.push_back(it->second);
      row += n;
    }
    return torch::cat(parts);
  }

  void train_adapter(RunContext& ctx, const std::vector<GenExample>& train, const std::vector<GenExample>& dev,
                     nlohmann::json& m) {
    cache_ = std::make_unique<StateCache>(cache_dir_, cache_budget_);
    for (const auto& ex : train) train_enc_.push_back(encode(ex));
    for (const auto& ex : dev) dev_enc_.push_back(encode(ex));
    const double t0 = now_s();
    train_keys_ = ensure_states(ctx, train_enc_, "train");
    dev_keys_ = ensure_states(ctx, dev_enc_, "dev");
    m["state_cache"] = {{"dir", cache_->dir()}, {"bytes", cache_->bytes()}, {"budget_bytes", cache_->budget()},
                        {"hits", cache_->hits}, {"misses", cache_->misses}, {"evictions", cache_->evictions},
                        {"seconds", now_s() - t0}};
    if (train_enc_.empty()) throw std::runtime_error("task.train is 0: nothing to train the adapter on");

    const size_t N = train_enc_.size();
    const uint64_t seed = rt_.seed;
    const int64_t B = train_batch_;
    // Batch of (step, micro) from the indices alone: a fixed shuffle per epoch.
    std::map<int64_t, std::vector<size_t>> perms;  // epoch -> its fixed shuffle
    auto batch_of = [N, seed, B, &perms, this](int64_t step, int64_t micro) {
      std::vector<size_t> idx;
      const int64_t first = (step * train_opts_.grad_accum + micro) * B;
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
    for (size_t i = 0; i < std::min<size_t>(dev_enc_.size(), static_cast<size_t>(dev_eval_examples_)); ++i) dev_idx.push_back(i);
    adapter_->train();
    Trainer trainer(train_opts_, adapter_->trainable(), ctx.path("adapter_train.ckpt"), "train " + method_);
    auto step_fn = [&](int64_t step, int64_t micro) {
      auto b = forward_batch(train_enc_, train_keys_, batch_of(step, micro), false);
      return torch::nn::functional::cross_entropy(b.adapted, b.gold);
    };
    auto eval_fn = [&](int64_t) {
      std::map<std::string, double> r;
      if (dev_idx.empty()) return r;
      auto b = forward_batch(dev_enc_, dev_keys_, dev_idx, true);
      r["dev_loss"] = torch::nn::functional::cross_entropy(b.adapted, b.gold).item<double>();
      r["dev_loss_backbone"] = torch::nn::functional::cross_entropy(b.backbone, b.gold).item<double>();
      return r;
    };
    const TrainSummary s = trainer.fit(step_fn, eval_fn);
    adapter_->eval();
    ctx.write_artifact("train_curve.csv", curve_to_csv(s.curve));
    save_safetensors(ctx.path("adapter.safetensors"), adapter_->trainable(), {{"method", method_}, {"model", model_path_}});
    m["train"] = {{"steps", s.steps_done}, {"resumed_from_step", s.resumed_from}, {"final_loss", s.final_loss},
                  {"seconds", s.seconds}, {"batch_size", B}, {"kept_step", s.best_step}, {"kept_dev_loss", s.best_value}, {"seconds_per_step", s.seconds / std::max<int64_t>(1, s.steps_done - s.resumed_from)}};
    if (!s.curve.empty()) {
      const auto& last = s.curve.back();
      if (last.count("eval_dev_loss")) m["train"]["dev_loss"] = last.at("eval_dev_loss");
      if (last.count("eval_dev_loss_backbone")) m["train"]["dev_loss_backbone"] = last.at("eval_dev_loss_backbone");
    }
    ctx.info("adapter trained: " + std::to_string(s.steps_done) + " steps, final loss " + std::to_string(s.final_loss));
  }

  void train_router(RunContext& ctx, const std::vector<GenExample>& dev, nlohmann::json& m) {
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
        y.push_back(router_labels(b.backbone, b.adapted, b.gold));
      }
      if (s.empty()) throw std::runtime_error("the router trains on dev examples: task.dev must be > 0");
      S = torch::cat(s);
      F = torch::cat(f);
      D = torch::cat(d);
      Y = torch::cat(y);
    }
    const double pos_rate = Y.mean().item<double>();
    m["router"] = {{"type", router_type_}, {"label_adapter_better_rate", pos_rate}, {"train_positions", Y.size(0)}};
    if (!router_->trainable()) return;
    // Hold out every 5th position to report the router's accuracy honestly.
    auto ids = torch::arange(Y.size(0));
    auto hold = (ids % 5 == 0), fit = ~hold;
    auto Sf = S.index({fit}), Ff = F.index({fit}), Df = D.index({fit}), Yf = Y.index({fit});
    const double pw = std::clamp((1 - pos_rate) / std::max(pos_rate, 1e-3), 0.2, 5.0);
    std::vector<std::pair<std::string, torch::Tensor>> params;
    for (const auto& p : router_->named_parameters()) params.emplace_back(p.key(), p.value());
    Trainer trainer(router_opts_, params, ctx.path("router_train.ckpt"), "train router");
    auto step_fn = [&](int64_t, int64_t) {
      auto p = router_->prob(Sf, Ff, Df).clamp(1e-6, 1 - 1e-6);
      auto w = Yf * pw + (1 - Yf);  // balances the classes
      return torch::binary_cross_entropy(p, Yf, w);
    };
    const auto s = trainer.fit(step_fn);
    torch::NoGradGuard ng;
    auto ph = router_->prob(S.index({hold}), F.index({hold}), D.index({hold}));
    auto yh = Y.index({hold});
    const double acc = ((ph >= router_->threshold).to(torch::kFloat) == yh).to(torch::kFloat).mean().item<double>();
    m["router"]["heldout_accuracy"] = acc;
    m["router"]["heldout_majority_accuracy"] = std::max(yh.mean().item<double>(), 1 - yh.mean().item<double>());
    m["router"]["final_loss"] = s.final_loss;
    std::vector<std::pair<std::string, torch::Tensor>> rp;
    for (const auto& p : router_->named_parameters()) rp.emplace_back(p.key(), p.value());
    save_safetensors(ctx.path("router.safetensors"), rp);
    ctx.info("router trained: held-out accuracy " + std::to_string(acc));
  }

  // ---- generation ----
  std::vector<std::string> generate_all(RunContext& ctx, const std::vector<GenExample>& test, nlohmann::json& m) {
    torch::NoGradGuard ng;
    std::vector<std::string> preds(test.size());
    token_trace_.clear();
    int64_t steps = 0, adapter_steps = 0, new_tokens = 0;
    decode_seconds_ = 0;
    decode_calls_ = 0;
    Progress bar("generate " + label(), static_cast<int64_t>(test.size()), "ex");
    const double t0 = now_s();
    for (size_t s = 0; s < test.size(); s += gen_batch_) {
      const size_t e = std::min(test.size(), s + static_cast<size_t>(gen_batch_));
      std::vector<std::vector<int64_t>> prompts;
      for (size_t i = s; i < e; ++i) prompts.push_back(encode(test[i]).prompt);
      auto out = decode(prompts, steps, adapter_steps);
      for (size_t i = s; i < e; ++i) {
        new_tokens += static_cast<int64_t>(out[i - s].size());
        // Per generated token: its text and who produced it (A = adapted, B = backbone).
        nlohmann::json pieces = nlohmann::json::array();
        for (int64_t t : out[i - s]) pieces.push_back(tok_->decode({t}, true));
        token_trace_.push_back({{"tokens", pieces}, {"routes", routes_[i - s]}});
        std::string txt = tok_->decode(out[i - s], /*skip_special=*/true);
        while (!txt.empty() && std::isspace(static_cast<unsigned char>(txt.back()))) txt.pop_back();
        while (!txt.empty() && std::isspace(static_cast<unsigned char>(txt.front()))) txt.erase(txt.begin());
        preds[i] = txt;
      }
      bar.update(static_cast<int64_t>(e - s));
    }
    bar.finish();
    const double secs = now_s() - t0;
    const auto& cf = model_->config();
    const int64_t elem = c10::elementSize(rt_.dtype);
    const bool additive = trainable_ && method_ == "spa";
    const int64_t layer_bytes = trainable_ ? static_cast<int64_t>(adapter_->layers_read().size()) * cf.hidden_size * elem : 0;
    m["generation"] = {{"tokens", new_tokens}, {"seconds", secs}, {"tokens_per_second", new_tokens / std::max(secs, 1e-9)},
                       {"decode_steps", steps}, {"decode_seconds", decode_seconds_}, {"decode_batch_steps", decode_calls_},
                       {"decode_ms_per_batch_step", decode_calls_ ? 1000 * decode_seconds_ / decode_calls_ : 0.0}};
    m["adapter_use_fraction"] = steps ? static_cast<double>(adapter_steps) / steps : 0.0;
    m["cloud_to_device_bytes_per_token"] = layer_bytes + (additive ? cf.vocab_size * 4 : 0);
    m["cloud_to_device_note"] = trainable_ ? "hidden states of the layers the adapter reads (runtime dtype)" +
                                                 std::string(additive ? " + the backbone's float32 next-token logits" : "")
                                           : "none: the backbone runs alone";
    ctx.info("generated " + std::to_string(new_tokens) + " tokens in " + std::to_string(secs) + " s");
    return preds;
  }

  /// Batched greedy decoding; per step and sequence the router picks backbone or adapted logits.
  std::vector<std::vector<int64_t>> decode(const std::vector<std::vector<int64_t>>& prompts, int64_t& steps, int64_t& adapter_steps) {
    Router* routing = router_ && router_type_ != "always" ? router_.get() : nullptr;
    spa::RoutedDecoding policy(*model_, trainable_ ? adapter_.get() : nullptr, routing, stop_ids_,
                               static_cast<int64_t>(prompts.size()));
    DecodeOptions d;
    d.max_new_tokens = task_->max_new_tokens();
    d.pad_id = std::max<int64_t>(tok_->pad_id, 0);
    const DecodeStats st = generate(*model_, prompts, policy, d);
    steps += policy.steps();
    adapter_steps += policy.adapter_steps();
    decode_seconds_ += st.decode_seconds;
    decode_calls_ += st.forwards;
    routes_ = policy.routes();
    return policy.tokens();
  }

  RuntimeOptions rt_;
  std::string model_path_, method_, template_name_, router_type_, cache_dir_;
  int64_t max_prompt_tokens_, gen_batch_, train_batch_ = 8, dev_eval_examples_ = 16, cache_budget_ = 0;
  bool trainable_ = false;
  double decode_seconds_ = 0;
  int64_t decode_calls_ = 0;
  std::vector<std::string> routes_;           // per row of the current decode: 'A'/'B' per token
  std::vector<nlohmann::json> token_trace_;   // per test example: tokens and routes
  std::unique_ptr<GenerationTask> task_;
  std::shared_ptr<CausalLM> model_;
  std::shared_ptr<DeviceAdapter> adapter_;
  std::shared_ptr<Router> router_;
  Options opts_;
  TrainerOptions train_opts_, router_opts_;
  std::shared_ptr<LanguageModel> lm_;
  std::shared_ptr<text::Tokenizer> tok_;
  std::shared_ptr<text::ChatTemplate> tmpl_;
  std::vector<int64_t> stop_ids_, eot_ids_;
  std::optional<GenExample> demo_;
  std::unique_ptr<StateCache> cache_;
  std::map<std::string, NamedTensors> pending_;
  std::map<std::string, torch::Tensor> logits_cache_;
  int64_t logits_budget_ = 0, logits_bytes_ = 0;
  uint64_t model_key_ = 0;
  std::vector<Encoded> train_enc_, dev_enc_;
  std::vector<std::string> train_keys_, dev_keys_;
};

TANDEM_REGISTER(Experiment, "spa", SpaExperiment);

}  // namespace
}  // namespace tandem
