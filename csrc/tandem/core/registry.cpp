#include "tandem/core/registry.h"

#include <stdexcept>

namespace tandem {

std::map<std::string, const RegistryBase*>& RegistryBase::all() {
  static auto* table = new std::map<std::string, const RegistryBase*>();
  return *table;
}

std::vector<std::string> RegistryBase::kinds() {
  std::vector<std::string> out;
  for (const auto& kv : all()) out.push_back(kv.first);
  return out;
}

std::vector<std::string> RegistryBase::names_of(const std::string& kind) {
  auto it = all().find(kind);
  if (it == all().end()) {
    std::string list;
    for (const auto& k : kinds()) list += (list.empty() ? "" : ", ") + k;
    throw std::invalid_argument("unknown registry kind '" + kind + "' (known: " + list + ")");
  }
  return it->second->names();
}

std::string RegistryBase::known() const {
  std::string list;
  for (const auto& n : names()) list += (list.empty() ? "" : ", ") + n;
  return list.empty() ? "none" : list;
}

}  // namespace tandem
