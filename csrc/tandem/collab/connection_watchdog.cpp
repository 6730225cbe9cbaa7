#include "tandem/collab/connection_watchdog.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <filesystem>
#include <string>
#include <vector>

namespace tandem::collab {
namespace {

thread_local int tl_connection = -1;

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  return -1;
}

/// Local and peer port of a connected TCP socket, or {-1, -1}.
std::pair<int, int> ports(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof local, pl = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) return {-1, -1};
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) return {-1, -1};
  return {port_of(local), port_of(peer)};
}

}  // namespace

int current_connection() { return tl_connection; }

ConnectionWatchdog::ConnectionWatchdog(double header_deadline_s)
    : deadline_s_(header_deadline_s), thread_([this] { loop(); }) {}

ConnectionWatchdog::~ConnectionWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int ConnectionWatchdog::adopt_new_connection() {
  const int port = port_;
  if (port <= 0) return -1;
  std::vector<std::pair<int, int>> fresh;  // fd, peer port
  std::error_code ec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
      int fd = -1;
      try {
        fd = std::stoi(e.path().filename().string());
      } catch (...) {
        continue;
      }
      const auto [local, peer] = ports(fd);
      if (local != port || peer < 0) continue;
      auto it = conns_.find(fd);
      if (it != conns_.end() && it->second.peer_port == peer) continue;  // already known
      fresh.emplace_back(fd, peer);
    }
    for (const auto& [fd, peer] : fresh) conns_[fd] = Entry{peer, false, std::chrono::steady_clock::now()};
  }
  // The accept that just happened made exactly one new connection; should an earlier one have
  // been missed, the newest socket (the highest number is not guaranteed) is still tracked.
  return fresh.size() == 1 ? fresh.front().first : (fresh.empty() ? -1 : fresh.back().first);
}

void ConnectionWatchdog::request_started(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = conns_.find(fd); it != conns_.end()) it->second.busy = true;
}

void ConnectionWatchdog::request_finished(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = conns_.find(fd); it != conns_.end()) {
    it->second.busy = false;
    it->second.since = std::chrono::steady_clock::now();
  }
}

void ConnectionWatchdog::closed(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  // Its number may already belong to a newer connection (adopted since): keep that one.
  if (auto it = conns_.find(fd); it != conns_.end() && ports(fd).second != it->second.peer_port) conns_.erase(it);
}

void ConnectionWatchdog::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(200));
    const auto now = std::chrono::steady_clock::now();
    for (auto it = conns_.begin(); it != conns_.end();) {
      const auto& e = it->second;
      const bool late = !e.busy && std::chrono::duration<double>(now - e.since).count() > deadline_s_;
      // Only the connection recorded under this number: a closed socket's number may be reused.
      if (late && ports(it->first).second == e.peer_port) {
        ::shutdown(it->first, SHUT_RDWR);  // its thread's read fails at once; the thread closes it
        ++dropped_;
        it = conns_.erase(it);
      } else if (ports(it->first).second != e.peer_port) {
        it = conns_.erase(it);  // gone without a closed() (never adopted by a task)
      } else {
        ++it;
      }
    }
  }
}

void WatchedPool::enqueue(std::function<void()> fn) {
  const int fd = watchdog_.adopt_new_connection();
  pool_.enqueue([fn = std::move(fn), fd, this] {
    tl_connection = fd;
    fn();
    tl_connection = -1;
    watchdog_.closed(fd);
  });
}

}  // namespace tandem::collab
