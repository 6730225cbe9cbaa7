// Reading one component object of a tokenizer file so that no key goes unread: every key is
// either taken by get()/required() or accepted by ignore() with a reason, and finish() refuses
// the rest, naming the file, the component and the key.
#pragma once

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

}  // namespace tandem::text
