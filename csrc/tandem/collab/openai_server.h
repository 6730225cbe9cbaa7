// `tandem serve`: an OpenAI-compatible HTTP server over a tandem model (/v1/chat/completions,
// /v1/completions, /v1/models), so a tandem model can be the "remote" of a local one.
// Requests from concurrent clients are queued and decoded together: one worker takes up to
// max_batch requests that arrive within batch_window_ms and runs them as one batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tandem/collab/lm_client.h"

namespace httplib {
class Server;
}

namespace tandem::collab {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;              ///< 0 = any free port (see port())
  int64_t max_batch = 8;
  double batch_window_ms = 10;  ///< how long the first request waits for company
  int http_threads = 32;
};

struct ServeStats {
  int64_t requests = 0, batches = 0, max_batch_seen = 0, prompt_tokens = 0, completion_tokens = 0;
};

class OpenAIServer {
 public:
  OpenAIServer(std::shared_ptr<LocalEngine> engine, ServeOptions opts);
  ~OpenAIServer();
  /// Binds and serves on background threads; returns the bound port.
  int start();
  /// Serves on this thread until stop() (from another thread or a signal handler path).
  void run_forever();
  void stop();
  int port() const { return port_; }
  ServeStats stats() const;

 private:
  struct Job {
    bool completion = false;
    ChatRequest chat;
    std::string prompt;
    std::promise<ChatResponse> done;
  };
  void worker();
  std::future<ChatResponse> submit(std::unique_ptr<Job> job);
  void routes();

  std::shared_ptr<LocalEngine> engine_;
  ServeOptions opts_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_, worker_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  mutable std::mutex stats_mu_;
  ServeStats stats_;
};

}  // namespace tandem::collab
