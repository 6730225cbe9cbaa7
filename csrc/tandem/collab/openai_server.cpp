#include "tandem/collab/openai_server.h"

#include <chrono>

#include <httplib.h>

namespace tandem::collab {
namespace {

std::string error_body(const std::string& msg, const std::string& type = "invalid_request_error") {
  return nlohmann::json{{"error", {{"message", msg}, {"type", type}}}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

OpenAIServer::OpenAIServer(std::shared_ptr<LocalEngine> engine, ServeOptions opts)
    : engine_(std::move(engine)), opts_(std::move(opts)), http_(std::make_unique<httplib::Server>()) {
  const int n = opts_.http_threads;
  http_->new_task_queue = [n] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  routes();
}

OpenAIServer::~OpenAIServer() { stop(); }

std::future<ChatResponse> OpenAIServer::submit(std::unique_ptr<Job> job) {
  auto f = job->done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return f;
}

void OpenAIServer::worker() {
  while (true) {
    std::vector<std::unique_ptr<Job>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_ && queue_.empty()) return;
      // The first request waits up to the window for others to share its batch.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(opts_.batch_window_ms);
      cv_.wait_until(lock, deadline, [&] { return stopping_ || static_cast<int64_t>(queue_.size()) >= opts_.max_batch; });
      while (!queue_.empty() && static_cast<int64_t>(batch.size()) < opts_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
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
      // Completions with equal settings share a batch; different settings go one by one.
      for (auto* j : comp_jobs) j->done.set_value(engine_->complete({j->prompt}, j->chat.max_tokens, j->chat.temperature, j->chat.seed).at(0));
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

void OpenAIServer::routes() {
  http_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j = {{"object", "list"},
                        {"data", {{{"id", engine_->name()}, {"object", "model"}, {"created", now_s()}, {"owned_by", "tandem"}}}}};
    res.set_content(j.dump(), "application/json");
  });
  http_->Get("/v1/stats", [this](const httplib::Request&, httplib::Response& res) {
    auto s = stats();
    res.set_content(nlohmann::json{{"requests", s.requests}, {"batches", s.batches}, {"max_batch_seen", s.max_batch_seen},
                                   {"prompt_tokens", s.prompt_tokens}, {"completion_tokens", s.completion_tokens}}
                        .dump(),
                    "application/json");
  });
  auto handle = [this](const httplib::Request& req, httplib::Response& res, bool completion) {
    nlohmann::json body;
    try {
      body = nlohmann::json::parse(req.body);
    } catch (const nlohmann::json::exception& e) {
      res.status = 400;
      res.set_content(error_body(std::string("request body is not JSON: ") + e.what()), "application/json");
      return;
    }
    auto job = std::make_unique<Job>();
    job->completion = completion;
    try {
      if (body.value("stream", false)) throw std::invalid_argument("stream: true is not supported by tandem serve");
      job->chat.max_tokens = body.value("max_tokens", body.value("max_completion_tokens", int64_t{256}));
      job->chat.temperature = body.value("temperature", 0.0);
      job->chat.seed = body.value("seed", uint64_t{0});
      if (completion) {
        const auto& p = body.at("prompt");
        if (!p.is_string()) throw std::invalid_argument("prompt must be one string (batch by sending concurrent requests)");
        job->prompt = p.get<std::string>();
      } else {
        for (const auto& m : body.at("messages")) {
          const auto& c = m.at("content");
          std::string text;
          if (c.is_string()) {
            text = c.get<std::string>();
          } else {  // [{"type": "text", "text": ...}, ...]
            for (const auto& part : c)
              if (part.value("type", std::string()) == "text") text += part.value("text", std::string());
          }
          job->chat.messages.push_back({m.at("role").get<std::string>(), text});
        }
        if (body.contains("response_format") && body["response_format"].is_object()) {
          const auto& rf = body["response_format"];
          const std::string t = rf.value("type", std::string());
          if (t == "json_schema") job->chat.json_schema = rf.at("json_schema").at("schema");
          else if (t == "json_object" && rf.contains("schema")) job->chat.json_schema = rf["schema"];
          else if (t != "text") throw std::invalid_argument("response_format type \"" + t + "\" needs a schema");
        }
      }
      if (job->chat.max_tokens <= 0) throw std::invalid_argument("max_tokens must be positive");
    } catch (const std::exception& e) {
      res.status = 400;
      res.set_content(error_body(e.what()), "application/json");
      return;
    }
    const auto model = body.value("model", engine_->name());
    ChatResponse r;
    try {
      r = submit(std::move(job)).get();
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(error_body(e.what(), "server_error"), "application/json");
      return;
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.prompt_tokens += r.prompt_tokens;
      stats_.completion_tokens += r.completion_tokens;
    }
    nlohmann::json usage = {{"prompt_tokens", r.prompt_tokens},
                            {"completion_tokens", r.completion_tokens},
                            {"total_tokens", r.prompt_tokens + r.completion_tokens}};
    nlohmann::json out;
    if (completion) {
      out = {{"id", "cmpl-tandem"}, {"object", "text_completion"}, {"created", now_s()}, {"model", model},
             {"choices", {{{"index", 0}, {"text", r.content}, {"finish_reason", r.finish_reason}, {"logprobs", nullptr}}}},
             {"usage", usage}};
    } else {
      out = {{"id", "chatcmpl-tandem"}, {"object", "chat.completion"}, {"created", now_s()}, {"model", model},
             {"choices",
              {{{"index", 0},
                {"message", {{"role", "assistant"}, {"content", r.content}}},
                {"finish_reason", r.finish_reason},
                {"logprobs", nullptr}}}},
             {"usage", usage}};
    }
    res.set_content(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  };
  http_->Post("/v1/chat/completions", [handle](const httplib::Request& q, httplib::Response& s) { handle(q, s, false); });
  http_->Post("/v1/completions", [handle](const httplib::Request& q, httplib::Response& s) { handle(q, s, true); });
}

int OpenAIServer::start() {
  if (opts_.port == 0) {
    port_ = http_->bind_to_any_port(opts_.host);
  } else {
    if (!http_->bind_to_port(opts_.host, opts_.port))
      throw std::runtime_error("tandem serve: cannot bind " + opts_.host + ":" + std::to_string(opts_.port) + " (in use?)");
    port_ = opts_.port;
  }
  if (port_ <= 0) throw std::runtime_error("tandem serve: cannot bind " + opts_.host);
  worker_thread_ = std::thread([this] { worker(); });
  http_thread_ = std::thread([this] { http_->listen_after_bind(); });
  return port_;
}

void OpenAIServer::run_forever() {
  if (!worker_thread_.joinable()) start();
  if (http_thread_.joinable()) http_thread_.join();
}

void OpenAIServer::stop() {
  if (stopping_.exchange(true)) return;
  http_->stop();
  cv_.notify_all();
  if (http_thread_.joinable() && http_thread_.get_id() != std::this_thread::get_id()) http_thread_.join();
  if (worker_thread_.joinable()) worker_thread_.join();
}

ServeStats OpenAIServer::stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

}  // namespace tandem::collab
