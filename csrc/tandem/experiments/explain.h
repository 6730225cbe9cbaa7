// `tandem config --explain CFG`: every key a run of CFG reads, with its type, default and doc,
// and the value CFG gives it. Built from the declared options of the experiment and of each
// component the config picks by `type:` (core/options.h), without constructing anything.
#pragma once

#include <string>

#include "tandem/core/config.h"
#include "tandem/core/options.h"

namespace tandem {

/// Keys the runner itself reads besides the runtime keys.
struct RunKeys {
  std::string name;
  std::string results_dir = "results", id;
  bool resume = true;
  template <class V>
  void visit(V& v) {
    v.field("name", name, "results/<name>/ (default: the experiment type)");
  }
};
struct RunSection {
  std::string results_dir = "results", id;
  bool resume = true;
  template <class V>
  void visit(V& v) {
    v.field("results_dir", results_dir, "where run directories go");
    v.field("id", id, "the run directory's name (default: a timestamp)");
    v.field("resume", resume, "continue an unfinished run of the identical resolved config");
  }
};

/// The table `tandem config --explain` prints (Markdown), for the resolved config `root`.
std::string explain_config(const Config& root);

/// Keys of the old per-system config shapes, each refused with the key that replaced it
/// (one config shape for every system: components as top-level sections, `model.path` the LM).
void refuse_old_keys(const Config& root);

}  // namespace tandem
