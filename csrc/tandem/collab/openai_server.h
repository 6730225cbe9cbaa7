// `tandem serve`: an OpenAI-compatible HTTP server over a tandem model (/v1/chat/completions,
// /v1/completions, /v1/models), so a tandem model can be the "remote" of a local one.
//
// Scheduling: requests are queued in two lanes, each with its own worker thread. A request
// whose prompt plus max_tokens exceeds `long_request_tokens` goes to the long lane, so one huge
// request never holds up the short ones. Within a lane, one worker takes up to max_batch requests
// that arrive within batch_window_ms and decodes them as one batch.
//
// Robustness: prompt + max_tokens must fit the model's context (400 otherwise, as the OpenAI API
// answers); a request whose client disconnects is cancelled at the next decode step; stop()
// (SIGTERM in `tandem serve`) cancels in-flight work and returns within seconds; reads time out,
// and so does a whole request head (ConnectionWatchdog);
// the port is bound exclusively (a second server on a busy port is an error); every request
// field is honoured or refused with a 400 naming it; an optional API key guards every route.
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
struct Request;
struct Response;
}  // namespace httplib

namespace tandem::collab {

class ConnectionWatchdog;

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                      ///< 1..65535, or 0 = any free port (see port())
  int64_t max_batch = 8;                ///< requests decoded together, 1..256
  double batch_window_ms = 10;          ///< how long the first request waits for company, 0..10000
  int http_threads = 128;               ///< connections served at once, 1..4096
  double read_timeout_s = 10;           ///< a client silent this long while sending is dropped, 0.1..3600
  double header_timeout_s = 10;         ///< a request head (or keep-alive idle) longer than this is dropped, 0.1..3600
  int64_t long_request_tokens = 1024;   ///< prompt + max_tokens above this run in the long lane
  int64_t max_n = 8;                    ///< most choices (`n`) one request may ask for
  std::string api_key;                  ///< non-empty: every request needs "Authorization: Bearer <key>"
  /// Throws std::invalid_argument naming the option (as its CLI flag) and its range.
  void validate() const;
};

struct ServeStats {
  int64_t requests = 0, batches = 0, max_batch_seen = 0, prompt_tokens = 0, completion_tokens = 0;
  int64_t cancelled = 0, rejected = 0;  ///< cancelled: client gone or shutdown; rejected: 4xx answers
  int64_t header_timeouts = 0;          ///< connections dropped for taking too long over a request head
};

class OpenAIServer {
 public:
  OpenAIServer(std::shared_ptr<LocalEngine> engine, ServeOptions opts);
  ~OpenAIServer();
  /// Binds and serves on background threads; returns the bound port.
  int start();
  /// Serves on this thread until stop() (from another thread or a signal handler path).
  void run_forever();
  /// Stops accepting, cancels queued and in-flight generations, joins every thread.
  void stop();
  int port() const { return port_; }
  ServeStats stats() const;

 private:
  struct Job {
    bool completion = false;
    ChatRequest chat;
    std::string prompt;
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
    std::promise<ChatResponse> done;
  };
  struct Lane {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::shared_ptr<Job>> queue;
    std::thread thread;
  };
  void worker(Lane& lane);
  void submit(Lane& lane, const std::shared_ptr<Job>& job);
  void routes();
  void handle(const httplib::Request& req, httplib::Response& res, bool completion);
  void reject(httplib::Response& res, int status, const std::string& msg, const std::string& type, const std::string& code = "");

  std::shared_ptr<LocalEngine> engine_;
  ServeOptions opts_;
  std::unique_ptr<ConnectionWatchdog> watchdog_;  // before http_: its threads use it until they end
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
  Lane lanes_[2];  // 0: short requests, 1: long ones
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  mutable std::mutex stats_mu_;
  ServeStats stats_;
};

}  // namespace tandem::collab
