// The "lm_multiple_choice" experiment: a pretrained LM answers multiple-choice questions by
// log-likelihood: each option is scored as a continuation of the question, the best wins.
// Reported: accuracy with summed and with per-token log-probabilities, against chance.
#include <algorithm>
#include <chrono>
#include <numeric>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "tandem/core/progress.h"
#include "tandem/data/jsonl.h"
#include "tandem/data/mmlu_pro.h"
#include "tandem/data/sciq.h"
#include "tandem/core/hash.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/lm_multiple_choice.h"
#include "tandem/models/causal_lm.h"
#include "tandem/models/language_model.h"
#include "tandem/models/generation.h"
#include "tandem/models/model_paths.h"
#include "tandem/text/tokenizer.h"

namespace tandem {

TANDEM_DEFINE_REGISTRY(ChoiceDataset);

namespace {

// The keys every question file takes.

// SciQ as four options; their order is a fixed hash of the id, so the gold answer is not
// always first.
class SciQ : public ChoiceDataset {
 public:
  using Options = SciQChoiceOptions;
  explicit SciQ(const Config& c) : o_(Options::from_config(c)), path_(resolve_data_path(o_.file.path)) {}
  std::vector<ChoiceQuestion> load() override {
    std::vector<ChoiceQuestion> out;
    for (auto& r : read_sciq(path_, o_.file.jsonl())) {
      ChoiceQuestion q;
      q.id = r.id;
      q.question = r.question;
      if (o_.with_support) {
        if (!r.has_support) throw std::runtime_error(o_.file.path + ": question " + r.id + " has no support paragraph");
        q.context = r.support;
      }
      std::vector<std::string> opts = {r.correct_answer, r.distractors[0], r.distractors[1], r.distractors[2]};
      const size_t shift = fnv1a(q.id) % 4;
      std::rotate(opts.begin(), opts.begin() + static_cast<long>(shift), opts.end());
      q.answer = static_cast<int64_t>((4 - shift) % 4);
      q.options = std::move(opts);
      out.push_back(std::move(q));
    }
    return out;
  }

 private:
  Options o_;
  std::string path_;  // resolved at construction: a missing or ambiguous file fails before any work
};
TANDEM_REGISTER(ChoiceDataset, "sciq", SciQ);

// MMLU-Pro: 3-10 options.
class MmluPro : public ChoiceDataset {
 public:
  using Options = MmluProChoiceOptions;
  explicit MmluPro(const Config& c) : o_(Options::from_config(c)), path_(resolve_data_path(o_.file.path)) {}
  std::vector<ChoiceQuestion> load() override {
    std::vector<ChoiceQuestion> out;
    for (auto& r : read_mmlu_pro(path_, o_.file.jsonl()))
      out.push_back({r.id, "", r.question, r.options, r.answer_index});
    return out;
  }

 private:
  Options o_;
  std::string path_;  // resolved at construction: a missing or ambiguous file fails before any work
};
TANDEM_REGISTER(ChoiceDataset, "mmlu_pro", MmluPro);

class LmMultipleChoice : public Experiment {
 public:
  using Options = LmMultipleChoiceOptions;

  LmMultipleChoice(const Config& root, const RuntimeOptions& rt) : rt_(rt) {
    const Options o = Options::from_config(root);
    model_name_ = o.model.path;
    dataset_ = create<ChoiceDataset>(root.at("data"));
    batch_ = o.eval.batch_size;
    template_ = o.eval.prompt;
    max_prompt_tokens_ = o.eval.max_prompt_tokens;
    max_option_tokens_ = o.eval.max_option_tokens;
  }

  ExperimentResult run(RunContext& ctx) override {
    const std::string path = resolve_model_path(model_name_);
    auto t_load = std::chrono::steady_clock::now();
    const auto lm = load_language_model(path, rt_.device, rt_.dtype);
    auto model = lm->model_ptr();
    auto tok = lm->tokenizer_ptr();
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
    ctx.info("model " + model_name_ + " (" + path + "): " + std::to_string(model->num_parameters()) +
             " parameters, loaded in " + std::to_string(load_s) + " s");
    const auto qs = dataset_->load();
    if (qs.empty()) throw std::runtime_error("lm_multiple_choice: the dataset is empty");
    const int64_t pad = std::max<int64_t>(0, model->config().pad_token_id);
    const int64_t ctx_len = model->config().max_positions;
    if (max_prompt_tokens_ + max_option_tokens_ > ctx_len)
      throw ConfigError("eval.max_prompt_tokens + eval.max_option_tokens (" + std::to_string(max_prompt_tokens_) + " + " +
                        std::to_string(max_option_tokens_) + ") exceed the model's context of " + std::to_string(ctx_len) + " tokens");
    int64_t truncated = 0;

    int64_t hit_sum = 0, hit_mean = 0, n_options = 0, tokens = 0;
    auto t0 = std::chrono::steady_clock::now();
    Progress bar("score", static_cast<int64_t>(qs.size()), "q");
    for (size_t s = 0; s < qs.size(); s += batch_) {
      std::vector<std::vector<int64_t>> prompts, conts;
      std::vector<size_t> owner;
      for (size_t i = s; i < std::min(qs.size(), s + batch_); ++i) {
        auto p = tok->encode_for_model(render(qs[i]));
        if (static_cast<int64_t>(p.size()) > max_prompt_tokens_) {
          p.erase(p.begin(), p.end() - max_prompt_tokens_);
          ++truncated;
        }
        for (const auto& o : qs[i].options) {
          prompts.push_back(p);
          conts.push_back(tok->encode(" " + o));
          if (static_cast<int64_t>(conts.back().size()) > max_option_tokens_)
            throw std::runtime_error("question " + qs[i].id + ": an option is " + std::to_string(conts.back().size()) +
                                     " tokens, more than eval.max_option_tokens (" + std::to_string(max_option_tokens_) + ")");
          owner.push_back(i);
          tokens += static_cast<int64_t>(p.size() + conts.back().size());
        }
      }
      const auto scores = score_continuations(*model, prompts, conts, pad);
      size_t k = 0;
      for (size_t i = s; i < std::min(qs.size(), s + batch_); ++i) {
        const size_t n = qs[i].options.size();
        size_t best_sum = 0, best_mean = 0;
        for (size_t j = 0; j < n; ++j) {
          const double v = scores[k + j], vm = v / std::max<size_t>(1, conts[k + j].size());
          if (v > scores[k + best_sum]) best_sum = j;
          if (vm > scores[k + best_mean] / std::max<size_t>(1, conts[k + best_mean].size())) best_mean = j;
        }
        hit_sum += static_cast<int64_t>(best_sum) == qs[i].answer;
        hit_mean += static_cast<int64_t>(best_mean) == qs[i].answer;
        n_options += static_cast<int64_t>(n);
        k += n;
        bar.update(1);
      }
    }
    bar.finish();
    if (truncated)
      ctx.info(std::to_string(truncated) + " prompts were longer than eval.max_prompt_tokens (" + std::to_string(max_prompt_tokens_) +
               ") and kept their last tokens");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double n = static_cast<double>(qs.size());
    const double chance = static_cast<double>(qs.size()) / n_options;  // mean of 1/options
    Table t({"method", "questions", "accuracy"});
    t.add_row({std::string("log-likelihood (sum)"), static_cast<int64_t>(qs.size()), hit_sum / n});
    t.add_row({std::string("log-likelihood (per token)"), static_cast<int64_t>(qs.size()), hit_mean / n});
    t.add_row({std::string("chance"), static_cast<int64_t>(qs.size()), chance});
    ExperimentResult r;
    r.table = t;
    r.metrics = {{"accuracy", hit_sum / n},
                 {"accuracy_per_token", hit_mean / n},
                 {"chance_accuracy", chance},
                 {"questions", qs.size()},
                 {"prompts_truncated", truncated},
                 {"max_prompt_tokens", max_prompt_tokens_},
                 {"model", model_name_},
                 {"model_parameters", model->num_parameters()},
                 {"load_seconds", load_s},
                 {"eval_seconds", secs},
                 {"tokens_scored", tokens},
                 {"tokens_per_second", tokens / std::max(secs, 1e-9)}};
    return r;
  }

 private:
  std::string render(const ChoiceQuestion& q) const {
    std::string out = template_;
    // One pass, left to right: a value that itself contains "{question}" is not expanded again.
    auto sub = [&](const std::string& key, const std::string& val) {
      for (size_t p = out.find(key); p != std::string::npos; p = out.find(key, p + val.size())) out.replace(p, key.size(), val);
    };
    sub("{context}", q.context.empty() ? "" : q.context + "\n");
    sub("{question}", q.question);
    return out;
  }

  RuntimeOptions rt_;
  std::string model_name_, template_;
  std::unique_ptr<ChoiceDataset> dataset_;
  int64_t batch_, max_prompt_tokens_, max_option_tokens_;
};
TANDEM_REGISTER(Experiment, "lm_multiple_choice", LmMultipleChoice);

}  // namespace
}  // namespace tandem
