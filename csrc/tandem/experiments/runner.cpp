#include "tandem/experiments/runner.h"

#include <chrono>
#include <ctime>
#include <fstream>
#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "tandem/core/hash.h"
#include "tandem/experiments/experiment.h"
#include "tandem/experiments/explain.h"

namespace fs = std::filesystem;

namespace tandem {

TANDEM_DEFINE_REGISTRY(Experiment);

std::string RunContext::path(const std::string& name) const { return (fs::path(run_dir) / name).string(); }

void RunContext::write_artifact(const std::string& name, std::string_view data) const {
  write_file_atomic(path(name), data);
}

void RunContext::write_table(const std::string& stem, const Table& table) const {
  write_artifact(stem + ".csv", table.to_csv());
  write_artifact(stem + ".md", table.to_markdown());
}

void RunContext::info(const std::string& line) const {
  if (log) log->line(line);
}

namespace {

std::string timestamp_id() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

// Experiment and run names become directory names: keep them to a safe alphabet.
void check_name(const Config& cfg, const std::string& key, const std::string& v) {
  if (v.empty() || v == "." || v == ".." ||
      v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != std::string::npos)
    cfg.fail(key, "a name of letters, digits, '.', '_' or '-'");
}

}  // namespace

RunSummary run_experiment(const Config& cfg, const RunOptions& opts) {
  refuse_old_keys(cfg);
  const RuntimeOptions runtime = RuntimeOptions::from_config(cfg);
  const Config exp_cfg = cfg.at("experiment");
  const std::string type = exp_cfg.type();
  const std::string name = exp_cfg.get<std::string>("name", type);
  check_name(exp_cfg, "name", name);
  const Config run_cfg = cfg.at_or_empty("run");
  const std::string results_dir = run_cfg.get<std::string>("results_dir", opts.results_dir);
  std::string run_id = run_cfg.get<std::string>("id", "");
  if (!run_id.empty()) check_name(run_cfg, "id", run_id);
  const bool resume = run_cfg.get<bool>("resume", true);

  // Seeding happens before construction so that initial parameters are reproducible.
  runtime.apply();
  clear_inputs_read();
  auto experiment = create_by_type<Experiment>(exp_cfg, cfg, runtime);
  cfg.check_unused();

  fs::path base = fs::path(results_dir) / name;
  // The same resolved config, rerun after a crash or a kill, continues its unfinished run
  // directory (whose checkpoints the experiment then resumes) instead of starting a new one.
  char hash_buf[20];
  std::snprintf(hash_buf, sizeof hash_buf, "%016llx", static_cast<unsigned long long>(fnv1a(cfg.dump())));
  const std::string config_hash = hash_buf;
  bool resumed = false;
  if (run_id.empty() && resume && fs::is_directory(base)) {
    std::vector<std::string> candidates;
    for (const auto& e : fs::directory_iterator(base)) {
      if (!e.is_directory() || fs::exists(e.path() / "metrics.json")) continue;
      std::ifstream h(e.path() / "config.hash");
      std::string got;
      if (h >> got && got == config_hash) candidates.push_back(e.path().filename().string());
    }
    if (!candidates.empty()) {
      std::sort(candidates.begin(), candidates.end());
      run_id = candidates.back();
      resumed = true;
    }
  }
  if (run_id.empty()) {
    run_id = timestamp_id();
    for (int i = 2; fs::exists(base / run_id); ++i) run_id = timestamp_id() + "-" + std::to_string(i);
  }
  const fs::path run_dir = base / run_id;
  // One process per run directory: a second run of the same config would append to the same
  // predictions (and pay a remote twice). The lock dies with its holder, even on kill -9.
  DirectoryLock lock(run_dir.string());
  if (!resumed && fs::exists(run_dir / "config.yaml")) {
    // A run.id naming an existing run: continue it only if it is this very config.
    const std::string before = read_file((run_dir / "config.yaml").string());
    const auto diff = Config::differing_keys(before, cfg.dump());
    if (!diff.empty()) {
      std::string keys;
      for (size_t i = 0; i < diff.size() && i < 12; ++i) keys += (i ? ", " : "") + diff[i];
      throw ConfigError(run_cfg.where("id") + ": run.id '" + run_id + "' names " + run_dir.string() +
                        ", a run of a different config (differs in: " + keys +
                        "); resuming it would mix two configs: choose another run.id or delete that directory");
    }
    if (fs::exists(run_dir / "metrics.json"))
      throw ConfigError(run_cfg.where("id") + ": run.id '" + run_id + "': " + run_dir.string() +
                        " is a finished run of this config (metrics.json); its results stand: choose another run.id "
                        "or delete that directory to run it again");
    resumed = true;
  }
  remove_stale_temporaries(run_dir.string());

  RunLog log((run_dir / "log.txt").string(), opts.echo_log);
  RunContext ctx{runtime, run_dir.string(), &log};
  ctx.write_artifact("config.yaml", "# resolved from " + cfg.file() + "\n" + cfg.dump());
  ctx.write_artifact("config.hash", config_hash + "\n");
  for (const auto& note : cfg.set_aside_notes()) log.line("config: " + note);
  if (resumed) log.line("resuming the unfinished run " + run_id + " of this same config (resolved config identical)");
  log.line("run " + name + "/" + run_id + ": experiment=" + type + " device=" + runtime.device.str() +
           " dtype=" + dtype_name(runtime.dtype) + " threads=" + std::to_string(torch::get_num_threads()) +
           " seed=" + std::to_string(runtime.seed));

  // Every data and model file the run read, by absolute path, when it ends (failed runs too).
  struct LogInputs {
    RunLog& log;
    ~LogInputs() {
      for (const auto& in : inputs_read()) log.line("read " + in);
    }
  } log_inputs{log};
  const auto t0 = std::chrono::steady_clock::now();
  ExperimentResult result = experiment->run(ctx);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::json metrics = result.metrics;
  metrics["run"] = {{"experiment", name},
                    {"type", type},
                    {"run_id", run_id},
                    {"wall_seconds", wall},
                    {"device", runtime.device.str()},
                    {"dtype", dtype_name(runtime.dtype)},
                    {"threads", torch::get_num_threads()},
                    {"seed", runtime.seed},
                    {"torch", TORCH_VERSION},
                    {"config", cfg.file()}};
  if (!result.table.empty()) ctx.write_table("table", result.table);
  // metrics.json is written last: its presence marks a finished run.
  ctx.write_artifact("metrics.json", metrics.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  log.line("finished in " + std::to_string(wall) + " s; results in " + run_dir.string());
  return RunSummary{run_dir.string(), metrics, result.table};
}

}  // namespace tandem
