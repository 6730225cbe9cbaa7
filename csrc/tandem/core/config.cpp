#include "tandem/core/config.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace tandem {
namespace detail {

struct ConfigState {
  std::string file;                            // root file, as the user named it
  YAML::Node root;                             // resolved tree
  std::map<std::string, std::string> origin;   // path -> file or override that wrote it (subtree)
  std::set<std::string> used;                  // paths some component asked for
  std::set<std::string> used_whole;            // paths consumed as a whole (no key checks below)
  std::vector<std::string> set_aside;          // "where: key: why" for sections read but not used
};

}  // namespace detail

namespace {

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// Forgets origins recorded inside a subtree that is being replaced.
void erase_origins_under(std::map<std::string, std::string>& origin, const std::string& path) {
  auto it = origin.lower_bound(path);
  while (it != origin.end() && it->first.compare(0, path.size(), path) == 0) {
    const std::string& k = it->first;
    if (k.size() == path.size() || k[path.size()] == '.' || k[path.size()] == '[')
      it = origin.erase(it);
    else
      ++it;
  }
}

// Deep merge: maps merge key by key, anything else replaces. Records who wrote what.
void merge_into(YAML::Node dst, const YAML::Node& src, const std::string& src_name,
                const std::string& path, std::map<std::string, std::string>& origin,
                bool skip_extends) {
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (skip_extends && path.empty() && key == "extends") continue;
    const std::string p = join(path, key);
    // A copy, not a reference: yaml-cpp's iterator hands out a temporary proxy, and a reference
    // to its member dangles after this statement (AddressSanitizer found it).
    const YAML::Node value = it->second;
    const YAML::Node& cdst = dst;
    YAML::Node existing = cdst[key];
    if (existing.IsDefined() && existing.IsMap() && value.IsMap()) {
      merge_into(existing, value, src_name, p, origin, false);
    } else {
      erase_origins_under(origin, p);
      // Insert the source's own key node so the key keeps its file position.
      if (existing.IsDefined()) dst.remove(key);
      dst.force_insert(it->first, value);
      origin[p] = src_name;
    }
  }
}

std::string read_text_file(const std::string& path, const std::string& who) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(who + "cannot read config file '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// YAML forbids a key twice in one mapping, but yaml-cpp keeps both and the merge would let the
// last win (or merge two sections): refuse it, naming both lines.
void check_duplicate_keys(const YAML::Node& n, const std::string& name, const std::string& path) {
  if (n.IsMap()) {
    std::map<std::string, int> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const int line = it->first.Mark().line + 1;
      if (!it->first.IsScalar())
        throw ConfigError(name + ":" + std::to_string(line) + ": " + (path.empty() ? std::string("(top level)") : path) +
                          ": a key must be a plain name, got " + describe_yaml(it->first));
      const std::string key = it->first.Scalar();
      const std::string p = path.empty() ? key : path + "." + key;
      auto [at, fresh] = seen.emplace(key, line);
      if (!fresh)
        throw ConfigError(name + ":" + std::to_string(line) + ": " + p + ": duplicated key (first written at line " +
                          std::to_string(at->second) + "); a key may appear once in a mapping");
      check_duplicate_keys(it->second, name, p);
    }
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) check_duplicate_keys(n[i], name, path + "[" + std::to_string(i) + "]");
  }
}

YAML::Node parse_yaml(const std::string& text, const std::string& name) {
  try {
    YAML::Node n = YAML::Load(text);
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Map);
    if (!n.IsMap())
      throw ConfigError(name + ":" + std::to_string(n.Mark().line + 1) +
                        ": expected a mapping of keys to values at the top level, got " +
                        describe_yaml(n));
    check_duplicate_keys(n, name, "");
    return n;
  } catch (const YAML::Exception& e) {
    std::string where = name;
    if (!e.mark.is_null())
      where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw ConfigError(where + ": malformed YAML: " + e.msg);
  }
}

// Loads one file's tree with its `extends:` chain resolved.
void load_tree(const std::string& text, const std::string& name, const std::string& base_dir,
               std::vector<std::string>& stack, YAML::Node acc,
               std::map<std::string, std::string>& origin) {
  YAML::Node own = parse_yaml(text, name);
  const YAML::Node& cown = own;
  YAML::Node ext = cown["extends"];
  if (ext.IsDefined() && !ext.IsNull()) {
    std::vector<std::string> bases;
    auto where = name + ":" + std::to_string(ext.Mark().line + 1) + ": extends: ";
    if (ext.IsScalar()) {
      bases.push_back(ext.as<std::string>());
    } else if (ext.IsSequence()) {
      for (const auto& b : ext) {
        if (!b.IsScalar()) throw ConfigError(where + "expected a file name, got " + describe_yaml(b));
        bases.push_back(b.as<std::string>());
      }
    } else {
      throw ConfigError(where + "expected a file name or a list of file names, got " +
                        describe_yaml(ext));
    }
    for (const auto& b : bases) {
      fs::path resolved = fs::path(b).is_absolute() ? fs::path(b) : fs::path(base_dir) / b;
      std::string rname = resolved.lexically_normal().string();
      if (std::find(stack.begin(), stack.end(), rname) != stack.end()) {
        std::string chain;
        for (const auto& s : stack) chain += s + " -> ";
        throw ConfigError(where + "cycle: " + chain + rname);
      }
      if (!fs::exists(resolved))
        throw ConfigError(where + "cannot read base config '" + b + "' (looked for " + rname + ")");
      stack.push_back(rname);
      load_tree(read_text_file(rname, where), rname, resolved.parent_path().string(), stack, acc,
                origin);
      stack.pop_back();
    }
  }
  merge_into(acc, own, name, "", origin, /*skip_extends=*/true);
}

void apply_override(YAML::Node root, const std::string& ov,
                    std::map<std::string, std::string>& origin) {
  const std::string who = "command-line override '" + ov + "'";
  auto eq = ov.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(who + ": expected KEY.PATH=VALUE (for example train.lr=3e-4)");
  const std::string key = ov.substr(0, eq);
  const std::string text = ov.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string seg; std::getline(ss, seg, '.');) {
    if (seg.empty()) throw ConfigError(who + ": empty segment in key path '" + key + "'");
    parts.push_back(seg);
  }
  YAML::Node value;
  try {
    value = text.empty() ? YAML::Node(YAML::NodeType::Null) : YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(who + ": malformed value '" + text + "': " + e.msg);
  }
  YAML::Node cur(root);
  std::string path;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    path = join(path, parts[i]);
    const YAML::Node& ccur = cur;
    const YAML::Node probe = ccur[parts[i]];  // const lookup: never inserts
    if (!probe.IsDefined() || probe.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
    } else if (!probe.IsMap()) {
      throw ConfigError(who + ": '" + path + "' holds " + describe_yaml(probe) +
                        ", not a mapping, so it has no key '" + parts[i + 1] + "'");
    }
    YAML::Node next = cur[parts[i]];  // exists now
    cur.reset(next);
  }
  erase_origins_under(origin, key);
  cur[parts.back()] = value;
  origin[key] = who;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

template <class T>
struct TypeName;
template <> struct TypeName<bool> { static const char* get() { return "true or false"; } };
template <> struct TypeName<int> { static const char* get() { return "an integer"; } };
template <> struct TypeName<int64_t> { static const char* get() { return "an integer"; } };
template <> struct TypeName<double> { static const char* get() { return "a number"; } };
template <> struct TypeName<std::string> { static const char* get() { return "a string"; } };
template <> struct TypeName<std::vector<int64_t>> { static const char* get() { return "a list of integers"; } };
template <> struct TypeName<std::vector<double>> { static const char* get() { return "a list of numbers"; } };
template <> struct TypeName<std::vector<std::string>> { static const char* get() { return "a list of strings"; } };

template <class T>
bool convert_scalar(const YAML::Node& n, T& out) {
  if (!n.IsScalar()) return false;
  try {
    out = n.as<T>();
    return true;
  } catch (const YAML::Exception&) {
    return false;
  }
}

template <class T>
struct Converter {
  static bool convert(const YAML::Node& n, T& out) { return convert_scalar(n, out); }
};
template <class E>
struct Converter<std::vector<E>> {
  static bool convert(const YAML::Node& n, std::vector<E>& out) {
    if (!n.IsSequence()) return false;
    out.clear();
    for (const auto& item : n) {
      E e;
      if (!convert_scalar(item, e)) return false;
      out.push_back(e);
    }
    return true;
  }
};

}  // namespace

std::string describe_yaml(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing (null)";
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  return "\"" + node.Scalar() + "\"";
}

Config::Config(std::shared_ptr<detail::ConfigState> state, YAML::Node node, std::string path)
    : state_(std::move(state)), node_(node), path_(std::move(path)) {}

Config Config::load_file(const std::string& path, const std::vector<std::string>& overrides) {
  const std::string text = read_text_file(path, "");
  return load_string(text, path, overrides, fs::path(path).parent_path().string());
}

Config Config::load_string(const std::string& yaml, const std::string& name,
                           const std::vector<std::string>& overrides, const std::string& base_dir) {
  auto state = std::make_shared<detail::ConfigState>();
  state->file = name;
  state->root = YAML::Node(YAML::NodeType::Map);
  std::vector<std::string> stack{fs::path(name).lexically_normal().string()};
  load_tree(yaml, name, base_dir.empty() ? "." : base_dir, stack, state->root, state->origin);
  for (const auto& ov : overrides) apply_override(state->root, ov, state->origin);
  return Config(state, state->root, "");
}

const std::string& Config::file() const { return state_->file; }

std::string Config::child_path(const std::string& key) const { return join(path_, key); }

std::string Config::where(const std::string& key) const {
  const std::string p = key.empty() ? path_ : child_path(key);
  // The longest recorded prefix of p says which file (or override) wrote it.
  std::string src = state_->file;
  for (std::string probe = p;;) {
    auto it = state_->origin.find(probe);
    if (it != state_->origin.end()) {
      src = it->second;
      break;
    }
    auto cut = probe.find_last_of(".[");
    if (cut == std::string::npos) break;
    probe = probe.substr(0, cut);
  }
  if (src.rfind("command-line override", 0) == 0) return src;
  YAML::Node n = node_;
  if (!key.empty()) {
    const YAML::Node& cn = node_;
    YAML::Node c = cn.IsMap() ? cn[key] : YAML::Node();
    if (c.IsDefined() && !c.Mark().is_null()) n.reset(c);
  }
  if (n.Mark().is_null()) return src;
  return src + ":" + std::to_string(n.Mark().line + 1);
}

YAML::Node Config::child(const std::string& key) const {
  state_->used.insert(child_path(key));
  if (!node_.IsMap()) return YAML::Node();
  const YAML::Node& cn = node_;
  return cn[key];
}

bool Config::has(const std::string& key) const {
  YAML::Node c = child(key);
  return c.IsDefined() && !c.IsNull();
}

bool Config::is_map() const { return node_.IsMap(); }

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  if (node_.IsMap())
    for (auto it = node_.begin(); it != node_.end(); ++it) out.push_back(it->first.as<std::string>());
  return out;
}

Config Config::at(const std::string& key) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull())
    throw ConfigError(where() + ": " + child_path(key) + ": missing required section (expected a mapping)");
  if (!c.IsMap()) fail_value(key, c, "a mapping");
  return Config(state_, c, child_path(key));
}

Config Config::at_or_empty(const std::string& key) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return Config(state_, YAML::Node(YAML::NodeType::Map), child_path(key));
  if (!c.IsMap()) fail_value(key, c, "a mapping");
  return Config(state_, c, child_path(key));
}

std::vector<Config> Config::items(const std::string& key) const {
  YAML::Node c = child(key);
  std::vector<Config> out;
  if (!c.IsDefined() || c.IsNull()) return out;
  if (!c.IsSequence()) fail_value(key, c, "a list");
  for (size_t i = 0; i < c.size(); ++i) {
    std::string p = child_path(key) + "[" + std::to_string(i) + "]";
    state_->used.insert(p);
    out.push_back(Config(state_, c[i], p));
  }
  return out;
}

void Config::fail_value(const std::string& key, const YAML::Node& value,
                        const std::string& expected) const {
  throw ConfigError(where(key) + ": " + child_path(key) + ": expected " + expected + ", got " +
                    describe_yaml(value));
}

void Config::fail(const std::string& key, const std::string& expected) const {
  YAML::Node c = child(key);
  fail_value(key, c, expected);
}

template <class T>
T Config::get(const std::string& key) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull())
    throw ConfigError(where() + ": " + child_path(key) + ": missing required key (expected " +
                      TypeName<T>::get() + ")");
  T out{};
  if (!Converter<T>::convert(c, out)) fail_value(key, c, TypeName<T>::get());
  return out;
}

template <class T>
T Config::get(const std::string& key, const T& fallback) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return fallback;
  T out{};
  if (!Converter<T>::convert(c, out)) fail_value(key, c, TypeName<T>::get());
  return out;
}

#define TANDEM_CONFIG_INSTANTIATE(T)                              \
  template T Config::get<T>(const std::string&) const;           \
  template T Config::get<T>(const std::string&, const T&) const;
TANDEM_CONFIG_INSTANTIATE(bool)
TANDEM_CONFIG_INSTANTIATE(int)
TANDEM_CONFIG_INSTANTIATE(int64_t)
TANDEM_CONFIG_INSTANTIATE(double)
TANDEM_CONFIG_INSTANTIATE(std::string)
TANDEM_CONFIG_INSTANTIATE(std::vector<int64_t>)
TANDEM_CONFIG_INSTANTIATE(std::vector<double>)
TANDEM_CONFIG_INSTANTIATE(std::vector<std::string>)
#undef TANDEM_CONFIG_INSTANTIATE

int64_t Config::get_positive_int(const std::string& key) const {
  int64_t v = 0;
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull())
    throw ConfigError(where() + ": " + child_path(key) + ": missing required key (expected a positive integer)");
  if (!convert_scalar(c, v) || v <= 0) fail_value(key, c, "a positive integer");
  return v;
}

int64_t Config::get_positive_int(const std::string& key, int64_t fallback) const {
  return has(key) ? get_positive_int(key) : fallback;
}

int64_t Config::get_nonnegative_int(const std::string& key, int64_t fallback) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return fallback;
  int64_t v = 0;
  if (!convert_scalar(c, v) || v < 0) fail_value(key, c, "an integer >= 0");
  return v;
}

int64_t Config::get_int_in_range(const std::string& key, int64_t lo, int64_t hi, int64_t fallback) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return fallback;
  int64_t v = 0;
  if (!convert_scalar(c, v) || v < lo || v > hi)
    fail_value(key, c, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

int64_t Config::get_limit(const std::string& key) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return 0;
  if (c.IsScalar() && c.Scalar() == "all") return 0;
  int64_t v = 0;
  if (!convert_scalar(c, v) || v <= 0) fail_value(key, c, "a positive integer, or \"all\" (leave it out for all)");
  return v;
}

double Config::get_positive(const std::string& key, double fallback) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return fallback;
  double v = 0;
  if (!convert_scalar(c, v) || !(v > 0)) fail_value(key, c, "a positive number");
  return v;
}

double Config::get_in_range(const std::string& key, double lo, double hi, double fallback) const {
  YAML::Node c = child(key);
  if (!c.IsDefined() || c.IsNull()) return fallback;
  double v = 0;
  if (!convert_scalar(c, v) || !(v >= lo && v <= hi)) {
    std::ostringstream e;
    e << "a number in [" << lo << ", " << hi << "]";
    fail_value(key, c, e.str());
  }
  return v;
}

std::string Config::get_choice(const std::string& key, const std::vector<std::string>& choices,
                               const std::string& fallback) const {
  std::string v = get<std::string>(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    fail(key, "one of: " + list);
  }
  return v;
}

std::string Config::type() const { return get<std::string>("type"); }

void Config::set_aside(const std::string& key, const std::string& why) const {
  if (!has(key)) return;
  mark_used(key);
  state_->set_aside.push_back(where(key) + ": " + child_path(key) + ": not used (" + why + ")");
}

std::vector<std::string> Config::set_aside_notes() const { return state_->set_aside; }

void Config::mark_used(const std::string& key) const {
  state_->used.insert(child_path(key));
  state_->used_whole.insert(child_path(key));
}

void Config::check_unused() const {
  std::vector<std::string> problems;
  const auto& used = state_->used;
  auto any_used_under = [&](const std::string& p) {
    auto it = used.lower_bound(p + ".");
    if (it != used.end() && it->compare(0, p.size() + 1, p + ".") == 0) return true;
    it = used.lower_bound(p + "[");
    return it != used.end() && it->compare(0, p.size() + 1, p + "[") == 0;
  };
  // Keys the code asked for directly under `parent` (present or not): the "known" keys there.
  auto known_under = [&](const std::string& parent) {
    std::vector<std::string> out;
    const std::string prefix = parent.empty() ? "" : parent + ".";
    for (auto it = used.lower_bound(prefix); it != used.end(); ++it) {
      if (it->compare(0, prefix.size(), prefix) != 0) break;
      std::string rest = it->substr(prefix.size());
      if (rest.find_first_of(".[") == std::string::npos && !rest.empty()) out.push_back(rest);
    }
    return out;
  };
  std::function<void(const YAML::Node&, const std::string&)> walk =
      [&](const YAML::Node& n, const std::string& path) {
        if (state_->used_whole.count(path)) return;
        if (n.IsMap()) {
          for (auto it = n.begin(); it != n.end(); ++it) {
            const std::string key = it->first.as<std::string>();
            const std::string p = join(path, key);
            if (used.count(p) || any_used_under(p)) {
              walk(it->second, p);
              continue;
            }
            std::string line = it->first.Mark().is_null() ? "" : ":" + std::to_string(it->first.Mark().line + 1);
            // Keys written by an override carry the override as their place.
            std::string place = Config(state_, state_->root, "").where(p);
            if (place.rfind("command-line override", 0) != 0) {
              auto colon = place.rfind(':');
              place = (colon == std::string::npos ? place : place.substr(0, colon)) + line;
            }
            std::string msg = place + ": " + p + ": unknown key";
            auto known = known_under(path);
            if (!known.empty()) {
              std::string best;
              size_t best_d = std::string::npos;
              for (const auto& k : known) {
                size_t d = edit_distance(k, key);
                if (d < best_d) best_d = d, best = k;
              }
              std::string list;
              for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
              msg += " (expected one of: " + list + ")";
              if (best_d <= std::max<size_t>(2, key.size() / 3)) msg += "; did you mean '" + best + "'?";
            }
            problems.push_back(msg);
          }
        } else if (n.IsSequence()) {
          for (size_t i = 0; i < n.size(); ++i) {
            const std::string p = path + "[" + std::to_string(i) + "]";
            if (used.count(p)) walk(n[i], p);
          }
        }
      };
  walk(node_, path_);
  if (problems.empty()) return;
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "\n") + p;
  throw ConfigError(all);
}

std::string Config::dump() const {
  YAML::Emitter out;
  out << node_;
  return std::string(out.c_str()) + "\n";
}

namespace {

void collect_differences(const YAML::Node& a, const YAML::Node& b, const std::string& path, std::set<std::string>& out) {
  const std::string here = path.empty() ? "(root)" : path;
  if (a.IsMap() && b.IsMap()) {
    std::set<std::string> keys;
    for (const auto& kv : a) keys.insert(kv.first.as<std::string>());
    for (const auto& kv : b) keys.insert(kv.first.as<std::string>());
    for (const auto& k : keys) {
      const std::string sub = path.empty() ? k : path + "." + k;
      const YAML::Node x = a[k], y = b[k];
      if (!x.IsDefined() || !y.IsDefined()) {
        out.insert(sub);
        continue;
      }
      collect_differences(x, y, sub, out);
    }
    return;
  }
  if (a.IsSequence() && b.IsSequence()) {
    if (a.size() != b.size()) {
      out.insert(here);
      return;
    }
    for (size_t i = 0; i < a.size(); ++i) collect_differences(a[i], b[i], path + "[" + std::to_string(i) + "]", out);
    return;
  }
  if (a.Type() != b.Type() || (a.IsScalar() && a.Scalar() != b.Scalar())) out.insert(here);
}

}  // namespace

std::vector<std::string> Config::differing_keys(const std::string& yaml_a, const std::string& yaml_b) {
  std::set<std::string> out;
  collect_differences(YAML::Load(yaml_a), YAML::Load(yaml_b), "", out);
  return {out.begin(), out.end()};
}

}  // namespace tandem
