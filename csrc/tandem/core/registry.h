// Registry: named factories per extensible kind, so a YAML `type:` picks the component.
//
// A kind writes its factory signature once, in its base type; everything else is derived:
//
//   class Experiment {
//    public:
//     static constexpr const char* kRegistryKind = "experiments.experiment";
//     using Factory = std::unique_ptr<Experiment>(const Config&, const RuntimeOptions&);
//     virtual ~Experiment() = default;
//   };
//   TANDEM_DECLARE_REGISTRY(Experiment);                    // in the header, after the class
//   TANDEM_DEFINE_REGISTRY(Experiment);                     // once, in a .cpp of libtandem
//   TANDEM_REGISTER(Experiment, "spa", SpaExperiment);      // per component, beside it
//   auto e = create<Experiment>(cfg, runtime);              // cfg's `type:` picks; cfg is arg 1
//   auto g = create_by_type<Experiment>(cfg, root, runtime); // cfg's `type:` picks; args as given
//   auto f = create_named<Experiment>("spa", cfg, runtime); // code that is not config-driven
//
// (tests/cpp/core_test.cpp compiles this example.) An unknown name fails with the list of
// known names, and, from create(), with the config file, line and key.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <string>
#include <utility>
#include <vector>

#include "tandem/core/config.h"
#include "tandem/core/options.h"

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
  /// "a, b, c" (or "none") for messages.
  std::string known() const;
};

namespace detail {
template <class Signature>
struct FactoryTraits;
template <class Base, class... Args>
struct FactoryTraits<std::unique_ptr<Base>(Args...)> {
  using Function = std::function<std::unique_ptr<Base>(Args...)>;
  template <class Impl>
  static Function make() {
    return [](Args... args) -> std::unique_ptr<Base> { return std::make_unique<Impl>(std::forward<Args>(args)...); };
  }
};
}  // namespace detail

/// The registry of kind `Base`; its factory type is `Base::Factory`.
template <class Base>
class Registry : public RegistryBase {
 public:
  using Traits = detail::FactoryTraits<typename Base::Factory>;
  using Function = typename Traits::Function;

  /// The one registry of this kind. Defined (not inline) by TANDEM_DEFINE_REGISTRY in libtandem
  /// so the Python module and the library share it.
  static Registry& instance();

  /// `origin` (the registering source file) lets the same registration compiled into two
  /// binaries of one process count once: the later one (the sanitized fuzz driver's, whose
  /// initialisers run after libtandem's) replaces the earlier.
  void add(const std::string& name, Function f, const std::string& origin) {
    auto it = factories_.find(name);
    if (it != factories_.end()) {
      if (origins_[name] == origin) {
        it->second = std::move(f);
        return;
      }
      throw std::logic_error(std::string("tandem: duplicate ") + Base::kRegistryKind + " registration '" + name +
                             "' (" + origins_[name] + " and " + origin + ")");
    }
    factories_.emplace(name, std::move(f));
    origins_[name] = origin;
  }
  bool contains(const std::string& name) const { return factories_.count(name) > 0; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : factories_) out.push_back(kv.first);
    return out;
  }
  /// The factory registered as `name`, or nullptr.
  const Function* find(const std::string& name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, Function> factories_;
  std::map<std::string, std::string> origins_;
};

/// Creates entry `name` of kind `Base` from the factory arguments; an unknown name is a
/// std::invalid_argument listing the known names.
template <class Base, class... Args>
std::unique_ptr<Base> create_named(const std::string& name, Args&&... args) {
  const auto& reg = Registry<Base>::instance();
  const auto* f = reg.find(name);
  if (!f)
    throw std::invalid_argument(std::string("unknown ") + Base::kRegistryKind + " '" + name + "' (known: " +
                                reg.known() + ")");
  return (*f)(std::forward<Args>(args)...);
}

/// Creates the entry that `node`'s `type:` names from the factory arguments `args` (for kinds
/// whose factory takes more than the node, e.g. an experiment gets the whole run config). An
/// unknown type is a ConfigError naming file, line and key.
template <class Base, class... Args>
std::unique_ptr<Base> create_by_type(const Config& node, Args&&... args) {
  const auto& reg = Registry<Base>::instance();
  const std::string name = node.type();
  const auto* f = reg.find(name);
  if (!f)
    throw ConfigError(node.where("type") + ": " + (node.path().empty() ? "" : node.path() + ".") + "type: unknown " +
                      Base::kRegistryKind + " '" + name + "' (known: " + reg.known() + ")");
  return (*f)(std::forward<Args>(args)...);
}

/// Creates the component a config node describes: its `type:` names the entry and the node is
/// the first factory argument.
template <class Base, class... Rest>
std::unique_ptr<Base> create(const Config& cfg, Rest&&... rest) {
  return create_by_type<Base>(cfg, cfg, std::forward<Rest>(rest)...);
}

namespace detail {
template <class Impl, class = void>
struct HasOptions : std::false_type {};
template <class Impl>
struct HasOptions<Impl, std::void_t<decltype(Impl::Options::describe())>> : std::true_type {};

template <class Base, class Impl>
struct Registrar {
  Registrar(const char* name, const char* origin) {
    Registry<Base>::instance().add(name, Registry<Base>::Traits::template make<Impl>(), origin);
    if constexpr (HasOptions<Impl>::value) OptionCatalog::add(Base::kRegistryKind, name, &Impl::Options::describe);
  }
};
template <class Base>
struct FunctionRegistrar {
  FunctionRegistrar(const char* name, typename Registry<Base>::Function f, const char* origin) {
    Registry<Base>::instance().add(name, std::move(f), origin);
  }
};
}  // namespace detail

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

/// Declares (in the header of `Base`) that libtandem defines the registry instance.
#define TANDEM_DECLARE_REGISTRY(Base) \
  template <>                         \
  ::tandem::Registry<Base>& ::tandem::Registry<Base>::instance()

/// Defines the one registry instance for `Base` (in a .cpp of libtandem).
#define TANDEM_DEFINE_REGISTRY(Base)                                        \
  template <>                                                               \
  ::tandem::Registry<Base>& ::tandem::Registry<Base>::instance() {          \
    static Registry* r = [] {                                               \
      auto* reg = new Registry();                                           \
      ::tandem::RegistryBase::all()[Base::kRegistryKind] = reg;             \
      return reg;                                                           \
    }();                                                                    \
    return *r;                                                              \
  }

/// Registers `Impl` (constructible from `Base::Factory`'s arguments) under `name`.
#define TANDEM_REGISTER(Base, name, Impl)                                                       \
  static ::tandem::detail::Registrar<Base, Impl> TANDEM_CONCAT(tandem_registrar_, __COUNTER__)( \
      name, __FILE__)

/// Registers a function with `Base::Factory`'s signature under `name` (for components whose
/// construction is a reader, not a constructor: tokenizers from their files).
#define TANDEM_REGISTER_FUNCTION(Base, name, fn)                                                  \
  static ::tandem::detail::FunctionRegistrar<Base> TANDEM_CONCAT(tandem_registrar_, __COUNTER__)( \
      name, fn, __FILE__)
