// SPA experiment (Liu et al., 2024): a frozen LM (cloud) plus a small trained plugin (device) on
// one generation task, with its baselines. `method:` picks
//   zero_shot / one_shot  the frozen backbone alone (one_shot: a train example as a demo turn),
//   lst                   Ladder Side-Tuning (adapter type lst),
//   spa                   a SideAdaptedLM: plugin (spa or spa_ladder) + router (mlp; always = none).
// 1. the task's splits, 2. plugin and router trained on cached backbone states (spa/plugin_trainer),
// 3. routed decoding of the test prompts (spa/routed_decoding), 4. scores and the device's share.
#include <chrono>
#include <optional>

#include "tandem/data/generation_tasks.h"
#include "tandem/experiments/experiment.h"
#include "tandem/models/language_model.h"
#include "tandem/spa/plugin_trainer.h"
#include "tandem/spa/routed_decoding.h"
#include "tandem/text/chat_template.h"

namespace tandem {
namespace {

class SpaExperiment : public Experiment {
 public:
  using Options = spa::Options;

  SpaExperiment(const Config& root, const RuntimeOptions& rt) : rt_(rt), o_(Options::from_config(root)) {
    const std::string& method = o_.recipe.method;
    task_ = create<GenerationTask>(root.at("task"));
    lm_ = load_language_model(o_.model.resolved(), rt.device, rt.dtype, o_.recipe.prompt_template);
    if (method != "lst" && method != "spa") {
      label_ = method == "one_shot" ? "one-shot" : "zero-shot";
      if (root.has("adapter")) root.at("adapter").fail("type", "no adapter for method " + method + " (lst and spa take one)");
      if (root.has("router")) root.at("router").fail("type", "no router for method " + method + " (only spa routes)");
      // A grid shares one base config: its training budget does not apply to frozen methods.
      for (const char* k : {"train", "state_cache", "router_train"}) root.set_aside(k, "method " + method + " trains nothing");
      return;
    }
    const Config ac = root.at("adapter");
    const bool fits = method == "lst" ? ac.type() == "lst" : ac.type() == "spa" || ac.type() == "spa_ladder";
    if (!fits) ac.fail("type", method == "lst" ? "\"lst\" for method lst" : "\"spa\" or \"spa_ladder\" for method spa");
    label_ = method == "lst" ? "LST" : ac.type() == "spa_ladder" ? "SPA-ladder"
             : ac.has("placement") && ac.get<std::string>("placement") == "sequential" ? "SPA sequential" : "SPA";
    if (method == "lst") {
      if (root.has("router")) root.at("router").fail("type", "no router for method lst (only spa routes)");
      root.set_aside("router_train", "only method spa trains a router");
    }
    const Config rc = root.at_or_empty("router");
    side_ = spa::SideAdaptedLM::from_config(lm_->model_ptr(), ac, method == "spa" ? &rc : nullptr, rt.device, rt.dtype, &router_type_);
    if (method == "spa" && router_type_ != "mlp") label_ += router_type_ == "always" ? " (no router)" : " (router " + router_type_ + ")";
  }

  ExperimentResult run(RunContext& ctx) override {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string& method = o_.recipe.method;
    const auto& tok = lm_->tokenizer();
    const std::string eot = lm_->chat().end_of_turn();
    eot_ids_ = eot.empty() ? std::vector<int64_t>{} : tok.encode(eot);
    // 1. The splits (the test file is read once, here).
    const auto test = task_->load(Split::kTest);
    ctx.info("task " + task_->display_name() + ": " + std::to_string(test.size()) + " test examples; method " + method);
    ExperimentResult res;
    nlohmann::json& m = res.metrics;
    m.update({{"method", method}, {"label", label_}, {"task", task_->display_name()}, {"model", o_.model.resolved()}, {"test_examples", test.size()}});
    if (method == "one_shot") {  // the demonstration: the shortest train example, so the prompt fits
      const auto train = task_->load(Split::kTrain);
      if (train.empty()) throw std::runtime_error("one_shot needs at least one train example (task.train > 0)");
      demo_ = *std::min_element(train.begin(), train.end(), [](const auto& a, const auto& b) {
        return a.context.size() + a.target.size() < b.context.size() + b.target.size();
      });
      m["demo_id"] = demo_->id;
    }
    // 2. Training on backbone states: the plugin, then the router.
    if (side_) {
      std::vector<spa::Encoded> train, dev;
      for (const auto& ex : task_->load(Split::kTrain)) train.push_back(encode(ex));
      for (const auto& ex : task_->load(Split::kDev)) dev.push_back(encode(ex));
      m.update({{"train_examples", train.size()}, {"dev_examples", dev.size()}});
      spa::PluginTrainer trainer(*side_, o_, o_.model.resolved(), rt_.device, rt_.dtype, rt_.seed, std::max<int64_t>(tok.pad_id, 0));
      const spa::TrainingFiles files{ctx.run_dir, [&ctx](const std::string& s) { ctx.info(s); }};
      m.update(trainer.train_plugin(files, train, dev));
      if (method == "spa") m["router"] = trainer.train_router(files);  // "always": label statistics only
      if (method == "spa") m["router"]["type"] = router_type_;
      m.update(side_->device_footprint());
    }
    // 3. Routed greedy decoding of the test prompts.
    std::vector<std::vector<int64_t>> prompts;
    for (const auto& ex : test) prompts.push_back(encode(ex).prompt);
    DecodeOptions d;
    d.max_new_tokens = task_->max_new_tokens();
    d.pad_id = std::max<int64_t>(tok.pad_id, 0);
    const auto r = spa::decode_all(lm_->model(), side_.get(), prompts, lm_->stop_ids(), d, o_.recipe.generate_batch, "generate " + label_);
    m.update(r.metrics());
    // 4. Scores, predictions with each token's route, and the cloud/device accounting.
    std::map<std::string, double> sums;
    std::string jsonl;
    for (size_t i = 0; i < test.size(); ++i) {
      std::string txt = tok.decode(r.tokens[i], /*skip_special=*/true);
      txt.erase(0, txt.find_first_not_of(" \t\n\r"));
      txt.erase(txt.find_last_not_of(" \t\n\r") + 1);
      const auto sc = task_->score(test[i], txt);
      for (const auto& [k, v] : sc) sums[k] += v;
      nlohmann::json pieces = nlohmann::json::array();
      for (int64_t t : r.tokens[i]) pieces.push_back(tok.decode({t}, true));
      // A generation cut at max_new_tokens can end inside a UTF-8 sequence: replace, never fail.
      jsonl += nlohmann::json{{"id", test[i].id}, {"prediction", txt}, {"references", test[i].references}, {"scores", sc},
                              {"tokens", pieces}, {"token_ids", r.tokens[i]}, {"routes", r.routes[i]}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    ctx.write_artifact("predictions.jsonl", jsonl);
    Table t({"task", "method", "metric", "value", "examples"});
    for (const auto& [k, v] : sums) {
      m["scores"][k] = test.empty() ? 0.0 : v / static_cast<double>(test.size());
      t.add_row({task_->display_name(), label_, k, m["scores"][k].get<double>(), static_cast<int64_t>(test.size())});
    }
    const bool routed = method == "spa";  // the router (and an additive plugin) needs the backbone's logits
    m["cloud_to_device_bytes_per_token"] = m.value("layer_bytes_per_token", int64_t{0}) + (routed ? lm_->model().config().vocab_size * 4 : 0);
    m["cloud_to_device_note"] = side_ ? "hidden states of the layers the adapter reads (runtime dtype)" +
                                            std::string(routed ? " + the backbone's float32 next-token logits" : "")
                                      : "none: the backbone runs alone";
    m["primary_metric"] = task_->primary_metric();
    m["primary"] = m["scores"].value(task_->primary_metric(), 0.0);
    m["seconds_total"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.table = t;
    return res;
  }

 private:
  spa::Encoded encode(const GenExample& ex) const {
    std::vector<text::ChatMessage> msgs;
    if (demo_) msgs = {{"user", task_->user_text(*demo_)}, {"assistant", demo_->target}};
    msgs.push_back({"user", task_->user_text(ex)});
    spa::Encoded e{lm_->tokenizer().encode_for_model(lm_->chat().render(msgs)), lm_->tokenizer().encode(ex.target)};
    const auto cap = static_cast<size_t>(o_.recipe.max_prompt_tokens);
    if (e.prompt.size() > cap) e.prompt.erase(e.prompt.begin(), e.prompt.end() - cap);  // keep the question and turn marker
    e.target.insert(e.target.end(), eot_ids_.begin(), eot_ids_.end());
    return e;
  }

  RuntimeOptions rt_;
  Options o_;
  std::unique_ptr<GenerationTask> task_;
  std::shared_ptr<LanguageModel> lm_;
  std::unique_ptr<spa::SideAdaptedLM> side_;
  std::string label_, router_type_;
  std::vector<int64_t> eot_ids_;
  std::optional<GenExample> demo_;
};

TANDEM_REGISTER(Experiment, "spa", SpaExperiment);

}  // namespace
}  // namespace tandem
