// Reading one component object of a tokenizer file so that no key goes unread: every key is
// either taken by get()/required() or accepted by ignore() with a reason, and finish() refuses
// the rest, naming the file, the component and the key.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tandem::text {

class JsonFields {
 public:
  JsonFields(const nlohmann::json& j, std::string file, std::string where)
      : j_(j), file_(std::move(file)), where_(std::move(where)) {
    if (!j_.is_object()) fail("must be an object, got " + j_.dump());
    used_.insert("type");
  }
  template <class T>
  T get(const std::string& key, const T& fallback) {
    used_.insert(key);
    if (!j_.contains(key) || j_[key].is_null()) return fallback;
    try {
      return j_[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(key + " has the wrong type (" + j_[key].dump() + ")");
    }
  }
  template <class T>
  T required(const std::string& key) {
    if (!j_.contains(key) || j_[key].is_null()) fail("missing " + key);
    return get<T>(key, T{});
  }
  const nlohmann::json& node(const std::string& key) {
    used_.insert(key);
    static const nlohmann::json null;
    return j_.contains(key) ? j_[key] : null;
  }
  /// Keys that change nothing tandem computes (offsets it does not report).
  void ignore(const std::string& key) { used_.insert(key); }
  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) fail("option \"" + it.key() + "\" is not supported (value " + it.value().dump() + ")");
  }
  [[noreturn]] void fail(const std::string& what) const { throw std::runtime_error(file_ + ": " + where_ + ": " + what); }
  const std::string& file() const { return file_; }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& j_;
  std::string file_, where_;
  std::set<std::string> used_;
};

/// Builds one pipeline stage from its JSON object: the builder registered under its "type" (an
/// unknown type is refused listing the known ones), then every key the builder left unread refused.
template <class Target>
void build_stage(const std::map<std::string, std::function<void(JsonFields&, Target&)>>& builders, const char* kind,
                 const nlohmann::json& j, const std::string& file, const std::string& where, Target& target) {
  JsonFields f(j, file, where);
  const std::string type = f.required<std::string>("type");
  auto it = builders.find(type);
  if (it == builders.end()) {
    std::string known;
    for (const auto& entry : builders) known += (known.empty() ? "" : ", ") + entry.first;
    f.fail(std::string(kind) + " \"" + type + "\" is not supported (supported: " + known + ")");
  }
  it->second(f, target);
  f.finish();
}

}  // namespace tandem::text
