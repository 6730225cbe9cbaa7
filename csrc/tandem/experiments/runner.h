// Runner: config -> experiment (by registry) -> results/<experiment>/<run-id>/ with the
// resolved config, metrics.json, table.csv, table.md and log.txt, each written atomically.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/eval/table.h"

namespace tandem {

struct RunOptions {
  std::string results_dir = "results";  ///< used when the config has no run.results_dir
  bool echo_log = true;                 ///< copy log lines to stderr
};

struct RunSummary {
  std::string run_dir;
  nlohmann::json metrics;
  Table table;
};

/// Runs the experiment `cfg` describes. Config errors (unknown keys included) are raised
/// before anything is written.
RunSummary run_experiment(const Config& cfg, const RunOptions& opts = {});

}  // namespace tandem
