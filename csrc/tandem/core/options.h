// Declared options: a component lists its settings once, in one struct, and both reading them
// from a config and documenting them (`tandem config --explain`) come from that list.
//
//   struct ExecutorOptions {
//     int64_t batch_size = 8;
//     template <class V> void visit(V& v) {
//       v.field("batch_size", batch_size, "questions one expert answers per forward pass", Positive{});
//     }
//     TANDEM_OPTIONS(ExecutorOptions)   // from_config(const Config&) and describe()
//   };
//
// A visitor sees each field with its key, its doc and an optional check (Positive, NonNegative,
// Range, OneOf, Limit). `section` nests another options struct under a key; `component` names
// a key whose value is a registered component picked by its own `type:` (documented by that
// component's options); `list` reads a sequence of option structs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tandem/core/config.h"

namespace tandem {

/// One documented option, as `tandem config --explain` prints it.
struct OptionDoc {
  std::string key;             ///< relative to the component's node; "a.b" inside sections, "a[].b" in lists
  std::string type;            ///< "integer > 0", "number in [0, 1]", "one of: a, b", ...
  std::string default_value;   ///< YAML text; "(required)" when there is none
  std::string doc;
  std::string component_kind;  ///< set for a nested component: its registry kind
};

/// A list of integers, or the word "all" (e.g. the backbone layers an adapter reads).
struct IntsOrAll {
  bool all = false;
  std::vector<int64_t> values;  ///< empty and !all: unset
  bool set() const { return all || !values.empty(); }
};

// ---- checks a field may carry ----
struct Positive {};
struct NonNegative {};
struct Range {
  double lo, hi;
};
struct OneOf {
  std::vector<std::string> choices;
};
/// A count: a positive integer or "all" (read as 0).
struct Limit {};

namespace options_detail {
struct NoCheck {};
std::string yaml_text(bool v);
std::string yaml_text(int64_t v);
std::string yaml_text(double v);
std::string yaml_text(const std::string& v);
std::string yaml_text(const std::vector<int64_t>& v);
std::string yaml_text(const std::vector<double>& v);
std::string yaml_text(const std::vector<std::string>& v);
std::string yaml_text(const IntsOrAll& v);
template <class T> const char* type_name();
std::string check_text(const NoCheck&);
std::string check_text(const Positive&);
std::string check_text(const NonNegative&);
std::string check_text(const Range&);
std::string check_text(const OneOf&);
std::string check_text(const Limit&);
}  // namespace options_detail

namespace options_detail {
template <class T, class = void>
struct HasCheck : std::false_type {};
template <class T>
struct HasCheck<T, std::void_t<decltype(std::declval<const T&>().check(std::declval<const Config&>()))>>
    : std::true_type {};
/// Runs `o.check(c)` (checks across fields) when the struct has one.
template <class T>
void check_across(const T& o, const Config& c) {
  if constexpr (HasCheck<T>::value) o.check(c);
}
}  // namespace options_detail

/// Reads the fields from a config node (through Config's checked getters, so errors name the
/// file, line and key).
class OptionReader {
 public:
  explicit OptionReader(const Config& c) : c_(c) {}
  template <class T, class Check = options_detail::NoCheck>
  void field(const char* key, T& value, const char*, const Check& check = {}) {
    value = read(key, value, check);
  }
  template <class T, class Check = options_detail::NoCheck>
  void required(const char* key, T& value, const char*, const Check& check = {}) {
    if (!c_.has(key)) c_.fail(key, "a value (required)");
    value = read(key, value, check);
  }
  template <class Sub>
  void section(const char* key, Sub& sub, const char*) {
    const Config node = c_.at_or_empty(key);
    OptionReader r(node);
    sub.visit(r);
    options_detail::check_across(sub, node);
  }
  template <class Item>
  void list(const char* key, std::vector<Item>& items, const char*) {
    items.clear();
    for (const Config& node : c_.items(key)) {
      Item item;
      OptionReader r(node);
      item.visit(r);
      options_detail::check_across(item, node);
      items.push_back(std::move(item));
    }
  }
  /// Another options struct whose keys sit in this same node.
  template <class Sub>
  void merge(Sub& sub) {
    sub.visit(*this);
    options_detail::check_across(sub, c_);
  }
  /// A nested registered component: created by its owner from `key`'s node; nothing to read here.
  template <class Kind>
  void component(const char*, const char*, const char* = nullptr) {}
  const Config& config() const { return c_; }

 private:
  template <class T>
  T read(const char* key, const T& fallback, const options_detail::NoCheck&) const {
    return c_.get<T>(key, fallback);
  }
  int64_t read(const char* key, int64_t fallback, const Positive&) const { return c_.get_positive_int(key, fallback); }
  double read(const char* key, double fallback, const Positive&) const { return c_.get_positive(key, fallback); }
  int64_t read(const char* key, int64_t fallback, const NonNegative&) const {
    return c_.get_nonnegative_int(key, fallback);
  }
  double read(const char* key, double fallback, const NonNegative&) const {
    return c_.get_in_range(key, 0.0, 1e300, fallback);
  }
  int64_t read(const char* key, int64_t fallback, const Range& r) const {
    return c_.get_int_in_range(key, static_cast<int64_t>(r.lo), static_cast<int64_t>(r.hi), fallback);
  }
  double read(const char* key, double fallback, const Range& r) const { return c_.get_in_range(key, r.lo, r.hi, fallback); }
  std::string read(const char* key, const std::string& fallback, const OneOf& o) const {
    return c_.get_choice(key, o.choices, fallback);
  }
  int64_t read(const char* key, int64_t, const Limit&) const { return c_.get_limit(key); }
  IntsOrAll read(const char* key, const IntsOrAll& fallback, const options_detail::NoCheck&) const;

  Config c_;
};

/// Records each field's key, type, default and doc.
class OptionDescriber {
 public:
  template <class T, class Check = options_detail::NoCheck>
  void field(const char* key, T& value, const char* doc, const Check& check = {}) {
    add(key, type_of<T>(check), default_of(value, check), doc);
  }
  template <class T, class Check = options_detail::NoCheck>
  void required(const char* key, T&, const char* doc, const Check& check = {}) {
    add(key, type_of<T>(check), "(required)", doc);
  }
  template <class Sub>
  void section(const char* key, Sub& sub, const char* doc) {
    add(key, "section", "", doc);
    OptionDescriber d;
    sub.visit(d);
    for (auto o : d.docs_) {
      o.key = std::string(key) + "." + o.key;
      docs_.push_back(std::move(o));
    }
  }
  template <class Item>
  void list(const char* key, std::vector<Item>&, const char* doc) {
    add(key, "list", "[]", doc);
    Item item;
    OptionDescriber d;
    item.visit(d);
    for (auto o : d.docs_) {
      o.key = std::string(key) + "[]." + o.key;
      docs_.push_back(std::move(o));
    }
  }
  template <class Sub>
  void merge(Sub& sub) {
    sub.visit(*this);
  }
  template <class Kind>
  void component(const char* key, const char* doc, const char* default_type = nullptr) {
    OptionDoc o{key, std::string(Kind::kRegistryKind) + " (by its type:)", default_type ? default_type : "(required)",
                doc, Kind::kRegistryKind};
    docs_.push_back(std::move(o));
  }
  const std::vector<OptionDoc>& docs() const { return docs_; }

 private:
  template <class T, class Check>
  static std::string type_of(const Check& check) {
    const std::string c = options_detail::check_text(check);
    return std::string(options_detail::type_name<T>()) + (c.empty() ? "" : " " + c);
  }
  template <class T, class Check>
  static std::string default_of(const T& v, const Check&) {
    return options_detail::yaml_text(v);
  }
  static std::string default_of(int64_t v, const Limit&) { return v == 0 ? "all" : options_detail::yaml_text(v); }
  void add(const char* key, std::string type, std::string def, const char* doc) {
    docs_.push_back({key, std::move(type), std::move(def), doc, ""});
  }
  std::vector<OptionDoc> docs_;
};


/// Defines `static T from_config(const Config&)` and `static std::vector<OptionDoc> describe()`
/// from the struct's `template <class V> void visit(V&)`; an optional
/// `void check(const Config&) const` then validates across fields.
#define TANDEM_OPTIONS(T)                                       \
  static T from_config(const ::tandem::Config& c) {             \
    T o;                                                        \
    ::tandem::OptionReader r(c);                                \
    o.visit(r);                                                 \
    ::tandem::options_detail::check_across(o, c);               \
    return o;                                                   \
  }                                                             \
  static std::vector<::tandem::OptionDoc> describe() {          \
    T o;                                                        \
    ::tandem::OptionDescriber d;                                \
    o.visit(d);                                                 \
    return d.docs();                                            \
  }

/// The options of a component that has none (`type:` alone configures it).
struct NoOptions {
  template <class V>
  void visit(V&) {}
  TANDEM_OPTIONS(NoOptions)
};

/// Which option list documents each registered component: kind -> name -> describe().
/// TANDEM_REGISTER fills it for every component whose class names its options `Options`.
class OptionCatalog {
 public:
  using Describe = std::function<std::vector<OptionDoc>()>;
  static void add(const std::string& kind, const std::string& name, Describe d);
  /// The options of `kind`/`name`, or nullopt when that component declares none.
  static std::optional<std::vector<OptionDoc>> find(const std::string& kind, const std::string& name);

 private:
  static std::map<std::string, std::map<std::string, Describe>>& table();
};

}  // namespace tandem
