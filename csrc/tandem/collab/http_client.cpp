// The `openai` client: OpenAI-compatible /chat/completions over HTTP (cpp-httplib).
// Retries with exponential backoff on connection failures, timeouts, 429 and 5xx, and on
// bodies that are not the expected JSON (malformed or truncated); other 4xx fail at once.
// A 429/503 with Retry-After waits what the server asked (capped at max_retry_after_s).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <future>
#include <thread>

#include <httplib.h>

#include "tandem/collab/lm_client.h"

namespace tandem::collab {
namespace {

struct Url {
  std::string origin, prefix;  // "http://host:port", "/v1"
};

Url split_url(const std::string& url, const std::string& where) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos || url.compare(0, scheme, "http") != 0)
    throw std::invalid_argument(where + ": base_url \"" + url + "\" must start with http:// (https needs an OpenSSL build)");
  const auto slash = url.find('/', scheme + 3);
  Url u{slash == std::string::npos ? url : url.substr(0, slash), slash == std::string::npos ? "" : url.substr(slash)};
  while (!u.prefix.empty() && u.prefix.back() == '/') u.prefix.pop_back();
  return u;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

/// Retry-After in seconds (RFC 9110: delta-seconds, or an HTTP date); -1 when unreadable.
double retry_after_seconds(const std::string& v) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (end != v.c_str() && *end == '\0' && d >= 0) return d;
  std::tm tm{};
  if (strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
    const double delta = std::difftime(timegm(&tm), std::time(nullptr));
    return std::max(0.0, delta);
  }
  return -1;
}

class OpenAIClient : public LMClient {
 public:
  using Options = OpenAIClientOptions;

  OpenAIClient(const Config& cfg, const RuntimeOptions&) : OpenAIClient(Options::from_config(cfg), cfg) {}
  OpenAIClient(const Options& o, const Config& cfg)
      : url_(split_url(o.base_url, cfg.where("base_url"))),
        model_(o.model),
        timeout_s_(o.timeout_s),
        retries_(o.max_retries),
        backoff_s_(o.backoff_s),
        max_retry_after_s_(o.max_retry_after_s),
        concurrency_(o.concurrency),
        send_schema_(o.send_schema) {
    const std::string& env = o.api_key_env;
    if (!env.empty()) {
      const char* v = std::getenv(env.c_str());
      if (!v || !*v) throw std::invalid_argument(cfg.where("api_key_env") + ": environment variable " + env + " is not set");
      key_ = v;
    }
  }

  std::vector<ChatResponse> chat(const std::vector<ChatRequest>& batch) override {
    std::vector<ChatResponse> out(batch.size());
    // Up to `concurrency` requests in flight: a remote serves them side by side (or batches them).
    for (size_t s = 0; s < batch.size(); s += static_cast<size_t>(concurrency_)) {
      std::vector<std::future<ChatResponse>> fs;
      const size_t e = std::min(batch.size(), s + static_cast<size_t>(concurrency_));
      for (size_t i = s; i < e; ++i) fs.push_back(std::async(std::launch::async, [this, &batch, i] { return one(batch[i]); }));
      for (size_t i = s; i < e; ++i) out[i] = fs[i - s].get();
    }
    return out;
  }
  std::string describe() const override { return "openai:" + url_.origin + url_.prefix + " model=" + model_; }

 private:
  ChatResponse one(const ChatRequest& r) const {
    nlohmann::json body = r.to_openai(model_);
    if (!send_schema_) body.erase("response_format");
    const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string last;
    double wait_s = 0;  // before the next attempt: backoff, or what Retry-After asked
    for (int attempt = 0; attempt <= retries_; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait_s));
      wait_s = backoff_s_ * static_cast<double>(1LL << std::min(attempt, 30));
      httplib::Client cli(url_.origin);
      const auto secs = static_cast<time_t>(timeout_s_);
      const auto usecs = static_cast<time_t>((timeout_s_ - static_cast<double>(secs)) * 1e6);
      cli.set_connection_timeout(secs, usecs);
      cli.set_read_timeout(secs, usecs);
      cli.set_write_timeout(secs, usecs);
      httplib::Headers h;
      if (!key_.empty()) h.emplace("Authorization", "Bearer " + key_);
      auto res = cli.Post(url_.prefix + "/chat/completions", h, payload, "application/json");
      if (!res) {
        // Read errors cover both a timeout and a body cut short by a closed connection.
        const auto err = res.error();
        last = err == httplib::Error::Read || err == httplib::Error::Connection
                   ? "no complete reply within the timeout of " + fmt_seconds(timeout_s_) + " s (timeout_s) or the connection closed (" +
                         httplib::to_string(err) + ")"
                   : "no reply (" + httplib::to_string(err) + ")";
        continue;
      }
      if (res->status == 429 || res->status >= 500) {
        last = "HTTP " + std::to_string(res->status) + ": " + res->body.substr(0, 200);
        if (res->has_header("Retry-After")) {
          const double asked = retry_after_seconds(res->get_header_value("Retry-After"));
          if (asked > max_retry_after_s_) {
            throw RemoteError(describe() + ": HTTP " + std::to_string(res->status) + " with Retry-After " + fmt_seconds(asked) +
                              " s, more than max_retry_after_s (" + fmt_seconds(max_retry_after_s_) + "); " + last);
          }
          if (asked >= 0) wait_s = asked;
        }
        continue;
      }
      if (res->status != 200)
        throw RemoteError(describe() + ": HTTP " + std::to_string(res->status) + " (not retried): " + res->body.substr(0, 300));
      try {
        auto j = nlohmann::json::parse(res->body);
        const auto& c = j.at("choices").at(0);
        ChatResponse out;
        out.content = c.at("message").at("content").is_null() ? "" : c.at("message").at("content").get<std::string>();
        out.finish_reason = c.value("finish_reason", std::string());
        if (j.contains("usage") && j["usage"].is_object()) {
          out.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
          out.completion_tokens = j["usage"].value("completion_tokens", int64_t{0});
        }
        out.attempts = attempt + 1;
        return out;
      } catch (const nlohmann::json::exception& e) {
        last = std::string("malformed reply (") + e.what() + "): " + res->body.substr(0, 120);
      }
    }
    throw RemoteError(describe() + ": gave up after " + std::to_string(retries_ + 1) + " attempts; last: " + last);
  }

  Url url_;
  std::string model_, key_;
  double timeout_s_;
  int64_t retries_;
  double backoff_s_, max_retry_after_s_;
  int64_t concurrency_;
  bool send_schema_;
};
TANDEM_REGISTER(LMClient, "openai", OpenAIClient);

}  // namespace
}  // namespace tandem::collab
