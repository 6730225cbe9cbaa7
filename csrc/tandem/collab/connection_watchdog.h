// Per-connection bookkeeping for `tandem serve`, below cpp-httplib 0.11 (which gives handlers no
// access to their socket and has no deadline for a whole request head):
//   - WatchedPool, the server's task queue: right after each accept it identifies the new
//     connection's socket (the one connected socket on the server's port it has not seen yet)
//     and runs the connection on a pool thread that knows it (current_connection()).
//   - ConnectionWatchdog: a connection that is not inside a handler (sending its request line
//     and headers, or idle between keep-alive requests) for longer than the header deadline is
//     shut down, so slow or stalled senders cannot hold the pool's threads; a per-read timeout
//     alone would let a client that trickles one byte at a time keep a thread for ever.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>

namespace tandem::collab {

class ConnectionWatchdog {
 public:
  explicit ConnectionWatchdog(double header_deadline_s);
  ~ConnectionWatchdog();
  void set_port(int port) { port_ = port; }
  /// Called on the accepting thread after each accept: the new connection's socket, or -1.
  int adopt_new_connection();
  void request_started(int fd);
  void request_finished(int fd);
  void closed(int fd);
  int64_t dropped() const { return dropped_; }

 private:
  struct Entry {
    int peer_port = -1;
    bool busy = false;
    std::chrono::steady_clock::time_point since;
  };
  void loop();

  double deadline_s_;
  std::atomic<int> port_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Entry> conns_;
  bool stop_ = false;
  std::atomic<int64_t> dropped_{0};
  std::thread thread_;
};

/// The socket of the connection the calling pool thread serves (-1 when unknown).
int current_connection();

class WatchedPool : public httplib::TaskQueue {
 public:
  WatchedPool(size_t threads, ConnectionWatchdog& watchdog) : pool_(threads), watchdog_(watchdog) {}
  void enqueue(std::function<void()> fn) override;
  void shutdown() override { pool_.shutdown(); }

 private:
  httplib::ThreadPool pool_;
  ConnectionWatchdog& watchdog_;
};

}  // namespace tandem::collab
