#include "tandem/core/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace tandem {
namespace {

[[noreturn]] void fail_io(const std::string& what, const std::string& path) {
  throw std::runtime_error(what + " '" + path + "': " + std::strerror(errno));
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Crash points for the resume tests: TANDEM_CRASH_AT="<file name>:<n>[:before|after]" makes this
// process SIGKILL itself at the n-th commit of a file with that name (a leading '*' matches any
// name with that ending), either with the data written but not yet renamed into place
// ("before", the default: a kill during the write) or just after the rename ("after": a kill
// between two writes). Read once; unset, it costs one branch per commit.
struct CrashPoint {
  std::string name, when;
  long nth = 0;
  std::atomic<long> seen{0};
};

CrashPoint* crash_point() {
  static CrashPoint* cp = []() -> CrashPoint* {
    const char* env = std::getenv("TANDEM_CRASH_AT");
    if (!env || !*env) return nullptr;
    auto* c = new CrashPoint;
    std::string v = env;
    const auto a = v.find(':');
    if (a == std::string::npos) throw std::runtime_error("TANDEM_CRASH_AT='" + v + "': expected <file name>:<n>[:before|after]");
    c->name = v.substr(0, a);
    std::string rest = v.substr(a + 1);
    const auto b = rest.find(':');
    c->when = b == std::string::npos ? "before" : rest.substr(b + 1);
    c->nth = std::atol(rest.substr(0, b).c_str());
    if (c->nth <= 0 || (c->when != "before" && c->when != "after"))
      throw std::runtime_error("TANDEM_CRASH_AT='" + v + "': expected <file name>:<n>[:before|after] with n >= 1");
    return c;
  }();
  return cp;
}

void maybe_crash(const std::string& path, const char* when) {
  CrashPoint* cp = crash_point();
  if (!cp || cp->when != when) return;
  const std::string file = fs::path(path).filename().string();
  const bool match = cp->name.size() > 1 && cp->name[0] == '*'  // "*.safetensors": any name with that ending
                         ? file.size() >= cp->name.size() - 1 && file.compare(file.size() - (cp->name.size() - 1), std::string::npos, cp->name, 1) == 0
                         : file == cp->name;
  if (!match) return;
  if (++cp->seen == cp->nth) std::raise(SIGKILL);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  fs::path p(path_);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  tmp_ = (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid()))).string();
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_io("cannot create temporary file for", path_);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_io("cannot write", tmp_);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFile::commit called twice for " + path_);
  if (::fsync(fd_) != 0) fail_io("cannot flush", tmp_);
  maybe_crash(path_, "before");
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp_.c_str());
    fail_io("cannot rename temporary onto", path_);
  }
  fsync_dir(fs::path(path_).parent_path());
  maybe_crash(path_, "after");
}

void write_file_atomic(const std::string& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data);
  f.commit();
}

int remove_stale_temporaries(const std::string& dir) {
  int n = 0;
  if (!fs::is_directory(dir)) return 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    auto pos = name.rfind(".tmp-");
    if (name.size() > 1 && name[0] == '.' && pos != std::string::npos) {
      std::error_code ec;
      if (fs::remove(e.path(), ec)) ++n;
    }
  }
  return n;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

RunLog::RunLog(const std::string& path, bool echo) { open(path, echo); }

RunLog::~RunLog() {
  if (fd_ >= 0) ::close(fd_);
}

void RunLog::open(const std::string& path, bool echo) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_io("cannot open log", path);
  echo_ = echo;
}

void RunLog::line(const std::string& text) {
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::string l = std::string(stamp) + " " + text + "\n";
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) {
    ssize_t w = ::write(fd_, l.data(), l.size());
    (void)w;
  }
  if (echo_) {
    std::fputs(l.c_str() + 20, stderr);  // without the date, for the terminal
    std::fflush(stderr);
  }
}

DirectoryLock::DirectoryLock(const std::string& dir) {
  fs::create_directories(dir);
  const std::string path = (fs::path(dir) / ".lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_io("cannot open the lock file", path);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (err != EWOULDBLOCK) {
      errno = err;
      fail_io("cannot lock", path);
    }
    std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    throw std::runtime_error(dir + " is in use by another tandem process (pid " + pid +
                             "); wait for it to finish, or give this run its own run.id");
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock; the file stays (harmless, hidden)
}

}  // namespace tandem
