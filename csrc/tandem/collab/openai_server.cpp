#include "tandem/collab/openai_server.h"

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <set>

#include <httplib.h>

#include "tandem/collab/connection_watchdog.h"
#include "tandem/collab/json_constraint.h"

namespace tandem::collab {
namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A client error: answered with `status` and an OpenAI-style error body naming the field.
struct BadRequest : std::runtime_error {
  BadRequest(int status, const std::string& msg, std::string code = "")
      : std::runtime_error(msg), status(status), code(std::move(code)) {}
  int status;
  std::string code;
};

[[noreturn]] void bad(const std::string& msg) { throw BadRequest(400, msg); }

// Request fields, per endpoint: honoured ones, and ones accepted only at the value that changes
// nothing (OpenAI clients send some of them by default). Anything else is refused by name.
const std::set<std::string> kChatFields = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature",
                                           "top_p", "seed", "n", "response_format", "stream", "user", "metadata",
                                           "store", "stop", "frequency_penalty", "presence_penalty", "logprobs"};
const std::set<std::string> kCompletionFields = {"model", "prompt", "max_tokens", "temperature", "top_p", "seed", "n",
                                                 "stream", "user", "stop", "frequency_penalty", "presence_penalty",
                                                 "logprobs", "echo", "best_of"};

double number_in(const nlohmann::json& body, const std::string& key, double lo, double hi, double fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const auto& v = body[key];
  if (!v.is_number()) bad("'" + key + "' must be a number, got " + v.dump());
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) {
    char range[64];
    std::snprintf(range, sizeof range, "%g and %g", lo, hi);
    bad("'" + key + "' must be between " + range + ", got " + v.dump());
  }
  return x;
}

int64_t integer_in(const nlohmann::json& body, const std::string& key, int64_t lo, int64_t hi, int64_t fallback) {
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const auto& v = body[key];
  if (!v.is_number_integer()) bad("'" + key + "' must be an integer, got " + v.dump());
  const int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : v.get<int64_t>();
  if (x < lo || x > hi) bad("'" + key + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v.dump());
  return x;
}

/// Checks that every field is known, and that the ones tandem does not implement hold the value
/// that means "off"; a field tandem cannot honour is refused rather than ignored.
void check_fields(const nlohmann::json& body, const std::set<std::string>& known) {
  if (!body.is_object()) bad("the request body must be a JSON object");
  for (const auto& [k, v] : body.items())
    if (!known.count(k)) bad("unsupported parameter '" + k + "' (tandem serve does not implement it)");
  auto off = [&](const std::string& k, const std::function<bool(const nlohmann::json&)>& is_off, const std::string& why) {
    if (body.contains(k) && !body[k].is_null() && !is_off(body[k])) bad("'" + k + "': " + why);
  };
  off("stream", [](const auto& v) { return v == false; }, "streaming is not supported by tandem serve");
  off("stop", [](const auto& v) { return v.is_array() && v.empty(); }, "stop sequences are not supported by tandem serve");
  off("frequency_penalty", [](const auto& v) { return v == 0; }, "only 0 is supported");
  off("presence_penalty", [](const auto& v) { return v == 0; }, "only 0 is supported");
  off("logprobs", [](const auto& v) { return v == false || v == 0; }, "log-probabilities are not returned by tandem serve");
  off("echo", [](const auto& v) { return v == false; }, "echo is not supported");
  off("best_of", [](const auto& v) { return v == 1; }, "only 1 is supported");
  off("user", [](const auto& v) { return v.is_string(); }, "must be a string");
  off("store", [](const auto& v) { return v == false; }, "tandem serve stores nothing");
  off("metadata", [](const auto& v) { return v.is_object(); }, "must be an object");
}

/// True once the peer has closed or reset the connection (nothing is consumed).
bool peer_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) return true;
  char c;
  return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

}  // namespace

void ServeOptions::validate() const {
  auto range = [](bool ok, const std::string& flag, const std::string& want, const std::string& got) {
    if (!ok) throw std::invalid_argument("tandem serve: " + flag + " must be " + want + ", got " + got);
  };
  range(port >= 0 && port <= 65535, "--port", "between 1 and 65535 (0 = any free port)", std::to_string(port));
  range(max_batch >= 1 && max_batch <= 256, "--max-batch", "between 1 and 256", std::to_string(max_batch));
  range(batch_window_ms >= 0 && batch_window_ms <= 10000, "--batch-window-ms", "between 0 and 10000", std::to_string(batch_window_ms));
  range(http_threads >= 1 && http_threads <= 4096, "--http-threads", "between 1 and 4096", std::to_string(http_threads));
  range(read_timeout_s >= 0.1 && read_timeout_s <= 3600, "--read-timeout", "between 0.1 and 3600 seconds", std::to_string(read_timeout_s));
  range(header_timeout_s >= 0.1 && header_timeout_s <= 3600, "--header-timeout", "between 0.1 and 3600 seconds", std::to_string(header_timeout_s));
  range(long_request_tokens >= 1, "--long-request-tokens", "at least 1", std::to_string(long_request_tokens));
  range(max_n >= 1 && max_n <= 64, "max_n", "between 1 and 64", std::to_string(max_n));
  range(!host.empty(), "--host", "a host name or address", "an empty string");
}

OpenAIServer::OpenAIServer(std::shared_ptr<LocalEngine> engine, ServeOptions opts)
    : engine_(std::move(engine)), opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {
  opts_.validate();
  watchdog_ = std::make_unique<ConnectionWatchdog>(opts_.header_timeout_s);
  const int n = opts_.http_threads;
  http_->new_task_queue = [this, n] { return new WatchedPool(static_cast<size_t>(n), *watchdog_); };
  // Exclusive port: cpp-httplib's default also sets SO_REUSEPORT, which lets a second server
  // bind the same busy port and silently take half of its connections.
  http_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  const auto secs = static_cast<time_t>(opts_.read_timeout_s);
  const auto usecs = static_cast<time_t>((opts_.read_timeout_s - static_cast<double>(secs)) * 1e6);
  http_->set_read_timeout(secs, usecs);
  http_->set_keep_alive_timeout(std::max<time_t>(1, secs));
  http_->set_payload_max_length(64u << 20);
  routes();
}

OpenAIServer::~OpenAIServer() { stop(); }

void OpenAIServer::submit(Lane& lane, const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(lane.mu);
    // Checked under the lane's lock: a worker drains its queue under it once stopping_ is set,
    // so every job is answered, by the worker or here.
    if (stopping_) {
      job->done.set_exception(std::make_exception_ptr(std::runtime_error("the server is shutting down")));
      return;
    }
    lane.queue.push_back(job);
  }
  lane.cv.notify_one();
}

void OpenAIServer::worker(Lane& lane) {
  while (true) {
    std::vector<std::shared_ptr<Job>> batch;
    {
      std::unique_lock<std::mutex> lock(lane.mu);
      lane.cv.wait(lock, [&] { return stopping_ || !lane.queue.empty(); });
      if (stopping_) {
        for (auto& j : lane.queue) j->done.set_exception(std::make_exception_ptr(std::runtime_error("the server is shutting down")));
        lane.queue.clear();
        return;
      }
      // The first request waits up to the window for others to share its batch.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(opts_.batch_window_ms);
      lane.cv.wait_until(lock, deadline, [&] { return stopping_ || static_cast<int64_t>(lane.queue.size()) >= opts_.max_batch; });
      while (!lane.queue.empty() && static_cast<int64_t>(batch.size()) < opts_.max_batch) {
        batch.push_back(std::move(lane.queue.front()));
        lane.queue.pop_front();
      }
    }
    std::vector<ChatRequest> chats;
    std::vector<Job*> chat_jobs, comp_jobs;
    for (auto& j : batch) (j->completion ? comp_jobs : chat_jobs).push_back(j.get());
    for (auto* j : chat_jobs) chats.push_back(j->chat);
    try {
      if (!chats.empty()) {
        auto res = engine_->chat(chats);
        for (size_t i = 0; i < chat_jobs.size(); ++i) chat_jobs[i]->done.set_value(res[i]);
      }
      for (auto* j : comp_jobs) j->done.set_value(engine_->complete({j->prompt}, j->chat).at(0));
    } catch (...) {
      for (auto& j : batch) {
        try {
          j->done.set_exception(std::current_exception());
        } catch (const std::future_error&) {  // already answered
        }
      }
    }
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.batches++;
    stats_.requests += static_cast<int64_t>(batch.size());
    stats_.max_batch_seen = std::max<int64_t>(stats_.max_batch_seen, static_cast<int64_t>(batch.size()));
  }
}

void OpenAIServer::reject(httplib::Response& res, int status, const std::string& msg, const std::string& type,
                          const std::string& code) {
  res.status = status;
  nlohmann::json err = {{"message", msg}, {"type", type}, {"param", nullptr}, {"code", code.empty() ? nlohmann::json() : nlohmann::json(code)}};
  res.set_content(nlohmann::json{{"error", err}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  if (status >= 400 && status < 500) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.rejected++;
  }
}

void OpenAIServer::handle(const httplib::Request& req, httplib::Response& res, bool completion) {
  nlohmann::json body;
  try {
    body = nlohmann::json::parse(req.body);
  } catch (const nlohmann::json::exception& e) {
    return reject(res, 400, std::string("request body is not JSON: ") + e.what(), "invalid_request_error");
  }
  ChatRequest settings;
  std::string prompt;
  int64_t n = 1, prompt_tokens = 0;
  try {
    check_fields(body, completion ? kCompletionFields : kChatFields);
    if (body.contains("model") && !body["model"].is_null()) {
      if (!body["model"].is_string()) bad("'model' must be a string");
      if (body["model"].get<std::string>() != engine_->name())
        throw BadRequest(404, "The model '" + body["model"].get<std::string>() + "' does not exist; this server serves '" +
                                  engine_->name() + "'", "model_not_found");
    }
    const int64_t ctx = engine_->context_length();
    settings.max_tokens = integer_in(body, "max_completion_tokens", 1, INT64_MAX, integer_in(body, "max_tokens", 1, INT64_MAX, 256));
    settings.temperature = number_in(body, "temperature", 0.0, 2.0, 0.0);
    settings.top_p = number_in(body, "top_p", 1e-9, 1.0, 1.0);
    settings.seed = static_cast<uint64_t>(integer_in(body, "seed", INT64_MIN, INT64_MAX, 0));
    n = integer_in(body, "n", 1, opts_.max_n, 1);
    if (completion) {
      if (!body.contains("prompt") || !body["prompt"].is_string())
        bad("'prompt' must be one string (batch by sending concurrent requests)");
      prompt = body["prompt"].get<std::string>();
      prompt_tokens = engine_->count_tokens(prompt);
    } else {
      if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
        bad("'messages' must be a non-empty list");
      for (size_t i = 0; i < body["messages"].size(); ++i) {
        const auto& m = body["messages"][i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content"))
          bad("'" + where + "' must be an object with a string 'role' and a 'content'");
        const auto& c = m["content"];
        std::string text;
        if (c.is_string()) {
          text = c.get<std::string>();
        } else if (c.is_array()) {  // [{"type": "text", "text": ...}, ...]
          for (const auto& part : c) {
            if (!part.is_object() || part.value("type", std::string()) != "text" || !part.contains("text") || !part["text"].is_string())
              bad("'" + where + ".content': only text parts are supported");
            text += part["text"].get<std::string>();
          }
        } else {
          bad("'" + where + ".content' must be a string or a list of text parts");
        }
        settings.messages.push_back({m["role"].get<std::string>(), text});
      }
      if (body.contains("response_format") && !body["response_format"].is_null()) {
        const auto& rf = body["response_format"];
        const std::string t = rf.is_object() ? rf.value("type", std::string()) : std::string();
        if (t == "json_schema" && rf.contains("json_schema") && rf["json_schema"].is_object() && rf["json_schema"].contains("schema"))
          settings.json_schema = rf["json_schema"]["schema"];
        else if (t == "json_object" && rf.contains("schema"))
          settings.json_schema = rf["schema"];
        else if (t != "text")
          bad("'response_format': type \"" + t + "\" needs a schema (json_schema.schema)");
        if (!settings.json_schema.is_null()) parse_json_schema(settings.json_schema, "response_format.json_schema.schema");
      }
      prompt_tokens = engine_->prompt_tokens(settings);
    }
    // The context must hold the prompt and every token asked for (OpenAI answers 400 too).
    if (prompt_tokens + settings.max_tokens > ctx || settings.max_tokens > ctx)
      throw BadRequest(400, "This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                                std::to_string(prompt_tokens + std::min(settings.max_tokens, ctx * 1000)) + " tokens (" +
                                std::to_string(prompt_tokens) + " in the prompt, " + std::to_string(settings.max_tokens) +
                                " for the completion). Please reduce the prompt or max_tokens.",
                       "context_length_exceeded");
  } catch (const BadRequest& e) {
    return reject(res, e.status, e.what(), "invalid_request_error", e.code);
  } catch (const std::exception& e) {  // schema and template errors: the client's input
    return reject(res, 400, e.what(), "invalid_request_error");
  }
  if (stopping_) return reject(res, 503, "the server is shutting down", "server_error");

  // n choices: n jobs (seeds seed, seed+1, ...), in the lane their size calls for.
  Lane& lane = lanes_[prompt_tokens + settings.max_tokens > opts_.long_request_tokens ? 1 : 0];
  std::vector<std::shared_ptr<Job>> jobs;
  std::vector<std::future<ChatResponse>> futures;
  for (int64_t i = 0; i < n; ++i) {
    auto job = std::make_shared<Job>();
    job->completion = completion;
    job->chat = settings;
    job->chat.seed = settings.seed + static_cast<uint64_t>(i);
    job->chat.cancel = job->cancel;
    job->prompt = prompt;
    futures.push_back(job->done.get_future());
    jobs.push_back(job);
  }
  for (auto& j : jobs) submit(lane, j);
  // Wait, watching the connection: a client that went away (or a shutdown) cancels its jobs.
  const int fd = current_connection();
  bool gone = false;
  for (auto& f : futures) {
    while (f.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
      if (!gone && (stopping_ || peer_gone(fd))) {
        gone = true;
        for (auto& j : jobs) j->cancel->store(true);
      }
    }
  }
  std::vector<ChatResponse> rs;
  try {
    for (auto& f : futures) rs.push_back(f.get());
  } catch (const std::exception& e) {
    return reject(res, stopping_ ? 503 : 500, e.what(), "server_error");
  }
  if (gone) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.cancelled += n;
  }
  if (stopping_ && gone) return reject(res, 503, "the server is shutting down; the generation was cancelled", "server_error");
  int64_t completion_tokens = 0;
  nlohmann::json choices = nlohmann::json::array();
  for (size_t i = 0; i < rs.size(); ++i) {
    completion_tokens += rs[i].completion_tokens;
    if (completion)
      choices.push_back({{"index", i}, {"text", rs[i].content}, {"finish_reason", rs[i].finish_reason}, {"logprobs", nullptr}});
    else
      choices.push_back({{"index", i},
                         {"message", {{"role", "assistant"}, {"content", rs[i].content}}},
                         {"finish_reason", rs[i].finish_reason},
                         {"logprobs", nullptr}});
  }
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.prompt_tokens += prompt_tokens;
    stats_.completion_tokens += completion_tokens;
  }
  nlohmann::json usage = {{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens},
                          {"total_tokens", prompt_tokens + completion_tokens}};
  nlohmann::json out = {{"id", completion ? "cmpl-tandem" : "chatcmpl-tandem"},
                        {"object", completion ? "text_completion" : "chat.completion"},
                        {"created", now_s()},
                        {"model", engine_->name()},
                        {"choices", choices},
                        {"usage", usage}};
  res.set_content(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

namespace {
// Marks the calling connection as inside a handler (the header deadline does not apply) until
// the handler returns.
struct InHandler {
  explicit InHandler(ConnectionWatchdog& w) : w(w), fd(current_connection()) { w.request_started(fd); }
  ~InHandler() { w.request_finished(fd); }
  ConnectionWatchdog& w;
  int fd;
};
}  // namespace

void OpenAIServer::routes() {
  if (!opts_.api_key.empty()) {
    http_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.get_header_value("Authorization") == "Bearer " + opts_.api_key) return httplib::Server::HandlerResponse::Unhandled;
      reject(res, 401, "Incorrect or missing API key: send 'Authorization: Bearer <key>' (tandem serve --api-key)",
             "invalid_request_error", "invalid_api_key");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    InHandler scope(*watchdog_);
    nlohmann::json j = {{"object", "list"},
                        {"data", {{{"id", engine_->name()}, {"object", "model"}, {"created", now_s()}, {"owned_by", "tandem"}}}}};
    res.set_content(j.dump(), "application/json");
  });
  http_->Get("/v1/stats", [this](const httplib::Request&, httplib::Response& res) {
    InHandler scope(*watchdog_);
    auto s = stats();
    res.set_content(nlohmann::json{{"requests", s.requests}, {"batches", s.batches}, {"max_batch_seen", s.max_batch_seen},
                                   {"prompt_tokens", s.prompt_tokens}, {"completion_tokens", s.completion_tokens},
                                   {"cancelled", s.cancelled}, {"rejected", s.rejected},
                                   {"header_timeouts", s.header_timeouts}}
                        .dump(),
                    "application/json");
  });
  http_->Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& s) {
    InHandler scope(*watchdog_);
    handle(q, s, false);
  });
  http_->Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& s) {
    InHandler scope(*watchdog_);
    handle(q, s, true);
  });
}

int OpenAIServer::start() {
  if (opts_.port == 0) {
    port_ = http_->bind_to_any_port(opts_.host);
  } else {
    if (!http_->bind_to_port(opts_.host, opts_.port))
      throw std::runtime_error("tandem serve: cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) +
                               ": the port is in use (or the address is not this machine's)");
    port_ = opts_.port;
  }
  if (port_ <= 0) throw std::runtime_error("tandem serve: cannot listen on " + opts_.host);
  watchdog_->set_port(port_);
  for (auto& lane : lanes_) lane.thread = std::thread([this, &lane] { worker(lane); });
  http_thread_ = std::thread([this] { http_->listen_after_bind(); });
  return port_;
}

void OpenAIServer::run_forever() {
  if (!http_thread_.joinable()) start();
  if (http_thread_.joinable()) http_thread_.join();
}

void OpenAIServer::stop() {
  if (stopping_.exchange(true)) return;
  // Handlers see stopping_ within 50 ms and cancel their jobs; generations end at their next
  // step; workers answer what is still queued with an error; then the HTTP threads drain.
  for (auto& lane : lanes_) {
    std::lock_guard<std::mutex> lock(lane.mu);
    lane.cv.notify_all();
  }
  http_->stop();
  if (http_thread_.joinable() && http_thread_.get_id() != std::this_thread::get_id()) http_thread_.join();
  for (auto& lane : lanes_)
    if (lane.thread.joinable()) lane.thread.join();
}

ServeStats OpenAIServer::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  ServeStats s = stats_;
  s.header_timeouts = watchdog_->dropped();
  return s;
}

}  // namespace tandem::collab
