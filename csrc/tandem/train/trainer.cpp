#include "tandem/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "tandem/core/files.h"
#include "tandem/core/progress.h"

namespace fs = std::filesystem;

namespace tandem {

void TrainerOptions::check(const Config& c) const {
  if (checkpoint_every > 0 && checkpoint_every % log_every != 0)
    c.fail("checkpoint_every", "a multiple of log_every (" + std::to_string(log_every) + ")");
  if (optimizer != "sgd" && momentum != 0.0) c.fail("momentum", "no momentum with optimizer " + optimizer + " (SGD only)");
}

namespace {

// Autocast's C++ switches were renamed in torch 2.4; this keeps both spellings building.
struct AutocastScope {
  explicit AutocastScope(bool on, const c10::Device& dev) : on_(on), dev_(dev.type()) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    prev_ = at::autocast::is_autocast_enabled(dev_);
    at::autocast::set_autocast_enabled(dev_, true);
    at::autocast::set_autocast_dtype(dev_, at::kBFloat16);
#else
    if (dev_ == c10::DeviceType::CPU) {
      prev_ = at::autocast::is_cpu_enabled();
      at::autocast::set_cpu_enabled(true);
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    } else {
      prev_ = at::autocast::is_enabled();
      at::autocast::set_enabled(true);
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    }
#endif
  }
  ~AutocastScope() {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(dev_, prev_);
#else
    if (dev_ == c10::DeviceType::CPU)
      at::autocast::set_cpu_enabled(prev_);
    else
      at::autocast::set_enabled(prev_);
#endif
    at::autocast::clear_cache();
  }
  bool on_, prev_ = false;
  c10::DeviceType dev_;
};

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

}  // namespace

std::string curve_to_csv(const std::vector<std::map<std::string, double>>& curve) {
  std::vector<std::string> cols = {"step"};
  std::set<std::string> seen = {"step"};
  for (const auto& row : curve)
    for (const auto& [k, v] : row)
      if (seen.insert(k).second) cols.push_back(k);
  std::string out;
  for (size_t i = 0; i < cols.size(); ++i) out += (i ? "," : "") + cols[i];
  out += "\n";
  for (const auto& row : curve) {
    for (size_t i = 0; i < cols.size(); ++i) {
      if (i) out += ",";
      if (auto it = row.find(cols[i]); it != row.end()) out += cols[i] == "step" ? std::to_string(static_cast<int64_t>(it->second)) : fmt(it->second);
    }
    out += "\n";
  }
  return out;
}

Trainer::Trainer(TrainerOptions opts, std::vector<std::pair<std::string, torch::Tensor>> params, std::string checkpoint_path,
                 std::string label, bool progress)
    : opts_(opts), params_(std::move(params)), ckpt_path_(std::move(checkpoint_path)), label_(std::move(label)),
      progress_(progress) {
  std::vector<torch::Tensor> ts;
  for (auto& [n, t] : params_) ts.push_back(t);
  if (opts_.optimizer == "sgd")
    opt_ = std::make_unique<torch::optim::SGD>(
        ts, torch::optim::SGDOptions(opts_.lr).momentum(opts_.momentum).weight_decay(opts_.weight_decay));
  else
    opt_ = std::make_unique<torch::optim::AdamW>(ts, torch::optim::AdamWOptions(opts_.lr).weight_decay(opts_.weight_decay));
}

double Trainer::lr_at(int64_t step) const {
  const int64_t warm = static_cast<int64_t>(std::round(opts_.warmup_ratio * opts_.steps));
  if (step < warm) return opts_.lr * static_cast<double>(step + 1) / static_cast<double>(warm);
  const int64_t span = std::max<int64_t>(1, opts_.steps - warm);
  const double progress = std::min(1.0, static_cast<double>(step - warm) / static_cast<double>(span));
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
  return opts_.lr * (opts_.min_lr_ratio + (1.0 - opts_.min_lr_ratio) * cosine);
}

void Trainer::save_checkpoint(int64_t step, const std::vector<std::map<std::string, double>>& curve) {
  torch::serialize::OutputArchive ar;
  for (auto& [n, t] : params_) ar.write("param/" + n, t.detach());
  torch::serialize::OutputArchive opt_ar;
  opt_->save(opt_ar);
  ar.write("optimizer", opt_ar);
  ar.write("step", torch::tensor(step, torch::kLong));
  ar.write("steps_total", torch::tensor(opts_.steps, torch::kLong));
  for (size_t i = 0; i < best_.size(); ++i) ar.write("best/" + params_[i].first, best_[i]);
  ar.write("best_value", torch::tensor(best_value_, torch::kDouble));
  ar.write("best_step", torch::tensor(best_step_, torch::kLong));
  // The curve so far, so a resumed run reports the same full curve.
  std::vector<double> flat;
  std::vector<std::string> keys;
  for (const auto& row : curve) {
    keys.push_back("#");  // row marker
    flat.push_back(0.0);
    for (const auto& [k, v] : row) {
      keys.push_back(k);
      flat.push_back(v);
    }
  }
  std::string joined;
  for (const auto& k : keys) joined += k + '\n';
  ar.write("curve_values", torch::tensor(flat, torch::kDouble));
  ar.write("curve_keys", torch::from_blob(joined.data(), {static_cast<int64_t>(joined.size())}, torch::kChar).clone());
  std::ostringstream os;
  ar.save_to(os);
  write_file_atomic(ckpt_path_, os.str());
}

namespace {

// Reads `key` into a fresh tensor. InputArchive::read into a tensor that is already defined
// writes *into* it (keeping its dtype), so reusing one tensor across keys of different dtypes
// reinterprets the bytes: a double read into an int64 tensor gave best_value 4.6e18.
torch::Tensor read_entry(torch::serialize::InputArchive& ar, const std::string& file, const std::string& key) {
  torch::Tensor t;
  try {
    ar.read(key, t);
  } catch (const std::exception&) {
    throw std::runtime_error(file + ": the training checkpoint has no entry '" + key + "' (written by another version or model config?); delete it to start over");
  }
  return t;
}

}  // namespace

bool Trainer::load_checkpoint(int64_t& step, std::vector<std::map<std::string, double>>& curve) {
  if (ckpt_path_.empty() || !fs::exists(ckpt_path_)) return false;
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(ckpt_path_);
  } catch (const std::exception& e) {
    throw std::runtime_error(ckpt_path_ + ": cannot read the training checkpoint (" + std::string(e.what()).substr(0, 200) +
                             "); delete it to start over");
  }
  const int64_t steps_total = read_entry(ar, ckpt_path_, "steps_total").item<int64_t>();
  if (steps_total != opts_.steps)
    throw std::runtime_error(ckpt_path_ + ": checkpoint was written for train.steps=" + std::to_string(steps_total) +
                             ", the config says " + std::to_string(opts_.steps) + "; delete it or restore the config");
  torch::NoGradGuard ng;
  for (auto& [n, p] : params_) {
    torch::Tensor v;
    try {
      ar.read("param/" + n, v);
    } catch (const std::exception&) {
      throw std::runtime_error(ckpt_path_ + ": checkpoint has no parameter '" + n + "' (different model config?)");
    }
    if (v.sizes() != p.sizes())
      throw std::runtime_error(ckpt_path_ + ": parameter '" + n + "' has shape " + c10::str(v.sizes()) + ", expected " +
                               c10::str(p.sizes()));
    p.copy_(v);
  }
  best_.clear();
  for (auto& [n, p] : params_) {
    torch::Tensor b;
    try {
      ar.read("best/" + n, b);
    } catch (const std::exception&) {
      best_.clear();
      break;
    }
    best_.push_back(b);
  }
  best_value_ = read_entry(ar, ckpt_path_, "best_value").item<double>();
  best_step_ = read_entry(ar, ckpt_path_, "best_step").item<int64_t>();
  torch::serialize::InputArchive opt_ar;
  ar.read("optimizer", opt_ar);
  opt_->load(opt_ar);
  step = read_entry(ar, ckpt_path_, "step").item<int64_t>();
  const torch::Tensor vals = read_entry(ar, ckpt_path_, "curve_values");
  const torch::Tensor keys = read_entry(ar, ckpt_path_, "curve_keys");
  std::string joined(reinterpret_cast<const char*>(keys.data_ptr()), keys.numel());
  std::istringstream ks(joined);
  std::string k;
  curve.clear();
  const double* v = vals.data_ptr<double>();
  for (int64_t i = 0; std::getline(ks, k) && i < vals.numel(); ++i) {
    if (k == "#")
      curve.emplace_back();
    else if (!curve.empty())
      curve.back()[k] = v[i];
    else
      throw std::runtime_error(ckpt_path_ + ": damaged loss curve in the checkpoint");
  }
  return true;
}

TrainSummary Trainer::fit(const StepFn& step_fn, const EvalFn& eval_fn) {
  TrainSummary s;
  int64_t start = 0;
  if (load_checkpoint(start, s.curve)) {
    s.resumed_from = start;
    // The loss of the last logged window: a run resumed at its final step never re-enters the
    // loop, and checkpoints fall on log boundaries, so the saved curve holds it.
    if (!s.curve.empty() && s.curve.back().count("loss")) s.final_loss = s.curve.back().at("loss");
  }
  const auto t0 = std::chrono::steady_clock::now();
  const c10::Device dev = params_.empty() ? c10::Device(c10::kCPU) : params_.front().second.device();
  std::optional<Progress> bar;
  if (progress_) {
    bar.emplace(label_, opts_.steps, "step");
    bar->update(start);
  }
  double window_loss = 0;
  int64_t window_n = 0;
  for (int64_t step = start; step < opts_.steps; ++step) {
    const double lr = lr_at(step);
    for (auto& g : opt_->param_groups()) g.options().set_lr(lr);
    opt_->zero_grad();
    double loss_sum = 0;
    for (int64_t m = 0; m < opts_.grad_accum; ++m) {
      torch::Tensor loss;
      {
        AutocastScope ac(opts_.bf16_autocast, dev);
        loss = step_fn(step, m);
        for (const auto& hook : hooks_) loss = loss + hook();
      }
      (loss.to(torch::kFloat) / static_cast<double>(opts_.grad_accum)).backward();
      loss_sum += loss.item<double>();
    }
    if (opts_.clip_norm > 0) {
      std::vector<torch::Tensor> ps;
      for (auto& [n, p] : params_) ps.push_back(p);
      torch::nn::utils::clip_grad_norm_(ps, opts_.clip_norm);
    }
    opt_->step();
    const double loss = loss_sum / static_cast<double>(opts_.grad_accum);
    window_loss += loss;
    ++window_n;
    const int64_t done = step + 1;
    const bool log_now = done % opts_.log_every == 0 || done == opts_.steps;
    const bool eval_now = eval_fn && ((opts_.eval_every > 0 && done % opts_.eval_every == 0) || done == opts_.steps);
    if (log_now || eval_now) {
      std::map<std::string, double> row{{"step", static_cast<double>(done)}, {"lr", lr}, {"loss", window_loss / window_n}};
      s.final_loss = window_loss / window_n;
      if (eval_now) {
        torch::NoGradGuard ng;
        for (const auto& [k, v] : eval_fn(done)) row["eval_" + k] = v;
        if (!opts_.keep_best.empty()) {
          auto it = row.find("eval_" + opts_.keep_best);
          if (it == row.end()) throw std::runtime_error(label_ + ": keep_best names '" + opts_.keep_best + "', which the evaluation does not report");
          if (it->second < best_value_) {
            best_value_ = it->second;
            best_step_ = done;
            best_.clear();
            for (auto& [n, p] : params_) best_.push_back(p.detach().clone());
          }
        }
      }
      s.curve.push_back(row);
      window_loss = 0;
      window_n = 0;
    }
    if (!ckpt_path_.empty() && opts_.checkpoint_every > 0 && (done % opts_.checkpoint_every == 0 || done == opts_.steps))
      save_checkpoint(done, s.curve);
    if (bar) bar->update(1, "loss=" + fmt(loss).substr(0, 6));
  }
  if (bar) bar->finish();
  s.steps_done = opts_.steps;
  s.best_step = opts_.steps;
  if (!opts_.keep_best.empty() && !best_.empty()) {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < best_.size(); ++i) params_[i].second.copy_(best_[i]);
    s.best_step = best_step_;
    s.best_value = best_value_;
  }
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

}  // namespace tandem
