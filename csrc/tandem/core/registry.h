// Registry: named factories per extensible kind, so a YAML `type:` picks the component.
//
//   struct Experiment { static constexpr const char* kRegistryKind = "experiment"; ... };
//   TANDEM_DEFINE_REGISTRY(Experiment, const Config&);      // once, in a .cpp of libtandem
//   TANDEM_REGISTER(Experiment, "text_classification", TextClassification);  // per component
//   auto exp = Registry<Experiment, const Config&>::create(cfg);            // reads cfg.type()
//
// An unknown name fails with the list of known names and the config location.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tandem/core/config.h"

namespace tandem {

/// Kind-independent face of a registry, for listing (CLI, Python `tandem.registry.names`).
class RegistryBase {
 public:
  virtual ~RegistryBase() = default;
  virtual std::vector<std::string> names() const = 0;
  /// All registries that have been instantiated, by kind.
  static std::map<std::string, const RegistryBase*>& all();
  static std::vector<std::string> kinds();
  /// Names registered under `kind`; throws std::invalid_argument listing the kinds if unknown.
  static std::vector<std::string> names_of(const std::string& kind);
};

template <class Base, class... Args>
class Registry : public RegistryBase {
 public:
  using Factory = std::function<std::unique_ptr<Base>(Args...)>;

  /// The one registry of this kind. Defined (not inline) by TANDEM_DEFINE_REGISTRY in libtandem
  /// so the Python module and the library share it.
  static Registry& instance();

  void add(const std::string& name, Factory f) {
    if (!factories_.emplace(name, std::move(f)).second)
      throw std::logic_error(std::string("tandem: duplicate ") + Base::kRegistryKind +
                             " registration '" + name + "'");
  }
  bool contains(const std::string& name) const { return factories_.count(name) > 0; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : factories_) out.push_back(kv.first);
    return out;
  }

  /// Creates entry `name`; `cfg` (the node holding `type:`) places the error message.
  static std::unique_ptr<Base> create_named(const std::string& name, const Config& cfg, Args... args) {
    const auto& self = instance();
    auto it = self.factories_.find(name);
    if (it == self.factories_.end()) {
      std::string list;
      for (const auto& kv : self.factories_) list += (list.empty() ? "" : ", ") + kv.first;
      throw ConfigError(cfg.where("type") + ": " + (cfg.path().empty() ? "" : cfg.path() + ".") +
                        "type: unknown " + Base::kRegistryKind + " '" + name + "' (known: " +
                        (list.empty() ? "none" : list) + ")");
    }
    return it->second(std::forward<Args>(args)...);
  }

 private:
  std::map<std::string, Factory> factories_;
};

/// Creates the component a config node describes: its `type:` names the registry entry, and the
/// node itself is passed as the first factory argument.
template <class Base, class... Rest>
std::unique_ptr<Base> create_from_config(const Config& cfg, Rest&&... rest) {
  return Registry<Base, const Config&, Rest...>::create_named(cfg.type(), cfg, cfg,
                                                              std::forward<Rest>(rest)...);
}

namespace detail {
template <class Base, class Impl, class... Args>
struct Registrar {
  explicit Registrar(const char* name) {
    Registry<Base, Args...>::instance().add(
        name, [](Args... args) -> std::unique_ptr<Base> {
          return std::make_unique<Impl>(std::forward<Args>(args)...);
        });
  }
};
}  // namespace detail

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

/// Declares (in the header of `Base`) that libtandem defines the registry instance.
#define TANDEM_DECLARE_REGISTRY(Base, ...) \
  template <>                              \
  ::tandem::Registry<Base, __VA_ARGS__>& ::tandem::Registry<Base, __VA_ARGS__>::instance()

/// Defines the one registry instance for `Base` with factory arguments `...` (in a .cpp).
#define TANDEM_DEFINE_REGISTRY(Base, ...)                                        \
  template <>                                                                    \
  ::tandem::Registry<Base, __VA_ARGS__>& ::tandem::Registry<Base, __VA_ARGS__>::instance() { \
    static Registry* r = [] {                                                    \
      auto* reg = new Registry();                                                \
      ::tandem::RegistryBase::all()[Base::kRegistryKind] = reg;                  \
      return reg;                                                                \
    }();                                                                         \
    return *r;                                                                   \
  }

/// Registers `Impl` (constructible from the factory arguments) under `name`.
#define TANDEM_REGISTER(Base, name, Impl, ...)                                   \
  static ::tandem::detail::Registrar<Base, Impl, __VA_ARGS__> TANDEM_CONCAT(     \
      tandem_registrar_, __COUNTER__)(name)
