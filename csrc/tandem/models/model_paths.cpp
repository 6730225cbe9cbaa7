#include "tandem/models/model_paths.h"

#include "tandem/core/runtime.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace tandem {

std::string models_root() {
  if (const char* env = std::getenv("TANDEM_MODELS"); env && *env) return env;
  return "models";
}

std::string resolve_model_path(const std::string& name) {
  if (fs::exists(name)) {
    note_input("model", name);
    return name;
  }
  const fs::path root(models_root());
  for (const std::string& cand : {name, name + ".gguf"})
    if (fs::exists(root / cand)) {
      note_input("model", (root / cand).string());
      return (root / cand).string();
    }
  std::string known;
  if (fs::is_directory(root))
    for (const auto& e : fs::directory_iterator(root)) {
      std::string n = e.path().filename().string();
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".gguf") == 0) n.resize(n.size() - 5);
      known += (known.empty() ? "" : ", ") + n;
    }
  throw std::runtime_error("no model '" + name + "': not a path, and not under the models root '" + root.string() +
                           "' (available: " + (known.empty() ? "none; run scripts/setup.sh" : known) + ")");
}

}  // namespace tandem
