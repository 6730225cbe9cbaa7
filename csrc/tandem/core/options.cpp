#include "tandem/core/options.h"

#include <sstream>

namespace tandem {
namespace options_detail {

std::string yaml_text(bool v) { return v ? "true" : "false"; }
std::string yaml_text(int64_t v) { return std::to_string(v); }
std::string yaml_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string yaml_text(const std::string& v) { return v.empty() ? "\"\"" : v; }
template <class T>
static std::string list_text(const std::vector<T>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + yaml_text(v[i]);
  return out + "]";
}
std::string yaml_text(const std::vector<int64_t>& v) { return list_text(v); }
std::string yaml_text(const std::vector<double>& v) { return list_text(v); }
std::string yaml_text(const std::vector<std::string>& v) { return list_text(v); }
std::string yaml_text(const IntsOrAll& v) { return v.all ? "all" : v.values.empty() ? "(unset)" : list_text(v.values); }

template <> const char* type_name<bool>() { return "bool"; }
template <> const char* type_name<int64_t>() { return "integer"; }
template <> const char* type_name<double>() { return "number"; }
template <> const char* type_name<std::string>() { return "string"; }
template <> const char* type_name<std::vector<int64_t>>() { return "list of integers"; }
template <> const char* type_name<std::vector<double>>() { return "list of numbers"; }
template <> const char* type_name<std::vector<std::string>>() { return "list of strings"; }
template <> const char* type_name<IntsOrAll>() { return "list of integers or \"all\""; }

std::string check_text(const NoCheck&) { return ""; }
std::string check_text(const Positive&) { return "> 0"; }
std::string check_text(const NonNegative&) { return ">= 0"; }
std::string check_text(const Range& r) { return "in [" + yaml_text(r.lo) + ", " + yaml_text(r.hi) + "]"; }
std::string check_text(const OneOf& o) {
  std::string s = "(one of:";
  for (size_t i = 0; i < o.choices.size(); ++i) s += (i ? ", " : " ") + o.choices[i];
  return s + ")";
}
std::string check_text(const Limit&) { return "> 0 or \"all\""; }

}  // namespace options_detail

IntsOrAll OptionReader::read(const char* key, const IntsOrAll& fallback, const options_detail::NoCheck&) const {
  if (!c_.has(key)) return fallback;
  IntsOrAll out;
  const YAML::Node& n = c_.node()[key];
  if (n.IsSequence()) {
    out.values = c_.get<std::vector<int64_t>>(key);
  } else if (c_.get<std::string>(key) == "all") {
    out.all = true;
  } else {
    c_.fail(key, "a list of integers or \"all\"");
  }
  return out;
}

std::map<std::string, std::map<std::string, OptionCatalog::Describe>>& OptionCatalog::table() {
  static auto* t = new std::map<std::string, std::map<std::string, Describe>>();
  return *t;
}

void OptionCatalog::add(const std::string& kind, const std::string& name, Describe d) { table()[kind][name] = std::move(d); }

std::optional<std::vector<OptionDoc>> OptionCatalog::find(const std::string& kind, const std::string& name) {
  auto k = table().find(kind);
  if (k == table().end()) return std::nullopt;
  auto n = k->second.find(name);
  if (n == k->second.end()) return std::nullopt;
  return n->second();
}

}  // namespace tandem
