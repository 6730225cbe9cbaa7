// Experiment: one registered, config-built unit of work that produces metrics and a table.
// Constructors read every config key they need (so unknown keys fail before any work);
// run() does the work and writes intermediate artifacts through the RunContext.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tandem/core/config.h"
#include "tandem/core/files.h"
#include "tandem/core/registry.h"
#include "tandem/core/runtime.h"
#include "tandem/eval/table.h"

namespace tandem {

/// What a running experiment may use: runtime settings, its run directory and the log.
struct RunContext {
  RuntimeOptions runtime;
  std::string run_dir;
  RunLog* log = nullptr;

  /// Writes `name` (relative to the run directory) atomically.
  void write_artifact(const std::string& name, std::string_view data) const;
  /// Writes `<stem>.csv` and `<stem>.md`.
  void write_table(const std::string& stem, const Table& table) const;
  std::string path(const std::string& name) const;
  void info(const std::string& line) const;
};

struct ExperimentResult {
  nlohmann::json metrics = nlohmann::json::object();
  Table table;  ///< the main results table (table.csv / table.md)
};

class Experiment {
 public:
  static constexpr const char* kRegistryKind = "experiments.experiment";
  using Factory = std::unique_ptr<Experiment>(const Config&, const RuntimeOptions&);
  virtual ~Experiment() = default;
  virtual ExperimentResult run(RunContext& ctx) = 0;
};

/// Factory arguments: the whole run config (root) and the runtime options read from it.
TANDEM_DECLARE_REGISTRY(Experiment);

}  // namespace tandem
