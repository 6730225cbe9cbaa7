// Config: typed, path-aware access to a YAML configuration.
//
// Every error names where the bad value came from (file and line, or the command-line
// override), the dotted key path, and what was expected:
//   configs/spa/xsum.yaml:12: spa.plugin.rank: expected a positive integer, got "abc"
// Keys that no component reads are errors too (check_unused), so a typo never silently
// falls back to a default.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace tandem {

/// Raised for every configuration problem; what() is the full, user-facing message.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
struct ConfigState;
}

/// A view of one node of a loaded configuration. Cheap to copy; all views of one
/// configuration share the bookkeeping of which keys were read.
class Config {
 public:
  /// Loads `path`, resolving `extends:` (a file or list of files, relative to the including
  /// file; later entries and the including file win), then applies `key.path=value` overrides.
  static Config load_file(const std::string& path, const std::vector<std::string>& overrides = {});
  /// Same, from YAML text; `name` stands for the file name in messages, `base_dir` resolves
  /// relative `extends:` paths.
  static Config load_string(const std::string& yaml, const std::string& name,
                            const std::vector<std::string>& overrides = {},
                            const std::string& base_dir = ".");

  /// Dotted path of this node ("" for the root).
  const std::string& path() const { return path_; }
  /// Name of the root file (or the name given to load_string).
  const std::string& file() const;
  /// "file:line" (or the override) where the value at `key` (or this node) was written.
  std::string where(const std::string& key = "") const;

  bool has(const std::string& key) const;
  /// Child map `key`; missing -> error. The child's keys are then subject to check_unused.
  Config at(const std::string& key) const;
  /// Child map `key` or an empty map when absent.
  Config at_or_empty(const std::string& key) const;
  /// Items of a sequence at `key` (each a Config view).
  std::vector<Config> items(const std::string& key) const;
  /// Keys of this map, in file order.
  std::vector<std::string> keys() const;
  bool is_map() const;

  template <class T>
  T get(const std::string& key) const;
  template <class T>
  T get(const std::string& key, const T& fallback) const;

  int64_t get_positive_int(const std::string& key) const;
  int64_t get_positive_int(const std::string& key, int64_t fallback) const;
  int64_t get_nonnegative_int(const std::string& key, int64_t fallback) const;
  /// A count limit: a positive integer or "all" (also the meaning when absent); returns 0 for
  /// all. 0 is refused: it reads as "none", and silently meaning "all" would surprise.
  int64_t get_limit(const std::string& key) const;
  double get_positive(const std::string& key, double fallback) const;
  /// An integer in [lo, hi] (sizes: a bound keeps a typo like 10^9 from reaching the allocator).
  int64_t get_int_in_range(const std::string& key, int64_t lo, int64_t hi, int64_t fallback) const;
  /// A number in [lo, hi].
  double get_in_range(const std::string& key, double lo, double hi, double fallback) const;
  /// One of `choices` (error lists them).
  std::string get_choice(const std::string& key, const std::vector<std::string>& choices,
                         const std::string& fallback) const;
  /// The `type:` of this node (required): the registry name of the component it configures.
  std::string type() const;

  /// Marks `key` (and everything under it) as read, for values consumed as a whole.
  void mark_used(const std::string& key) const;
  /// For a section the chosen method does not use (a grid's shared base gives every method the
  /// same sections): accepted, and said in the run log with `why`, never silently. Validate its
  /// keys first where they can be (read them) so a typo there still fails.
  void set_aside(const std::string& key, const std::string& why) const;
  /// The notes set_aside() made, for the run log.
  std::vector<std::string> set_aside_notes() const;

  /// Throws ConfigError for a value at `key` that fails a check the caller made.
  [[noreturn]] void fail(const std::string& key, const std::string& expected) const;

  /// Throws ConfigError naming every key that nothing read (with a "did you mean").
  void check_unused() const;

  /// The resolved configuration (extends merged, overrides applied) as YAML text.
  std::string dump() const;
  /// Dotted key paths whose values differ between two YAML documents (a key present in one
  /// only counts), in sorted order; "" stands for the root when one is not a map.
  static std::vector<std::string> differing_keys(const std::string& yaml_a, const std::string& yaml_b);
  /// The raw yaml-cpp node of this view (read-only use).
  const YAML::Node& node() const { return node_; }

 private:
  Config(std::shared_ptr<detail::ConfigState> state, YAML::Node node, std::string path);
  std::string child_path(const std::string& key) const;
  YAML::Node child(const std::string& key) const;  // marks used; Null node if absent
  [[noreturn]] void fail_value(const std::string& key, const YAML::Node& value,
                               const std::string& expected) const;

  std::shared_ptr<detail::ConfigState> state_;
  YAML::Node node_;
  std::string path_;
};

/// Text of a scalar for messages: "abc" quoted, maps/lists summarised.
std::string describe_yaml(const YAML::Node& node);

}  // namespace tandem
